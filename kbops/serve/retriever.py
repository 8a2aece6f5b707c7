"""The bot's retriever: answers from the active release, reloading it when it moves.

Ranking and the handoff decision live in :mod:`kbops.index.search`
(:func:`~kbops.index.search.answer_from`, shared with the golden gate); this
module validates queries and keeps the active release loaded.

Freshness (issue 13). In the API server's mode (``background_reload``) a
watcher thread looks at ``ACTIVE`` every :data:`WATCH_INTERVAL` seconds and
pre-loads (and verifies) a newly activated release, swapping it in when ready;
no query waits for a load, and a quiet bot has the new release before the next
customer asks. Every query also reads ``ACTIVE``. While the replica still
serves an older release than the active one (a large release takes seconds to
load), it applies the revocation overlay publish wrote just before the pointer
moved (:func:`kbops.index.release.read_overlay`, re-read only when the file
changes): each entry of the serving release that the active one withdrew,
retired or changed is revoked at once, on the very next query:

* when the best hit of a query is a revoked entry, the answer is a handoff with
  ``reason: "updating"`` (the next-best entry answers a different question: it
  is never promoted in its place); the remaining hits are listed without the
  revoked ones;
* otherwise the query is answered as usual from the serving release, with revoked
  entries left out of the hits (an entry not revoked is the same fact, same
  revision and window, in the active release);
* when no overlay covers the serving and the active release (the pointer was
  moved by hand, or the replica is further behind than the overlay keeps), every
  query is handed off with ``reason: "updating"`` until the release is loaded;
  if the active release is refused (corrupt, another model), the replica keeps
  answering from the previous one as before and reports itself ``degraded``.

:meth:`Retriever.status` reports the serving release, the active one and the lag
(``/release`` and ``/healthz``).

Shared release store (kbops/index/store.py). When releases are published to a
store other than the index directory (``KBOPS_RELEASE_STORE=s3://…``), the
watcher polls the store's ``ACTIVE`` every :data:`REMOTE_WATCH_INTERVAL`
seconds; when it moves, it copies the store's overlay into the replica's cache
directory (``KBOPS_RELEASE_CACHE``) first — from then on every query applies it
— and pulls the release into the cache (each file checked against the
manifest's checksum) and loads it from there. Queries never touch the store:
they read the active id the watcher last saw, so on a remote store a replica
learns of an activation within one poll interval. Without a remote store the
index directory is read as before.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from kbops.config import Settings, usable_cores
from kbops.errors import QueryError, ReleaseError, TransientError
from kbops.index import release as rel
from kbops.index.embedder import Embedder
from kbops.index.search import MAX_QUERY_CHARS, MAX_TOP_K, Answer, answer_from, prepare
from kbops.index.store import OVERLAY, LocalStore, ReleaseStore, store_for

__all__ = ["QueryBatcher", "QueryVectors", "Retriever", "Serving", "WATCH_INTERVAL", "UPDATING"]

#: How often the server's watcher looks at ACTIVE (seconds): a stat and a tiny read.
WATCH_INTERVAL = 0.25
#: How often the watcher reads a remote release store's ACTIVE (seconds): one small GET.
REMOTE_WATCH_INTERVAL = 1.0
#: The handoff reason while a replica has not loaded the active release and cannot vouch for the best hit.
UPDATING = "updating"
log = logging.getLogger("kbops.serve")


@dataclass(frozen=True)
class Serving:
    """What a query is answered from: the loaded release, the active release id, and, while they differ,
    the serving release's revoked entries (id → reason; None when no overlay covers the two releases)."""

    loaded: rel.LoadedRelease
    active: str | None
    revoked: dict[int, str] | None
    refused: bool = False  # the active release failed verification here

    @property
    def behind(self) -> bool:
        return self.active is not None and self.active != self.loaded.release_id


class _Pending:
    """One question waiting for its vector in a :class:`QueryBatcher`."""

    __slots__ = ("text", "vector", "error", "done")

    def __init__(self, text: str):
        self.text = text
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = False


class QueryBatcher:
    """Encodes the questions that arrive together in one model run (up to ``max_batch``).

    Each request thread asks for its own question's vector. While a model run is
    under way, the questions that arrive queue; when it ends, one of their
    threads takes its own question and the oldest others, up to ``max_batch``,
    and encodes them in one run (:meth:`Embedder.encode_query_batch`) while the
    rest wait for it. Nothing ever waits for a batch to fill: on a quiet server
    a lone question is encoded at once, alone, through ``encode_query`` (the
    same code path and vector as without batching). Under load one run of N
    short questions costs far less CPU than N runs (bench/bench_api.py, README
    "Bot API throughput"), and one run at a time per process keeps a worker on
    its own core instead of N runs fighting over it. A failed run fails every
    question in it (each request gets the error) and the next run proceeds.
    """

    def __init__(self, embedder: Any, max_batch: int):
        self._embedder, self.max_batch = embedder, max(1, max_batch)
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._running = False
        self.runs = 0  # model runs, and questions encoded: questions / runs is the mean batch size
        self.encoded = 0

    def encode_query(self, text: str) -> np.ndarray:
        """The vector of ``text``, encoded alone or together with the questions queued at the same time."""
        mine = _Pending(text)
        with self._cond:
            self._queue.append(mine)
            while self._running and not mine.done:
                self._cond.wait()
            leader = not mine.done  # nobody took this question: this thread runs the model next
            if leader:
                # its own question plus the oldest waiting ones
                self._running = True
                self._queue.remove(mine)
                batch = [mine, *self._queue[: self.max_batch - 1]]
                del self._queue[: self.max_batch - 1]
        if leader:
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.vector is not None
        return mine.vector

    def _run(self, batch: list[_Pending]) -> None:
        try:
            if len(batch) == 1:
                vectors = [self._embedder.encode_query(batch[0].text)]
            else:
                vectors = list(self._embedder.encode_query_batch([p.text for p in batch]))
        except BaseException as exc:  # noqa: BLE001 - handed to every request in the batch, which raise it
            for pending in batch:
                pending.error, pending.done = exc, True
            return
        for pending, vector in zip(batch, vectors):
            # a copy: a row of the batch's matrix would keep the whole matrix alive in the LRU
            pending.vector = np.array(vector, dtype=np.float32).reshape(1, -1)
            pending.done = True
        with self._cond:
            self.runs += 1
            self.encoded += len(batch)


class QueryVectors:
    """The embedder as the bot's queries use it, with the last ``size`` questions' vectors remembered (LRU).

    Customers repeat themselves word for word: a quick-reply button sends the
    same text every time, and "运费多少" is typed by thousands. Encoding a query
    is most of an English answer's CPU (bench/bench_api.py), and its vector
    depends only on the text and the model — never on the release or the
    overlay — so a remembered vector can never serve a stale fact. Everything
    else is the embedder's own (attribute access is passed through).
    Thread-safe; the arrays handed out are read-only. ``on_lookup(hit)`` is
    told of every lookup (the API counts them in ``/metrics``). A question not
    remembered is encoded through a :class:`QueryBatcher` (``batch`` questions
    per model run at most; 1: each alone).

    :meth:`encode_query_soon` starts a question's encoding on a helper thread,
    so the bot embeds a question while its lexical channel scores it
    (:func:`kbops.index.search.channel_scores`): the two are independent, and
    the model run and the sparse product both run outside the GIL. At 100,000
    entries that takes 1.4–2.7 ms off a 13–15 ms English query (README,
    "Measured", query latency). ``helpers``: how many questions may be encoded
    on helper threads at once (default: one fewer than the usable cores; 0:
    never, every question is encoded in its request's thread). A question
    that finds no helper free is encoded in its own thread, as before: under
    load the cores are busy anyway, and a queue for helpers would only add
    waiting. So is a question the Chinese reader reads
    (``reads_with_main_model``): it gained nothing on a helper (16.7–17.2 ms
    p50 with, 16.6–16.9 ms without); its 1.5 ms are about what the hop and its
    BLAS threads' contention with the lexical channel cost. ``kbops serve
    --workers N`` sets the default to a worker's share of the cores, less one
    (:func:`kbops.cli.bot.worker_environment`).
    """

    def __init__(self, embedder: Any, size: int, on_lookup: Callable[[bool], None] | None = None, batch: int = 1,
                 helpers: int | None = None):
        self._embedder, self.size, self.on_lookup = embedder, size, on_lookup
        self.batcher = QueryBatcher(embedder, batch)
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._unk: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        self.helpers = usable_cores() - 1 if helpers is None else max(0, helpers)
        self._free_helpers = threading.BoundedSemaphore(max(1, self.helpers))
        self._pool: ThreadPoolExecutor | None = None  # started at the first question a helper takes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)

    def encode_query(self, text: str) -> np.ndarray:
        """The query's vector (the embedder's ``encode_query``), from memory when it was asked recently."""
        vec = self._recall(text)
        return vec if vec is not None else self._encode(text)

    def encode_query_soon(self, text: str) -> Callable[[], np.ndarray]:
        """Start encoding ``text`` and return the call that gives its vector (waiting for it if need be).

        A remembered question's vector is at hand; otherwise a free helper thread
        encodes it while the caller does other work, or, with none free, the
        returned call encodes it in the caller's thread. The vector is
        :meth:`encode_query`'s, and so is a failure (raised by the returned call)."""
        vec = self._recall(text)
        if vec is not None:
            return lambda: vec
        by_main = getattr(self._embedder, "reads_with_main_model", None)
        if not self.helpers or (by_main is not None and not by_main(text)) or not self._free_helpers.acquire(blocking=False):
            return lambda: self._encode(text)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.helpers, thread_name_prefix="kbops-query-vector")
            pool = self._pool
        try:
            return pool.submit(self._encode_on_helper, text).result
        except RuntimeError:  # closed meanwhile: nothing was submitted, and the question is still answered
            self._free_helpers.release()
            return lambda: self._encode(text)

    def close(self) -> None:
        """Stop the helper threads (idle ones exit; a question already submitted is still encoded)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    def _encode_on_helper(self, text: str) -> np.ndarray:
        try:
            return self._encode(text)
        finally:
            self._free_helpers.release()

    def _recall(self, text: str) -> np.ndarray | None:
        """The remembered vector of ``text`` (None when it was not asked recently); counts the lookup."""
        with self._lock:
            vec = self._vectors.get(text)
            if vec is not None:
                self._vectors.move_to_end(text)
                self.hits += 1
            else:
                self.misses += 1
        if self.on_lookup is not None:
            self.on_lookup(vec is not None)
        return vec

    def _encode(self, text: str) -> np.ndarray:
        """Encode a question not remembered (through the batcher) and remember it."""
        vec = self.batcher.encode_query(text)
        vec.flags.writeable = False
        self._remember(self._vectors, text, vec)
        return vec

    def unk_share(self, text: str) -> float:
        """The embedder's ``unk_share`` (asked before every query's encoding), remembered alike."""
        with self._lock:
            share = self._unk.get(text)
            if share is not None:
                self._unk.move_to_end(text)
                return share
        share = float(self._embedder.unk_share(text))
        self._remember(self._unk, text, share)
        return share

    def _remember(self, memory: OrderedDict[str, Any], text: str, value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            memory[text] = value
            memory.move_to_end(text)
            while len(memory) > self.size:
                memory.popitem(last=False)


def _watch(ref: weakref.ref[Retriever], interval: float, stop: threading.Event) -> None:
    """The watcher thread: poll ACTIVE until the retriever is closed or garbage-collected."""
    while not stop.wait(interval):
        retriever = ref()
        if retriever is None:
            return
        try:
            retriever.poll()
        except Exception:  # noqa: BLE001 - the watcher must outlive any one bad poll; queries still check ACTIVE
            log.exception("release watcher: poll failed")
        del retriever


class Retriever:
    """Answers questions from the active release; thread-safe, reloads on swap."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None, background_reload: bool = False,
                 watch_interval: float | None = WATCH_INTERVAL, on_query_vector: Callable[[bool], None] | None = None):
        """``background_reload``: load a newly activated release in a thread and keep
        answering from the current one (with the revocation overlay applied) until it
        is ready; a watcher thread polls ``ACTIVE`` every ``watch_interval`` seconds
        (None: no watcher) to pre-load it (the API server's mode: a large release takes
        seconds to verify and load, and no query should wait). ``on_query_vector(hit)``
        is told of every query-vector lookup (the API counts them in ``/metrics``)."""
        import faiss

        # One query is a tiny search: OpenMP's thread team costs more than it
        # saves, and its spin-waits slow a busy host down (figures: bench/README.md).
        faiss.omp_set_num_threads(1)
        self.settings = settings
        self.embedder = embedder or Embedder.from_settings(settings)
        self.queries = QueryVectors(self.embedder, settings.query_cache, on_lookup=on_query_vector, batch=settings.query_batch,
                                    helpers=settings.query_helpers)
        store = store_for(settings)
        # A remote store is mirrored into the cache directory; a local one is read in place.
        self._store: ReleaseStore | None = None if store.is_dir(settings.index_dir) else store
        self._dir = settings.index_dir if self._store is None else (settings.release_cache or settings.home / "release-cache")
        self._remote_active: str | None = None
        self._remote_lock = threading.Lock()
        if self._store is not None and watch_interval == WATCH_INTERVAL:
            watch_interval = REMOTE_WATCH_INTERVAL
        self._release: rel.LoadedRelease | None = None
        self._lock = threading.Lock()
        self._background = background_reload
        self._loading: str | None = None
        self._refused: dict[str, str] = {}
        self._overlay_lock = threading.Lock()
        self._overlay_key: tuple[int, int, int] | None = None
        self._overlay: dict[str, Any] | None = None
        self._revoked_memo: dict[tuple[str, str], dict[int, str] | None] = {}
        self._stop = threading.Event()
        if background_reload and watch_interval:
            thread = threading.Thread(target=_watch, args=(weakref.ref(self), watch_interval, self._stop), name="kbops-release-watcher", daemon=True)
            weakref.finalize(self, self._stop.set)
            thread.start()

    def close(self) -> None:
        """Stop the watcher thread (it also stops when the retriever is garbage-collected) and the query-vector helpers."""
        self._stop.set()
        self.queries.close()

    def _active_id(self) -> str | None:
        """The active release id: the index directory's ACTIVE, or the remote store's as the watcher last saw it."""
        if self._store is None:
            return rel.active_release_id(self._dir)
        if self._remote_active is None:
            self._sync_remote()
        return self._remote_active

    def _sync_remote(self) -> None:
        """Read the remote store's ACTIVE; when it moved, mirror its overlay into the cache before anyone sees the move."""
        assert self._store is not None
        with self._remote_lock:
            try:
                active = self._store.active_release_id()
                if active is None or active == self._remote_active:
                    return
                overlay = self._store.read_overlay()
            except TransientError as exc:
                log.warning("release store %s unreachable, still serving %s: %s", self._store.url, self._remote_active, exc)
                return
            if overlay is not None:
                LocalStore(self._dir).write(OVERLAY, overlay)
            log.info("release store %s: %s is active (was %s)", self._store.url, active, self._remote_active)
            self._remote_active = active

    def poll(self) -> None:
        """One watcher round: load the first release, or start loading a newly activated one."""
        if self._store is not None:
            self._sync_remote()
        if self._release is None:
            try:
                self.release()
            except ReleaseError:
                pass  # nothing to serve yet; queries answer 503 with the reason
            return
        active = self._active_id()
        if active is not None and active != self._release.release_id and active not in self._refused:
            self._load_in_background(active)

    def release(self) -> rel.LoadedRelease:
        """The release to answer from: the active one, (re)loaded when the pointer moved.

        A release that fails verification is refused once and remembered (not
        re-read on every query); the last good release keeps serving.
        """
        return self._release_for(self._active_id())

    def _release_for(self, active: str | None) -> rel.LoadedRelease:
        """:meth:`release` for an ``ACTIVE`` already read (a query reads the pointer once)."""
        current = self._release
        if active is None:
            if current is not None:
                return current
            raise ReleaseError(f"no active release under {self._store.url if self._store else self._dir}; run `kbops publish` first")
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
            raise ReleaseError(self._refused.get(active, f"release {active} could not be read from the release store yet; retrying"))

    def serving(self) -> Serving:
        """The release a query is answered from, and what to hold back while it is not the active one."""
        active = self._active_id()
        loaded = self._release_for(active)
        if active is None or active == loaded.release_id:
            return Serving(loaded, active, {})
        return Serving(loaded, active, self._revoked(loaded, active), refused=active in self._refused)

    def _revoked(self, loaded: rel.LoadedRelease, active: str) -> dict[int, str] | None:
        """The overlay applied to ``loaded`` while ``active`` is not loaded; re-read only when the file changed."""
        try:
            st = os.stat(rel.overlay_path(self._dir))
            key: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            key = None
        with self._overlay_lock:
            if key != self._overlay_key:
                self._overlay = rel.read_overlay(self._dir) if key else None
                self._overlay_key = key
                self._revoked_memo = {}
            memo = (loaded.release_id, active)
            if memo not in self._revoked_memo:
                revoked = rel.overlay_revoked_for(self._overlay, loaded.release_id, active, loaded.entries)
                self._revoked_memo[memo] = revoked
                log.info(
                    "serving %s while %s loads: %s", loaded.release_id, active,
                    f"{len(revoked)} revoked entries held back" if revoked is not None else "no overlay covers them; handing off until loaded",
                )
            return self._revoked_memo[memo]

    def status(self) -> dict[str, Any]:
        """The serving release, the active one and their lag, for ``/release`` and ``/healthz``.

        ``lag_seconds``: how long the active release has been active without being
        served here (0 when it is served); ``status``: ok, updating (loading the
        active release, revoked entries held back) or degraded (the active release
        was refused here; the reason is in ``refused``)."""
        serving = self.serving()
        activated = self._activated_at(serving.active) if serving.active else None
        lag = max(0.0, time.time() - activated) if serving.behind and activated is not None else 0.0
        state = "ok" if not serving.behind else ("degraded" if serving.refused else UPDATING)
        return {
            "status": state,
            "serving_release_id": serving.loaded.release_id,
            "active_release_id": serving.active,
            "lag_seconds": round(lag, 3),
            "activated_at": datetime.fromtimestamp(activated, UTC).isoformat() if activated is not None else None,
            "loading": self._loading is not None,
            "revoked_entries": len(serving.revoked) if serving.revoked is not None else None,
            "refused": self._refused.get(serving.active) if serving.active else None,
        }

    def _activated_at(self, active: str) -> float | None:
        """When ``active`` was activated: from the overlay written with it, else the pointer file's mtime."""
        with self._overlay_lock:
            overlay = self._overlay
        if overlay is None or overlay.get("release_id") != active:
            overlay = rel.read_overlay(self._dir)
        if overlay and overlay.get("release_id") == active and overlay.get("activated_at"):
            return datetime.fromisoformat(overlay["activated_at"]).timestamp()
        try:
            return rel.pointer_path(self._dir).stat().st_mtime
        except FileNotFoundError:
            return None

    def _load(self, release_id: str) -> rel.LoadedRelease | None:
        try:
            if self._store is not None:
                self._store.pull_release(release_id, self._dir)
            loaded = prepare(rel.load_release(
                self._dir, release_id, expect_model=self.embedder.model_id, expect_dim=self.embedder.dim,
                lexical_scorer=self.settings.lexical_scorer,
            ))
        except ReleaseError as exc:
            self._refused[release_id] = str(exc)
            log.error("release refused, still serving the previous one: %s", exc)
            return None
        except TransientError as exc:  # the store is unreachable: not refused, the next poll tries again
            log.warning("release %s not loaded yet: %s", release_id, exc)
            return None
        # A load that finished after the pointer moved on (two activations in quick succession) is not
        # swapped in over a newer one: the watcher loads the release that is active now.
        if self._release is None or release_id == self._active_id():
            self._release = loaded
            if self._store is not None:  # keep the pulled releases this replica may still need
                self._store.prune_cache(self._dir, {release_id, *(r for r in (self._remote_active,) if r)})
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
        """Answer ``query`` from the active release; every door's query passes these checks (API, ``kbops ask``).

        A malformed query is a :class:`~kbops.errors.QueryError` (400) naming
        what is wrong, never an exception from deeper down: text that is not
        text or not encodable as UTF-8 (a lone surrogate, which is what a
        non-UTF-8 byte in a command-line argument becomes), a ``top_k`` that is
        a boolean or a float, an unknown language. Values are repeated in
        messages only shortened.
        """
        if query is None:
            query = ""
        if not isinstance(query, str):
            raise QueryError(f"the query must be text, not {type(query).__name__}")
        query = query.strip()
        if not query:
            raise QueryError("the query is empty; send the customer's question")
        if len(query) > MAX_QUERY_CHARS:
            raise QueryError(f"the query is {len(query):,} characters; the limit is {MAX_QUERY_CHARS:,}")
        try:
            query.encode("utf-8")
        except UnicodeEncodeError:
            raise QueryError("the query is not valid UTF-8 text (it holds a lone surrogate); send the question as UTF-8") from None
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise QueryError(f"top_k={_shown(top_k)} must be a whole number from 1 to {MAX_TOP_K}")
        if lang is not None and lang not in ("zh", "en"):
            raise QueryError(f"lang filter {_shown(lang)} must be 'zh' or 'en'")
        serving = self.serving()
        loaded = serving.loaded
        unknown = sorted(set(categories or ()) - loaded.kinds)
        if unknown:
            raise QueryError(f"category {_shown(unknown[0])} is not in this release; categories: {', '.join(sorted(loaded.kinds))}")
        revoked = serving.revoked
        if revoked is None:
            if not serving.refused:  # behind, and nothing says which facts changed: hand off until loaded
                return Answer(loaded.release_id, query, True, UPDATING, [])
            revoked = {}
        if not revoked:
            return answer_from(loaded, self.queries, self.settings, query, top_k, lang=lang, tags=tags, categories=categories, now=now)
        answer = answer_from(loaded, self.queries, self.settings, query, top_k + len(revoked), lang=lang, tags=tags, categories=categories, now=now)
        kept = [h for h in answer.hits if h.entry_id not in revoked][:top_k]
        if answer.hits and answer.hits[0].entry_id in revoked:
            return replace(answer, handoff=True, reason=UPDATING, hits=kept, confidence=None, options=[])
        options = [o for o in answer.options if o.entry_id not in revoked]
        if answer.reason == "clarify" and len(options) < 2:  # a choice among revoked facts is no choice: wait for the release
            return replace(answer, handoff=True, reason=UPDATING, hits=kept, options=[])
        return replace(answer, hits=kept, options=options)


def _shown(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for an error message that names a bad value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"

