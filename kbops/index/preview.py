"""Impact preview: replay real questions from ``query_log`` against a change before it goes live.

Two scales, one replay set (:class:`LoggedQueries`: the distinct questions of
the last N days, with how often each was asked, how often handed off, today's
handoffs and the best score the bot gave it):

* **one review item** (:func:`item_impact`): the item's question and alternate
  questions are scored against every logged question with the bot's fusion
  (:mod:`kbops.index.similarity`: ``w·dense + (1−w)·lexical``, ``w`` from the
  logged question's own readability, as the bot weighs a query). A logged
  question the item matches at or above ``handoff_threshold`` and better than
  the bot did is one the item *would answer*: *newly* when the bot handed it
  off, a *changed answer* when the bot answered it with another entry at a
  lower score. This is the review page's "would answer 37 questions customers
  asked last week (12 handed off today)". The lexical side weighs words by
  their rarity among the logged questions (not the KB's), an approximation
  the whole-release replay below does not make.
* **a whole release** (:func:`release_diff`): each logged question is answered
  by :func:`kbops.index.search.answer_from` against the candidate release and
  against the serving one — the same code the bot and the golden-question gate
  run — and the outcomes are compared: newly answered, answer changed, newly
  handed off (``kbops publish --preview``).

:func:`answer_active` is the same replay against the release the bot serves
now: what gap topics are scored by (a topic is covered when the bot answers it,
not when some approved entry resembles it).

Counts are in *asks* (a question asked 5 times counts 5); examples are the
most-asked questions of each kind. The replay set is built once
(:func:`build_replay`: one embedding pass over the distinct questions, through
the embedder's cache) and then each item costs one sparse product and one
dense matrix-vector product over the distinct questions (bench/bench_preview.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.index import release as rel
from kbops.index import similarity
from kbops.index.lexical import LexicalIndex
from kbops.index.release import LoadedRelease
from kbops.index.search import Answer, answer_from
from kbops.index.store import sync_from_store
from kbops.schema import QueryLogEntry, utcnow

#: Days of questions replayed unless told otherwise ("customers asked last week").
DEFAULT_DAYS = 7
#: Examples kept per kind of change.
EXAMPLES = 5


@dataclass
class LoggedQueries:
    """The distinct logged questions of a period and what the bot did with them (parallel lists)."""

    questions: list[str] = field(default_factory=list)
    asks: list[int] = field(default_factory=list)
    handoffs: list[int] = field(default_factory=list)
    handoffs_today: list[int] = field(default_factory=list)
    best_score: list[float] = field(default_factory=list)
    entry_id: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.questions)


def logged_queries(db: Session, *, days: int = DEFAULT_DAYS, now: datetime | None = None, limit: int = 200_000) -> LoggedQueries:
    """The questions asked in the last ``days`` days, grouped by text (most asked first)."""
    now = now or utcnow()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = db.execute(
        select(
            QueryLogEntry.question,
            func.count(),
            func.coalesce(func.sum(_as_int(QueryLogEntry.handoff.is_(True))), 0),
            func.coalesce(func.sum(_as_int(QueryLogEntry.handoff.is_(True) & (QueryLogEntry.at >= today))), 0),
            func.max(func.coalesce(QueryLogEntry.score, 0.0)),
            func.max(QueryLogEntry.entry_id),
        )
        .where(QueryLogEntry.at >= now - timedelta(days=days))
        .group_by(QueryLogEntry.question)
        .order_by(func.count().desc(), QueryLogEntry.question)
        .limit(limit)
    ).tuples()
    out = LoggedQueries()
    for question, asks, handoffs, today_handoffs, score, entry in rows:
        out.questions.append(question)
        out.asks.append(int(asks))
        out.handoffs.append(int(handoffs))
        out.handoffs_today.append(int(today_handoffs))
        out.best_score.append(float(score or 0.0))
        out.entry_id.append(int(entry) if entry is not None else None)
    return out


def _as_int(condition: Any) -> Any:
    """A boolean SQL expression as 0/1 (summable on SQLite and PostgreSQL alike)."""
    return case((condition, 1), else_=0)


@dataclass
class Replay:
    """Logged questions ready to be scored against many items: lexical index, vectors, fusion weights."""

    queries: LoggedQueries
    lexical: LexicalIndex
    vectors: np.ndarray | None  # (n, dim), zero rows for unreadable questions; None without a model
    weights: np.ndarray  # each question's own fusion weight
    threshold: float


def build_replay(queries: LoggedQueries, embedder: Any | None, settings: Settings) -> Replay:
    """Index the logged questions once (lexical always; dense when ``embedder`` is given)."""
    lexical = LexicalIndex(list(enumerate(queries.questions)), settings.lexical_scorer)
    if embedder is not None and len(queries):
        view = similarity.dense_view(embedder, queries.questions, settings.dense_weight)
        vectors, weights = view.vectors, np.asarray(view.weights, dtype=np.float32)
    else:
        vectors, weights = None, np.zeros(len(queries), dtype=np.float32)
    return Replay(queries, lexical, vectors, weights, settings.handoff_threshold)


@dataclass
class ItemImpact:
    """What one proposed entry would change for the replayed questions (counts in asks)."""

    would_answer: int = 0  # asks it would answer better than the bot did (newly + changed)
    questions: int = 0  # distinct questions among them
    newly_answered: int = 0  # asks the bot handed off
    handed_off_today: int = 0  # of those, handed off today
    changed: int = 0  # asks the bot answered with another entry, at a lower score
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def item_scores(replay: Replay, texts: list[str], embedder: Any | None) -> np.ndarray:
    """Best fused score of any of ``texts`` against each logged question."""
    return many_item_scores(replay, [texts], embedder)[0]


def many_item_scores(replay: Replay, items: list[list[str]], embedder: Any | None) -> list[np.ndarray]:
    """:func:`item_scores` for many items at once: one embedding call and one matrix product for all their texts."""
    n = len(replay.queries)
    flat = [t for texts in items for t in texts]
    out = [np.zeros(n, dtype=np.float32) for _ in items]
    if not n or not flat:
        return out
    dense = None
    if embedder is not None and replay.vectors is not None:
        dense = similarity.pair_reader(embedder).encode(flat) @ replay.vectors.T  # (texts, questions): as dense_view read them
    k = 0
    for i, texts in enumerate(items):
        for text in texts:
            lexical = replay.lexical.similarities(text).astype(np.float32)
            d = dense[k] if dense is not None else np.zeros(n, dtype=np.float32)
            out[i] = np.maximum(out[i], similarity.fuse(replay.weights, d, lexical))
            k += 1
    return out


def item_impact(replay: Replay, texts: list[str], embedder: Any | None, *, entry_id: int | None = None) -> ItemImpact:
    """Which replayed questions an entry asking ``texts`` would answer (see the module docstring).

    ``entry_id``: the entry the item replaces, if any; questions that entry
    already answers do not count as changed (the same entry keeps answering)."""
    return impact_of(replay, item_scores(replay, [t for t in texts if t], embedder), entry_id)


def item_impacts(replay: Replay, items: list[tuple[list[str], int | None]], embedder: Any | None) -> list[ItemImpact]:
    """:func:`item_impact` of many items (texts, replaced entry id) in one pass (a page of review cards)."""
    scores = many_item_scores(replay, [[t for t in texts if t] for texts, _ in items], embedder)
    return [impact_of(replay, s, entry_id) for s, (_, entry_id) in zip(scores, items)]


def impact_of(replay: Replay, scores: np.ndarray, entry_id: int | None = None) -> ItemImpact:
    """The impact an entry scoring ``scores`` against the replayed questions would have."""
    q = replay.queries
    out = ItemImpact()
    hits = np.nonzero(scores >= replay.threshold)[0]
    for hit in hits:  # already most asked first
        i = int(hit)
        handed = q.handoffs[i] > 0
        answered_by_other = q.asks[i] > q.handoffs[i] and q.entry_id[i] != entry_id and float(scores[i]) > q.best_score[i]
        if not handed and not answered_by_other:
            continue
        out.questions += 1
        out.would_answer += q.asks[i] if answered_by_other else q.handoffs[i]
        if handed:
            out.newly_answered += q.handoffs[i]
            out.handed_off_today += q.handoffs_today[i]
        if answered_by_other:
            out.changed += q.asks[i] - q.handoffs[i]
        if len(out.examples) < EXAMPLES:
            out.examples.append({"question": q.questions[i], "asked": q.asks[i], "handed_off": q.handoffs[i], "score": round(float(scores[i]), 3),
                                 "bot_score": round(q.best_score[i], 3)})
    return out


@dataclass
class ReleaseDiff:
    """What answering the replayed questions from ``release_id`` instead of ``against`` would change (in asks)."""

    release_id: str
    against: str | None
    questions: int = 0  # distinct questions replayed
    asks: int = 0
    newly_answered: int = 0
    changed: int = 0
    new_handoffs: int = 0
    unchanged: int = 0
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"newly_answered": [], "changed": [], "new_handoffs": []})
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Batched:
    """The embedder, with every replayed question embedded in one batch up front.

    :func:`answer_from` embeds its query one at a time (the bot's path); a replay
    knows all its questions in advance, and one batched pass (through the
    embedder's cache) costs a fraction of one call per question per release."""

    def __init__(self, embedder: Any, questions: list[str]) -> None:
        self.embedder = embedder
        readable = [q for q in questions if embedder.unk_share(q) < 1.0]
        self.vectors = dict(zip(readable, embedder.encode(readable))) if readable else {}

    def encode_query(self, text: str) -> Any:
        vector = self.vectors.get(text)
        return vector[None, :] if vector is not None else self.embedder.encode_query(text)

    def unk_share(self, text: str) -> float:
        return float(self.embedder.unk_share(text))


def release_diff(
    candidate: LoadedRelease, active: LoadedRelease | None, embedder: Any, settings: Settings, queries: LoggedQueries, *, now: datetime | None = None
) -> ReleaseDiff:
    """Answer every replayed question from ``candidate`` and from ``active`` (the bot's code, :func:`answer_from`) and compare.

    Without an active release, the bot's logged outcome is the "before"."""
    started = time.perf_counter()
    now = now or utcnow()
    out = ReleaseDiff(candidate.release_id, active.release_id if active else None)
    batched = _Batched(embedder, queries.questions)
    for i, question in enumerate(queries.questions):
        asks = queries.asks[i]
        after = answer_from(candidate, batched, settings, question, 1, now=now)
        if active is not None:
            before = answer_from(active, batched, settings, question, 1, now=now)
            was_handoff, was_answer = before.handoff, (before.top.answer if before.top else None)
        else:
            was_handoff, was_answer = queries.handoffs[i] == asks, None
        now_answer = after.top.answer if after.top else None
        out.questions += 1
        out.asks += asks
        if was_handoff and not after.handoff:
            kind = "newly_answered"
        elif not was_handoff and after.handoff:
            kind = "new_handoffs"
        elif not after.handoff and was_answer is not None and now_answer != was_answer:
            kind = "changed"
        else:
            out.unchanged += asks
            continue
        setattr(out, kind, getattr(out, kind) + asks)
        if len(out.examples[kind]) < EXAMPLES:
            out.examples[kind].append({"question": question, "asked": asks, "before": None if was_handoff else was_answer,
                                       "after": None if after.handoff else now_answer, "reason": after.reason})
    out.seconds = round(time.perf_counter() - started, 3)
    return out


def answer_active(settings: Settings, embedder: Any, questions: list[str], *, now: datetime | None = None) -> list[Answer] | None:
    """The bot's answer to each question from the active release; None when nothing is active yet.

    The active release is the store's (pulled into the index directory first,
    as a publisher does: on a worker that did not publish it, the local copy
    may be behind). Loaded with the embedder's model checked, so a release
    built with another model raises :class:`~kbops.errors.ReleaseError`
    instead of being scored with vectors it cannot compare. One embedding pass
    over the questions (:class:`_Batched`), then the bot's code per question.
    """
    active = sync_from_store(settings)
    if active is None:
        return None
    loaded = rel.load_release(settings.index_dir, active, expect_model=embedder.model_id, expect_dim=embedder.dim, lexical_scorer=settings.lexical_scorer)
    batched = _Batched(embedder, questions)
    now = now or utcnow()
    return [answer_from(loaded, batched, settings, question, 1, now=now) for question in questions]
