"""The bot's retriever: answers from the active release, reloading it when it moves.

Ranking and the handoff decision live in :mod:`kbops.index.search`
(:func:`~kbops.index.search.answer_from`, shared with the golden gate); this
module validates queries, keeps the active release loaded and notices a moved
``ACTIVE`` pointer on the next query, swapping releases without a failed
request.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from kbops.config import Settings
from kbops.db import session_scope
from kbops.errors import QueryError, ReleaseError
from kbops.index import release as rel
from kbops.index.embedder import Embedder
from kbops.index.search import MAX_QUERY_CHARS, MAX_TOP_K, Answer, answer_from
from kbops.pii import scrub
from kbops.schema import QueryLogEntry

__all__ = ["Retriever", "log_answer"]


class Retriever:
    """Answers questions from the active release; thread-safe, reloads on swap."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None, background_reload: bool = False):
        """``background_reload``: load a newly activated release in a thread and keep
        answering from the current one until it is ready (the API server's mode: a
        large release takes seconds to verify and load, and no query should wait)."""
        import faiss

        # One query is a tiny search: OpenMP's thread team costs more than it
        # saves, and its spin-waits slow a busy host down (figures: bench/README.md).
        faiss.omp_set_num_threads(1)
        self.settings = settings
        self.embedder = embedder or Embedder.from_settings(settings)
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


def log_answer(settings: Settings, answer: Answer) -> None:
    """Record the query (scrubbed of private data) and the outcome; never fails the answer."""
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
