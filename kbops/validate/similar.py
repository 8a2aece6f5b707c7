"""Near-duplicates: a new question that asks what an active entry already answers.

Such a candidate should not become a second entry (two answers competing
for the same question, drifting apart over time); it is routed to a reviewer
as a proposal to add the question as an alternate phrasing of the existing
entry (``review_items.proposed_merge_into``).

Similarity is the embedding cosine of the two questions with the KB's one
model (:class:`kbops.index.embedder.Embedder`), compared against each active
entry's question and alternate questions. The bundled model cannot read
Chinese (every CJK character is ``[UNK]``), so for text it cannot read the
score leans on lexical similarity (cosine of :func:`kbops.text.tokens`, CJK
character uni+bigrams) in proportion to the unreadable share, the same
blend retrieval uses. Two questions naming different identifiers (SKUs,
sizes, amounts: "3L" vs "1.7L") are never near-duplicates, nor are a question
about one product and an entry about another (both linked to SKUs, none
shared: "How long is the vacuum's warranty?" asked about LM-1008 is not
LM-1009's warranty entry). Candidates from
structured records (one templated entry per product and fact) are skipped:
their identity is their entry key, not their phrasing.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from kbops.text import normalize, tokens

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_IDENT = re.compile(r"[a-z]*\d+(?:\.\d+)?[a-z]*")
_TOP_DENSE = 10


@dataclass(frozen=True)
class NearDuplicate:
    entry_key: str
    score: float
    matched: str  # the entry's phrasing that matched

    def as_dict(self) -> dict[str, Any]:
        return {"entry_key": self.entry_key, "score": round(self.score, 3), "matched": self.matched}


def unreadable_share(text: str) -> float:
    """Share of the text the default model maps to [UNK]: CJK characters among CJK characters + Latin words."""
    cjk = len(_CJK.findall(text))
    words = len(_LATIN_WORD.findall(text))
    return cjk / (cjk + words) if cjk + words else 0.0


def identifiers(text: str) -> frozenset[str]:
    return frozenset(_IDENT.findall(normalize(text)))


def _lexical(a: Counter[str], b: Counter[str]) -> float:
    if not a or not b:
        return 0.0
    dot = sum(v * b[k] for k, v in a.items() if k in b)
    return dot / math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))


def find_near_duplicates(
    rows: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    embedder: Any,
    threshold: float,
) -> dict[int, NearDuplicate]:
    """For each row (candidate_id, entry_key, lang, question), the closest active entry at or above ``threshold``.

    ``entries`` are dicts with entry_key, lang, question and alt_questions.
    Rows are compared only with entries of the same language and another key.
    """
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
    e_unread = np.array([unreadable_share(t) for t in texts], dtype=np.float32)
    e_tokens = [Counter(tokens(t)) for t in texts]
    e_idents = [identifiers(t) for t in texts]
    e_lang = np.array([entries[i]["lang"] for i, _ in phrasings])
    e_key = [entries[i]["entry_key"] for i, _ in phrasings]
    e_skus = [frozenset(entries[i].get("skus") or ()) for i, _ in phrasings]
    # Inverted index over CJK bigrams (rare enough to be selective) for rows the model cannot read.
    postings: dict[str, list[int]] = {}
    for j, toks in enumerate(e_tokens):
        for tok in toks:
            if len(tok) == 2 and _CJK.match(tok):
                postings.setdefault(tok, []).append(j)
    found: dict[int, NearDuplicate] = {}
    for r_index, row in enumerate(rows):
        q = row["question"]
        same_lang = e_lang == row["lang"]
        if not same_lang.any():
            continue
        dense = evecs @ qvecs[r_index]
        dense = np.where(same_lang, dense, -1.0)
        pool = set(np.argsort(-dense)[:_TOP_DENSE].tolist())
        q_unread = unreadable_share(q)
        q_tokens = Counter(tokens(q))
        if q_unread > 0:
            shared = Counter(j for tok in q_tokens if len(tok) == 2 and tok in postings for j in postings[tok])
            pool |= {j for j, _ in shared.most_common(50)}
        q_idents = identifiers(q)
        q_skus = frozenset(row.get("skus") or ())
        best: NearDuplicate | None = None
        for j in pool:
            if not same_lang[j] or e_key[j] == row["entry_key"] or e_idents[j] != q_idents:
                continue
            if q_skus and e_skus[j] and not q_skus & e_skus[j]:
                continue
            share = max(q_unread, float(e_unread[j]))
            score = (1.0 - share) * float(dense[j]) + share * _lexical(q_tokens, e_tokens[j])
            if score >= threshold and (best is None or score > best.score):
                best = NearDuplicate(e_key[j], score, texts[j])
        if best is not None:
            found[row["candidate_id"]] = best
    return found
