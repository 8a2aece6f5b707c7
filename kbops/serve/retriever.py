"""Hybrid retrieval over the active release, with a handoff decision.

Score = w · dense + (1 − w) · lexical, both cosines in [0, 1], where
w = ``dense_weight`` × (1 − share of the query the model cannot read). So an
English query uses both channels, and a Chinese query with the default
English-only model is answered by the lexical channel alone instead of by
meaningless [UNK] vectors.

The answer is handed off to a human (``handoff: true``) when the best score
is below ``handoff_threshold`` (reason ``no_match``) or the two best entries
are too close to tell apart (``ambiguous``). Only entries inside their
validity window *now* are served. The retriever notices a moved ``ACTIVE``
pointer on the next query and swaps releases without a failed request.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from kbops.config import Settings
from kbops.errors import QueryError, ReleaseError
from kbops.index import release as rel
from kbops.index.embedder import Embedder
from kbops.schema import utcnow

MAX_QUERY_CHARS = 2_000
MAX_TOP_K = 50
CANDIDATES = 50


@dataclass
class Hit:
    entry_id: int
    entry_key: str
    question: str
    answer: str
    score: float
    dense: float
    lexical: float
    lang: str
    tags: list[str]


@dataclass
class Answer:
    release_id: str
    query: str
    handoff: bool
    reason: str | None
    hits: list[Hit] = field(default_factory=list)

    @property
    def top(self) -> Hit | None:
        return self.hits[0] if self.hits else None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["entry_id"] = self.top.entry_id if self.top else None
        out["score"] = self.top.score if self.top else 0.0
        out["answer"] = self.top.answer if self.top and not self.handoff else None
        return out


def _in_window(entry: dict[str, Any], now: datetime) -> bool:
    start, end = entry.get("valid_from"), entry.get("valid_to")
    if start and datetime.fromisoformat(start) > now:
        return False
    if end and datetime.fromisoformat(end) <= now:
        return False
    return True


class Retriever:
    """Answers questions from the active release; thread-safe, reloads on swap."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None, background_reload: bool = False):
        """``background_reload``: load a newly activated release in a thread and keep
        answering from the current one until it is ready (the API server's mode: a
        large release takes seconds to verify and load, and no query should wait)."""
        import faiss

        from kbops.index.publish import make_embedder

        # One query is a tiny search: OpenMP's thread team costs more than it
        # saves, and on a busy 2-core host its spin-waits made a 100k-vector
        # flat search 8x slower (44 ms vs 5.8 ms median, bench/README.md).
        faiss.omp_set_num_threads(1)
        self.settings = settings
        self.embedder = embedder or make_embedder(settings)
        self._release: rel.LoadedRelease | None = None
        self._lock = threading.Lock()
        self._background = background_reload
        self._loading: str | None = None
        self._refused: dict[str, str] = {}

    def release(self) -> rel.LoadedRelease:
        """The release to answer from: the active one, (re)loaded when the pointer moved.

        A release that fails verification is refused once and remembered (not
        re-read on every query); the last good release keeps serving.
        """
        active = rel.active_release_id(self.settings.index_dir)
        current = self._release
        if active is None:
            if current is not None:
                return current
            raise ReleaseError(f"no active release under {self.settings.index_dir}; run `kbops publish` first")
        if current is not None and (current.release_id == active or active in self._refused):
            return current
        if current is not None and self._background:
            self._load_in_background(active)
            return current
        with self._lock:
            if self._release is not None and self._release.release_id == active:
                return self._release
            loaded = self._load(active) if active not in self._refused else None
            if loaded is not None:
                return loaded
            if self._release is not None:
                return self._release
            raise ReleaseError(self._refused[active])

    def _load(self, release_id: str) -> rel.LoadedRelease | None:
        try:
            loaded = rel.load_release(
                self.settings.index_dir, release_id, expect_model=self.embedder.model_id, expect_dim=self.embedder.dim,
                lexical_scorer=self.settings.lexical_scorer,
            )
        except ReleaseError as exc:
            self._refused[release_id] = str(exc)
            logging.getLogger("kbops.serve").error("release refused, still serving the previous one: %s", exc)
            return None
        self._release = loaded
        return loaded

    def _load_in_background(self, release_id: str) -> None:
        with self._lock:
            if self._loading == release_id:
                return
            self._loading = release_id

        def run() -> None:
            try:
                self._load(release_id)
            finally:
                with self._lock:
                    if self._loading == release_id:
                        self._loading = None

        threading.Thread(target=run, name=f"kbops-load-{release_id}", daemon=True).start()

    def search(
        self,
        query: str,
        top_k: int = 3,
        *,
        lang: str | None = None,
        tags: list[str] | None = None,
        categories: list[str] | None = None,
        now: datetime | None = None,
    ) -> Answer:
        query = (query or "").strip()
        if not query:
            raise QueryError("the query is empty; send the customer's question")
        if len(query) > MAX_QUERY_CHARS:
            raise QueryError(f"the query is {len(query):,} characters; the limit is {MAX_QUERY_CHARS:,}")
        if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise QueryError(f"top_k={top_k!r} must be a whole number from 1 to {MAX_TOP_K}")
        if lang is not None and lang not in ("zh", "en"):
            raise QueryError(f"lang filter {lang!r} must be 'zh' or 'en'")
        loaded = self.release()
        unknown = sorted(set(categories or ()) - loaded.kinds)
        if unknown:
            raise QueryError(f"category {unknown[0]!r} is not in this release; categories: {', '.join(sorted(loaded.kinds))}")
        return answer_from(loaded, self.embedder, self.settings, query, top_k, lang=lang, tags=tags, categories=categories, now=now)


def answer_from(
    loaded: rel.LoadedRelease,
    embedder: Embedder,
    settings: Settings,
    query: str,
    top_k: int = 3,
    *,
    lang: str | None = None,
    tags: list[str] | None = None,
    categories: list[str] | None = None,
    now: datetime | None = None,
) -> Answer:
    """Rank ``loaded``'s entries for an already validated query and decide on handoff.

    Separate from :class:`Retriever` so a release that is not active yet can be
    scored the same way the bot will score it (golden questions at activation).
    """
    now = now or utcnow()
    unk = embedder.unk_share(query)
    w = settings.dense_weight * (1.0 - unk)
    dense: dict[int, float] = {}
    if w > 0 and loaded.index.ntotal:
        vec = embedder.encode_query(query)
        sims, ids = loaded.index.search(vec, min(CANDIDATES, loaded.index.ntotal))
        for s, i in zip(sims[0], ids[0]):
            if i >= 0:
                dense[int(i)] = max(dense.get(int(i), -1.0), float(s))
    lexical = loaded.lexical.scores(query, limit=CANDIDATES)
    hits = []
    for eid in set(dense) | set(lexical):
        entry = loaded.entries.get(eid)
        if entry is None or not _in_window(entry, now):
            continue
        if lang and entry["lang"] != lang:
            continue
        if tags and not set(tags) & set(entry["tags"]):
            continue
        if categories and entry["kind"] not in categories:
            continue
        d, lx = max(dense.get(eid, 0.0), 0.0), lexical.get(eid, 0.0)
        score = w * d + (1 - w) * lx
        hits.append(Hit(eid, entry["entry_key"], entry["question"], entry["answer"], round(score, 4), round(d, 4), round(lx, 4), entry["lang"], entry["tags"]))
    hits.sort(key=lambda h: (-h.score, h.entry_id))
    handoff, reason = False, None
    if not hits or hits[0].score < settings.handoff_threshold:
        handoff, reason = True, "no_match"
    elif len(hits) > 1 and hits[0].score - hits[1].score < settings.ambiguity_margin and hits[0].answer != hits[1].answer:
        handoff, reason = True, "ambiguous"
    return Answer(loaded.release_id, query, handoff, reason, hits[:top_k])


def log_answer(settings: Settings, answer: Answer) -> None:
    """Record the query (scrubbed of private data) and the outcome; never fails the answer."""
    import logging

    from kbops.db import session_scope
    from kbops.pii import scrub
    from kbops.schema import QueryLogEntry

    try:
        with session_scope(settings) as db:
            db.add(
                QueryLogEntry(
                    release_id=answer.release_id,
                    question=scrub(answer.query)[:2000],
                    entry_id=answer.top.entry_id if answer.top else None,
                    score=answer.top.score if answer.top else None,
                    handoff=answer.handoff,
                    reason=answer.reason,
                )
            )
    except Exception as exc:  # noqa: BLE001 - the query log must not take the bot down
        logging.getLogger("kbops.serve").warning("query log write failed: %s", type(exc).__name__)
