"""The bot API's Prometheus metrics (``GET /metrics``), correct with any number of uvicorn workers.

With several workers, each is its own process with its own counters; a scrape
reaches one of them. prometheus-client's multiprocess mode makes every process
write its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and the scraped worker
adds them all up (https://prometheus.github.io/client_python/multiprocess/).
The directory must be set in the environment *before* prometheus-client is
imported and emptied before the server starts: ``kbops serve --workers N``
does both (kbops/cli/bot.py), creating a private directory when none is set.
Without it (one process: tests, ``kbops serve --workers 1`` with no
directory set) the default registry is exported.

Multiprocess mode has no Info metric and no callback gauges, so a release is a
gauge with a ``release_id`` label set to 1 (0 for one no longer served) and
each worker refreshes its release gauges once a second
(:class:`ReleaseGauges`, run by the API's lifespan) and on every scrape; a
worker's live gauges are removed when it shuts down (``mark_process_dead``).
Gauges aggregate across live workers as the worst value (oldest release,
largest lag).

Metrics (all prefixed ``kbops_``):

====================================================  =========  =====================================================
``api_requests_total{endpoint,status}``               counter    every HTTP request, by route and status code
``api_request_duration_seconds{endpoint}``            histogram  server time until the response headers
``search_queries_total{lang}``                        counter    answered queries (batch items too), by query language
``search_handoffs_total{reason,lang}``                counter    queries handed off, by reason and language
``search_confidence{lang}``                           histogram  calibrated confidence of the top answer (when given)
``search_top_score{lang}``                            histogram  fused score of the best hit (0 when none)
``serving_release{release_id}``                       gauge      1 for the release a worker answers from
``active_release{release_id}``                        gauge      1 for the release ``ACTIVE`` names
``serving_release_age_seconds``                       gauge      age of the oldest serving release
``release_lag_seconds``                               gauge      how long the active release has not been served
``query_log_dropped_total``                           counter    query-log rows dropped (queue full)
``query_vectors_total{result}``                       counter    query vectors looked up: ``hit`` (remembered) or ``miss`` (a model run)
``query_log_write_failures_total``                    counter    query-log rows whose write failed
====================================================  =========  =====================================================
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values

__all__ = [
    "CONTENT_TYPE", "MULTIPROC_ENV", "ReleaseGauges", "endpoint_label", "observe_answer", "observe_request",
    "query_log_dropped", "query_log_written", "query_vector_lookup", "render", "worker_exit",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger("kbops.serve")

#: The routes counted by name; anything else is "review" (the review page) or "other" (a 404, a probe),
#: so a scanner trying ten thousand paths cannot create ten thousand series.
_ENDPOINTS = frozenset({"/search", "/search/batch", "/healthz", "/release", "/metrics", "/openapi.json", "/docs"})

REQUESTS = Counter("kbops_api_requests", "HTTP requests answered, by endpoint and status code", ["endpoint", "status"])
LATENCY = Histogram(
    "kbops_api_request_duration_seconds", "Server time from a request's arrival to its response headers, by endpoint", ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
QUERIES = Counter("kbops_search_queries", "Queries answered (handed off or not), by detected query language", ["lang"])
HANDOFFS = Counter("kbops_search_handoffs", "Queries handed off to a person, by reason and query language", ["reason", "lang"])
_TENTHS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
CONFIDENCE = Histogram("kbops_search_confidence", "Calibrated probability that the top answer is right (queries that have one)", ["lang"], buckets=_TENTHS)
TOP_SCORE = Histogram("kbops_search_top_score", "Fused score of the best hit (0 when nothing matched)", ["lang"], buckets=_TENTHS)
SERVING = Gauge("kbops_serving_release", "1 for the release a worker answers from, 0 for one it no longer serves", ["release_id"], multiprocess_mode="livemax")
ACTIVE = Gauge("kbops_active_release", "1 for the release the ACTIVE pointer names, 0 for an earlier one", ["release_id"], multiprocess_mode="livemax")
SERVING_AGE = Gauge("kbops_serving_release_age_seconds", "Age of the (oldest) serving release", multiprocess_mode="livemax")
LAG = Gauge("kbops_release_lag_seconds", "How long the active release has been active without being served (0 when served)", multiprocess_mode="livemax")
QUERY_LOG_DROPPED = Counter("kbops_query_log_dropped", "Query-log rows dropped because the write queue was full")
QUERY_LOG_FAILED = Counter("kbops_query_log_write_failures", "Query-log rows whose database write failed")
QUERY_VECTORS = Counter("kbops_query_vectors", "Query vectors looked up: hit (remembered, KBOPS_QUERY_CACHE) or miss (a model run)", ["result"])


def endpoint_label(path: str) -> str:
    """The ``endpoint`` label for a request path: a known route, ``review`` or ``other`` (bounded)."""
    if path in _ENDPOINTS:
        return path
    if path == "/review" or path.startswith("/review/"):
        return "review"
    return "other"


def observe_request(endpoint: str, status: int, seconds: float) -> None:
    """Count one HTTP request and its server time."""
    REQUESTS.labels(endpoint, str(status)).inc()
    LATENCY.labels(endpoint).observe(seconds)


def observe_answer(answer: dict[str, Any]) -> None:
    """Count one answered query (an ``Answer.as_dict()``): language, handoff reason, confidence, top score."""
    lang = str(answer.get("lang") or "und")
    QUERIES.labels(lang).inc()
    if answer.get("handoff"):
        HANDOFFS.labels(str(answer.get("reason") or "unknown"), lang).inc()
    confidence = answer.get("confidence")
    if confidence is not None:
        CONFIDENCE.labels(lang).observe(float(confidence))
    TOP_SCORE.labels(lang).observe(float(answer.get("score") or 0.0))


def query_log_dropped(n: int) -> None:
    QUERY_LOG_DROPPED.inc(n)


def query_log_written(n: int, ok: bool) -> None:
    if not ok:
        QUERY_LOG_FAILED.inc(n)


class ReleaseGauges:
    """Keeps one worker's release gauges current from its retriever's ``status()`` and manifest.

    ``refresh`` is cheap (a stat of ``ACTIVE`` and a few file writes); the API
    calls it on every scrape and a thread calls it every ``interval`` seconds,
    so an idle worker's gauges (a lag that grows) stay current too."""

    def __init__(self, source: Any, interval: float = 1.0) -> None:
        """``source()``: ``(status dict, manifest dict)`` of the serving release, or raises when there is none."""
        self.source = source
        self.interval = interval
        self._serving: str | None = None
        self._active: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        try:
            status, manifest = self.source()
        except Exception:  # noqa: BLE001 - no release yet (or a bad one): the gauges keep their last values
            return
        with self._lock:
            serving, active = status.get("serving_release_id"), status.get("active_release_id")
            if serving != self._serving:
                if self._serving is not None:
                    SERVING.labels(self._serving).set(0)
                self._serving = serving
            if serving is not None:
                SERVING.labels(serving).set(1)
            if active != self._active:
                if self._active is not None:
                    ACTIVE.labels(self._active).set(0)
                self._active = active
            if active is not None:
                ACTIVE.labels(active).set(1)
            LAG.set(float(status.get("lag_seconds") or 0.0))
            created = _timestamp(manifest.get("created_at"))
            if created is not None:
                SERVING_AGE.set(max(0.0, time.time() - created))

    def start(self) -> None:
        """Refresh every ``interval`` seconds in a daemon thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(self.interval):
                self.refresh()

        self.refresh()
        self._thread = threading.Thread(target=run, name="kbops-release-gauges", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread = None


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def multiprocess_dir() -> str | None:
    """The multiprocess directory when this process runs in multiprocess mode, else None.

    prometheus-client chose the mode when it was imported (from the environment then):
    a directory set later is not used, and this says so by the values' class."""
    if values.ValueClass is values.MutexValue:
        return None
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())


def render() -> tuple[bytes, str]:
    """The exposition text of every metric: all workers' values in multiprocess mode, this process's otherwise."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY), CONTENT_TYPE
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry), CONTENT_TYPE


def worker_exit() -> None:
    """A worker's clean shutdown: remove its live gauges from the aggregate (no-op in single-process mode)."""
    path = multiprocess_dir()
    if path is not None:
        multiprocess.mark_process_dead(os.getpid(), path)


def query_vector_lookup(hit: bool) -> None:
    """One query-vector lookup of the retriever's memory (kbops.serve.retriever.QueryVectors)."""
    QUERY_VECTORS.labels("hit" if hit else "miss").inc()
