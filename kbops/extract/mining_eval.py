"""Measuring chat mining on real logs (used by bench/eval_mining.py and the regression test).

Strict precision (issue 15): :func:`read_strict_labels` reads bench/labels/jddc_strict.tsv keyed by
(session, turn, text hash), :func:`split_of` recomputes the fixed tune/test split from the session
hash, :func:`precision` reports GOOD and GOOD+FIXABLE on one split, :func:`fit_weights` fits the
quality weights on the tune split only, and :func:`raw_pair_proposals` is the nearest-neighbour
baseline (every raw question → reply pair as a KB entry).

Held-out answer protocol (fixed seed, reproducible):

1. Split the sessions 80/20 by session id (a seeded shuffle of the sorted keys).
2. Mine candidates from the 80 % exactly as the pipeline does
   (:func:`kbops.extract.chats.mine_session` → :func:`group_exchanges` with the
   shared embedder → :func:`group_proposal`).
3. Build a KB of the mined candidates as an in-memory release — a FAISS
   ``IndexIDMap2(IndexFlatIP)`` of question + alternate-question vectors and a
   :class:`kbops.index.lexical.LexicalIndex` — and answer with the bot's own
   scoring function :func:`kbops.index.search.answer_from` (same fusion,
   same handoff rule). Only the storage differs from a published release.
4. For every customer question in the held-out 20 % (a customer turn with a
   question cue that an agent replied to), score the KB's top answer against
   the agent's real reply: smoothed sentence BLEU-4 on characters and
   character F1. Baselines in the same run: a random mined answer, and the
   single most frequent agent reply of the 80 %.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kbops.extract.chat_scope import QUESTION_CUES
from kbops.extract.chats import group_exchanges, group_proposal, mine_session, question_part
from kbops.index.lexical import LexicalIndex
from kbops.index.release import LoadedRelease
from kbops.index.similarity import DenseView, dense_view
from kbops.kb.candidates import Proposal
from kbops.sources.chats import Session
from kbops.text import detect_lang

SEED = 20261126


# --- metrics --------------------------------------------------------------------


def _chars(text: str) -> list[str]:
    return [ch for ch in text if not ch.isspace()]


def char_bleu4(hypothesis: str, reference: str) -> float:
    """Sentence BLEU-4 on characters, uniform weights, smoothing "method 1"
    of Chen & Cherry (2014) (a zero n-gram match counts as 0.1), the variant
    NLTK's ``SmoothingFunction().method1`` implements; the JDDC organisers
    scored with NLTK's ``sentence_bleu``."""
    hyp, ref = _chars(hypothesis), _chars(reference)
    if not hyp or not ref:
        return 0.0
    log_p = 0.0
    for n in range(1, 5):
        h = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
        r = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
        total = sum(h.values())
        match = sum(min(c, r[g]) for g, c in h.items())
        p = (match if match > 0 else 0.1) / max(total, 1)
        log_p += math.log(p)
    bp = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return bp * math.exp(log_p / 4)


def char_f1(hypothesis: str, reference: str) -> float:
    """F1 of the character multisets (whitespace ignored)."""
    hyp, ref = Counter(_chars(hypothesis)), Counter(_chars(reference))
    overlap = sum((hyp & ref).values())
    if not overlap:
        return 0.0
    p, r = overlap / sum(hyp.values()), overlap / sum(ref.values())
    return 2 * p * r / (p + r)


# --- split and mining -------------------------------------------------------------


def split_sessions(sessions: Sequence[Session], share: float = 0.8, seed: int = SEED) -> tuple[list[Session], list[Session]]:
    keys = sorted({s.key for s in sessions})
    random.Random(seed).shuffle(keys)
    train_keys = set(keys[: round(len(keys) * share)])
    return [s for s in sessions if s.key in train_keys], [s for s in sessions if s.key not in train_keys]


@dataclass
class Mined:
    proposals: list[Proposal]
    exchanges: int
    groups: int
    seconds: dict[str, float] = field(default_factory=dict)


def mine(sessions: Sequence[Session], min_support: int, embedder: Any | None, dense_weight: float, context: str = "rewrite") -> Mined:
    t0 = time.perf_counter()
    exchanges = [ex for s in sessions for ex in mine_session(s.key, s.turns, s.sku, context=context).exchanges]
    exchanges.sort(key=lambda ex: (ex.session, ex.turn))
    t1 = time.perf_counter()
    dense: DenseView | None = dense_view(embedder, [ex.question for ex in exchanges], dense_weight) if embedder is not None else None
    t2 = time.perf_counter()
    groups = group_exchanges(exchanges, dense)
    proposals = [p for p in (group_proposal(g, min_support) for g in groups) if p is not None]
    t3 = time.perf_counter()
    return Mined(proposals, len(exchanges), len(groups), {"exchanges": t1 - t0, "embedding": t2 - t1, "grouping": t3 - t2})


def candidate_ref(p: Proposal) -> tuple[str, int]:
    """A candidate's stable reference: the session and turn its answer came from."""
    src = p.evidence["answer_from"]
    return src["session"], int(src["turn"])


def text_hash(p: Proposal) -> str:
    return hashlib.sha256(f"{p.question}\n{p.answer}".encode()).hexdigest()[:12]


# --- KB as the bot sees it ----------------------------------------------------------


def build_release(proposals: Sequence[Proposal], embedder: Any, lexical_scorer: str = "bm25") -> Any:
    """An in-memory release of ``proposals`` (entry id = position + 1) for :func:`answer_from`,
    with the lexical scorer the bot uses (``settings.lexical_scorer``)."""
    import faiss

    entries: dict[int, dict[str, Any]] = {}
    texts: list[tuple[int, str]] = []
    for i, p in enumerate(proposals, start=1):
        entries[i] = {"entry_key": p.entry_key, "kind": p.kind, "question": p.question, "answer": p.answer, "lang": p.lang, "tags": list(p.tags), "valid_from": None, "valid_to": None}
        texts.extend((i, t) for t in [p.question, *p.alt_questions])
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(embedder.dim))
    if texts:
        index.add_with_ids(embedder.encode([t for _, t in texts]), np.array([i for i, _ in texts], dtype=np.int64))
    return LoadedRelease("eval", {}, index, entries, LexicalIndex(texts, lexical_scorer))


class BatchedQueries:
    """The shared embedder with the held-out queries embedded in one batch up front.

    :func:`answer_from` embeds each query alone (``encode_query``); here the same
    model gives the same vectors, computed as one batch (and cached), which
    makes the evaluation several times faster on a 2-core machine.
    """

    def __init__(self, embedder: Any, queries: Sequence[str]):
        self._embedder = embedder
        self.model_id, self.dim = embedder.model_id, embedder.dim
        unique = list(dict.fromkeys(queries))
        self._unk = {q: embedder.unk_share(q) for q in unique}
        readable = [q for q in unique if self._unk[q] < 1.0]
        vectors = embedder.encode(readable) if readable else np.zeros((0, self.dim), dtype=np.float32)
        self._vectors = {q: vectors[i : i + 1] for i, q in enumerate(readable)}

    def unk_share(self, text: str) -> float:
        return self._unk[text] if text in self._unk else self._embedder.unk_share(text)

    def encode_query(self, text: str) -> np.ndarray:
        return self._vectors[text] if text in self._vectors else self._embedder.encode_query(text)


@dataclass
class HeldOut:
    session: str
    turn: int
    question: str  # the customer's turn as typed (scrubbed)
    reference: str  # the agent's real reply
    general: bool  # passes the miner's own question filter


def held_out_questions(sessions: Sequence[Session]) -> list[HeldOut]:
    """Customer turns with a question cue that an agent replied to."""
    out = []
    for s in sessions:
        for i, turn in enumerate(s.turns[:-1]):
            nxt = s.turns[i + 1]
            if turn["role"] != "customer" or nxt["role"] != "agent" or not QUESTION_CUES.search(turn["text"]):
                continue
            out.append(HeldOut(s.key, i, turn["text"][:2000], nxt["text"], bool(question_part(turn["text"]))))
    return out


def most_frequent_reply(sessions: Sequence[Session]) -> str:
    replies = Counter(t["text"] for s in sessions for t in s.turns if t["role"] == "agent")
    return min(replies.items(), key=lambda kv: (-kv[1], kv[0]))[0] if replies else ""


@dataclass
class Scores:
    bleu: float
    f1: float
    n: int


def score(pairs: Sequence[tuple[str, str]]) -> Scores:
    if not pairs:
        return Scores(0.0, 0.0, 0)
    return Scores(
        float(np.mean([char_bleu4(h, r) for h, r in pairs])),
        float(np.mean([char_f1(h, r) for h, r in pairs])),
        len(pairs),
    )


# --- strict labels (issue 15) -------------------------------------------------------


def split_of(session: str) -> str:
    """The fixed label split of a session: ``test`` when the first 8 hex digits of sha256(session) are odd."""
    return "test" if int(hashlib.sha256(session.encode()).hexdigest()[:8], 16) % 2 else "tune"


def read_strict_labels(path: Path) -> dict[tuple[str, int, str], dict[str, str]]:
    """bench/labels/jddc_strict.tsv keyed by (session, turn, text_hash): a changed text is unlabelled."""
    out: dict[tuple[str, int, str], dict[str, str]] = {}
    if not path.is_file():
        return out
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
    header = lines[0].split("\t") if lines else []
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t")))
        out[(row["session"], int(row["turn"]), row["text_hash"])] = row
    return out


def label_of(p: Proposal, labels: dict[tuple[str, int, str], dict[str, str]]) -> dict[str, str] | None:
    session, turn = candidate_ref(p)
    return labels.get((session, turn, text_hash(p)))


def precision(proposals: Sequence[Proposal], labels: dict[tuple[str, int, str], dict[str, str]], split: str = "test") -> dict[str, Any]:
    """GOOD and GOOD+FIXABLE shares of the labelled candidates on one split, with the counts."""
    on_split = [p for p in proposals if split_of(candidate_ref(p)[0]) == split]
    rows = [r for r in (label_of(p, labels) for p in on_split) if r is not None]
    good = sum(r["label"] == "good" for r in rows)
    fixable = sum(r["label"] == "fixable" for r in rows)
    reasons = Counter(r["reason"] for r in rows if r["label"] == "bad")
    n = len(rows)
    return {
        "candidates": len(on_split),
        "labelled": n,
        "unlabelled": len(on_split) - n,
        "good": good,
        "fixable": fixable,
        "precision_good": round(good / n, 4) if n else None,
        "precision_good_or_fixable": round((good + fixable) / n, 4) if n else None,
        "bad_by_reason": dict(reasons.most_common()),
    }


def fit_weights(proposals: Sequence[Proposal], labels: dict[tuple[str, int, str], dict[str, str]], steps: int = 2000) -> dict[str, float]:
    """Non-negative quality weights fitted on the tune split only (logistic, GOOD or FIXABLE = 1).

    Returns weights that sum to 1; {} when the tune split has no labelled candidate of both kinds.
    """
    rows = [(p.evidence["quality_parts"], r["label"] in ("good", "fixable")) for p in proposals if split_of(candidate_ref(p)[0]) == "tune" and (r := label_of(p, labels))]
    if not rows or len({y for _, y in rows}) < 2:
        return {}
    keys = sorted(rows[0][0])
    x = np.array([[parts.get(k, 0.0) for k in keys] for parts, _ in rows])
    y = np.array([1.0 if good else 0.0 for _, good in rows])
    w, b = np.zeros(len(keys)), 0.0
    for _ in range(steps):
        pred = 1 / (1 + np.exp(-(x @ w + b)))
        w = np.maximum(0.0, w - 0.5 * (x.T @ (pred - y) / len(y) + 0.01 * w))
        b -= 0.5 * float(np.mean(pred - y))
    total = float(w.sum())
    return {k: round(float(v) / total, 3) for k, v in zip(keys, w)} if total > 0 else {}


def raw_pair_proposals(sessions: Sequence[Session]) -> list[Proposal]:
    """Nearest-neighbour baseline: every customer turn with a question cue and the agent reply after it, unfiltered."""
    out = []
    for q in held_out_questions(sessions):
        out.append(Proposal(entry_key=f"raw:{q.session}:{q.turn}", origin="chat", kind="faq", lang=detect_lang(q.question), question=q.question, answer=q.reference))
    return out
