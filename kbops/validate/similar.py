"""Near-duplicates: a new question that asks what an active entry already answers.

Such a candidate should not become a second entry (two answers competing
for the same question, drifting apart over time); it is routed to a reviewer
as a proposal to add the question as an alternate phrasing of the existing
entry (``review_items.proposed_merge_into``).

Similarity is the KB's one question similarity (:mod:`kbops.index.similarity`)
between the candidate's question and each active entry's question and
alternate questions: the embedding cosine with the KB's one model, leaning on
the lexical channel in proportion to the share of the two texts the model
cannot read (its tokenizer's ``[UNK]`` share: the bundled model reads no
Chinese). Its parameters here — dense weight 1.0, lexical as a count cosine of
:func:`kbops.text.tokens` — keep ``near_duplicate_threshold`` an absolute bar;
the reasons are in that module's docstring. Two questions naming different
identifiers (SKUs, sizes, amounts: "3L" vs "1.7L") are never near-duplicates,
nor are a question about one product and an entry about another (both linked
to SKUs, none shared: "How long is the vacuum's warranty?" asked about LM-1008
is not LM-1009's warranty entry). Candidates from structured records (one
templated entry per product and fact) are skipped: their identity is their
entry key, not their phrasing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from kbops.index import similarity
from kbops.index.lexical import LexicalIndex
from kbops.text import normalize

_IDENT = re.compile(r"[a-z]*\d+(?:\.\d+)?[a-z]*")
_TOP_DENSE = 10
_TOP_LEXICAL = 50


@dataclass(frozen=True)
class NearDuplicate:
    entry_key: str
    score: float
    matched: str  # the entry's phrasing that matched

    def as_dict(self) -> dict[str, Any]:
        return {"entry_key": self.entry_key, "score": round(self.score, 3), "matched": self.matched}


def identifiers(text: str) -> frozenset[str]:
    return frozenset(_IDENT.findall(normalize(text)))


def find_near_duplicates(
    rows: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    embedder: Any,
    threshold: float,
    *,
    dense_weight: float = similarity.NEAR_DUPLICATE_DENSE_WEIGHT,
) -> dict[int, NearDuplicate]:
    """For each row (candidate_id, entry_key, lang, question), the closest active entry at or above ``threshold``.

    ``entries`` are dicts with entry_key, lang, question and alt_questions.
    Rows are compared only with entries of the same language and another key.
    Each row is scored against its closest phrasings by either channel: the
    dense top 10 and, when the model cannot read all of the row, the lexical
    top 50. Read with the main model only (:func:`kbops.index.similarity.pair_reader`): the
    threshold was fitted on its cosines.
    """
    embedder = similarity.pair_reader(embedder)
    rows = [r for r in rows if r.get("question")]
    if not rows or not entries:
        return {}
    phrasings: list[tuple[int, str]] = []  # (entry index, phrasing)
    for i, entry in enumerate(entries):
        for q in [entry["question"], *(entry.get("alt_questions") or [])]:
            if q and q.strip():
                phrasings.append((i, q))
    langs = {r["lang"] for r in rows}
    phrasings = [(i, q) for i, q in phrasings if entries[i]["lang"] in langs]
    if not phrasings:
        return {}
    texts = [q for _, q in phrasings]
    evecs = embedder.encode(texts)
    qvecs = embedder.encode([r["question"] for r in rows])
    q_unread = similarity.unreadable_shares(embedder, [r["question"] for r in rows])
    e_unread: dict[int, float] = {}  # filled for the phrasings a row is compared with
    lexical = LexicalIndex(list(enumerate(texts)), "tf")
    e_idents = [identifiers(t) for t in texts]
    e_lang = np.array([entries[i]["lang"] for i, _ in phrasings])
    e_key = [entries[i]["entry_key"] for i, _ in phrasings]
    e_skus = [frozenset(entries[i].get("skus") or ()) for i, _ in phrasings]
    found: dict[int, NearDuplicate] = {}
    for r_index, row in enumerate(rows):
        q = row["question"]
        same_lang = e_lang == row["lang"]
        if not same_lang.any():
            continue
        dense = np.where(same_lang, evecs @ qvecs[r_index], -1.0)
        pool = set(np.argsort(-dense)[:_TOP_DENSE].tolist())
        lx = np.where(same_lang, lexical.similarities(q), 0.0)
        if q_unread[r_index] > 0:
            top = np.argsort(-lx, kind="stable")[:_TOP_LEXICAL]
            pool |= set(top[lx[top] > 0].tolist())
        q_idents = identifiers(q)
        q_skus = frozenset(row.get("skus") or ())
        pool = {
            j for j in pool
            if same_lang[j] and e_key[j] != row["entry_key"] and e_idents[j] == q_idents and not (q_skus and e_skus[j] and not q_skus & e_skus[j])
        }
        for j in pool - e_unread.keys():
            e_unread[j] = embedder.unk_share(texts[j])
        weights = {j: float(similarity.fusion_weight(dense_weight, float(q_unread[r_index]), e_unread[j])) for j in pool}
        scores = similarity.fused_scores(weights, {j: float(dense[j]) for j in pool}, {j: float(lx[j]) for j in pool})
        best: NearDuplicate | None = None
        for j in sorted(pool):
            if scores[j] >= threshold and (best is None or scores[j] > best.score):
                best = NearDuplicate(e_key[j], scores[j], texts[j])
        if best is not None:
            found[row["candidate_id"]] = best
    return found
