"""The bot's query log: what was asked (scrubbed of private data), what was answered, how fast.

Two ways in, one row shape (:func:`log_row`):

* :func:`log_answer` writes one row now, in its own transaction: ``kbops ask``,
  where a command answers a handful of questions and exits;
* :class:`QueryLogWriter` takes rows off the request path of the bot API: a
  request only puts its row on a bounded queue, and one background thread per
  process writes whatever has queued up in one transaction (under load, dozens
  of rows per commit instead of a commit — an fsync on SQLite — per query).
  :meth:`QueryLogWriter.close` (the server's shutdown) writes everything queued
  before it returns, so a clean shutdown loses nothing. When the database
  cannot keep up and the queue is full, a row is dropped and counted
  (``on_drop``; the API exports it as ``kbops_query_log_dropped_total``) rather
  than making customers wait for the log: the log serves analysis, the answer
  serves the customer.

Neither ever fails the answer: a write that fails is logged (its exception
class only: the rows hold customers' questions) and the answer stands.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert

from kbops.config import Settings
from kbops.db import session_scope
from kbops.index.search import Answer
from kbops.schema import QueryLogEntry, utcnow

__all__ = ["QueryLogWriter", "log_answer", "log_row", "MAX_PENDING", "MAX_BATCH"]

log = logging.getLogger("kbops.serve")

#: Rows a process holds at most before it drops new ones (a few MB; ~30 s at 300 queries/s).
MAX_PENDING = 10_000
#: Rows written in one transaction at most.
MAX_BATCH = 500
#: The longest logged question (characters); queries are at most MAX_QUERY_CHARS anyway.
_QUESTION_CHARS = 2000


def log_row(answer: Answer, *, latency_ms: float | None = None, request_id: str | None = None) -> dict[str, Any]:
    """The ``query_log`` row for ``answer``: the scrubbed query, the top entry, the outcome and its confidence, when, how fast."""
    top = answer.top
    return {
        "at": utcnow(),
        "release_id": answer.release_id,
        "question": answer.scrubbed_query[:_QUESTION_CHARS],
        "entry_id": top.entry_id if top else None,
        "score": top.score if top else None,
        "confidence": round(answer.confidence, 4) if answer.confidence is not None else None,
        "handoff": answer.handoff,
        "reason": answer.reason,
        "latency_ms": round(latency_ms, 3) if latency_ms is not None else None,
        "request_id": request_id,
    }


def _write(settings: Settings, rows: list[dict[str, Any]]) -> bool:
    """Insert ``rows`` in one transaction; False (and a warning) when the write failed."""
    try:
        with session_scope(settings) as db:
            db.execute(insert(QueryLogEntry), rows)
        return True
    except Exception as exc:  # noqa: BLE001 - the query log must not take the bot down
        log.warning("query log write of %d row(s) failed: %s", len(rows), type(exc).__name__)
        return False


def log_answer(settings: Settings, answer: Answer, *, latency_ms: float | None = None, request_id: str | None = None) -> None:
    """Record the query (scrubbed of private data) and the outcome now; never fails the answer."""
    _write(settings, [log_row(answer, latency_ms=latency_ms, request_id=request_id)])


class QueryLogWriter:
    """Writes query-log rows from a bounded queue in a background thread, in batches.

    Until :meth:`start` is called (the API server's startup), :meth:`submit`
    writes synchronously, as :func:`log_answer` does: an app used without its
    lifespan (a test client) keeps read-after-write order. After
    :meth:`start`, :meth:`submit` only enqueues; :meth:`flush` waits until
    everything submitted so far is written, :meth:`close` flushes and stops the
    thread (also run at interpreter exit)."""

    def __init__(self, settings: Settings, *, max_pending: int = MAX_PENDING, max_batch: int = MAX_BATCH,
                 on_drop: Callable[[int], None] | None = None, on_written: Callable[[int, bool], None] | None = None) -> None:
        """``on_drop(n)``: n rows dropped because the queue was full; ``on_written(n, ok)``: a batch was written (or failed)."""
        self.settings = settings
        self.max_batch = max_batch
        self.on_drop = on_drop
        self.on_written = on_written
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_pending)
        self._done = threading.Condition()
        self._submitted = 0  # rows put on the queue (guarded by _done)
        self._processed = 0  # rows written, failed or dropped by the thread (guarded by _done)
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Rows queued and not yet written."""
        with self._done:
            return self._submitted - self._processed

    def start(self) -> None:
        """Write from now on in a background thread (idempotent)."""
        if self._thread is not None:
            return
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="kbops-query-log", daemon=True)
        self._thread.start()
        # A process that exits without the server's shutdown (Ctrl-C in a script) still writes what it queued.
        atexit.register(_close_at_exit, weakref.ref(self))

    def submit(self, answer: Answer, *, latency_ms: float | None = None, request_id: str | None = None) -> bool:
        """Log ``answer``: queued when started, else written now. False when it was dropped (queue full)."""
        row = log_row(answer, latency_ms=latency_ms, request_id=request_id)
        with self._done:  # close() marks the writer closed under this lock: no row lands behind its stop mark
            queued = self._thread is not None and not self._closed
            dropped = False
            if queued:
                try:
                    self._queue.put_nowait(row)
                    self._submitted += 1
                except queue.Full:
                    dropped = True
        if not queued:
            _write(self.settings, [row])
            return True
        if dropped and self.on_drop is not None:
            self.on_drop(1)
        return not dropped

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every row submitted before this call is written (or failed); False on timeout."""
        with self._done:
            target = self._submitted
            return self._done.wait_for(lambda: self._processed >= target or self._thread is None, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then stop the thread (the server's clean shutdown)."""
        thread = self._thread
        if thread is None or self._closed:
            return
        with self._done:
            self._closed = True
        self._queue.put(None)  # the thread drains what is before it, then stops
        thread.join(timeout)
        self._thread = None
        with self._done:
            self._done.notify_all()

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            rows: list[dict[str, Any]] = []
            if first is None:
                stop = True
            else:
                rows.append(first)
            # Whatever queued while the last batch was written goes in this one.
            while len(rows) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    continue
                rows.append(item)
            if rows:
                ok = _write(self.settings, rows)
                if self.on_written is not None:
                    self.on_written(len(rows), ok)
                with self._done:
                    self._processed += len(rows)
                    self._done.notify_all()


def _close_at_exit(ref: weakref.ref[QueryLogWriter]) -> None:
    """At interpreter exit: write what a still-running writer queued."""
    writer = ref()
    if writer is not None:
        writer.close()
