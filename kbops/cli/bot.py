"""``kbops ask | serve``: what the bot answers, and the bot HTTP API with the review page.

Both need only the ``serve`` extra, never Airflow. :mod:`kbops.serve` is
imported inside the handlers: the retriever loads FAISS and the embedding
model, the API needs FastAPI and uvicorn, and neither should slow down (or,
without the extra, break) ``kbops --help`` and the other commands.

``kbops serve --workers N`` runs N uvicorn worker processes on one port: a
query is CPU-bound Python (tokenising, the lexical scorer, fusing) that one
process runs on one core at a time, so N processes use N cores. Each worker
builds its own app from the environment (:func:`kbops.serve.api.app_from_environment`;
``--config`` is passed on as ``KBOPS_CONFIG``), loads the model and the release
and runs its own release watcher and query-log writer. Prometheus metrics are
summed over the workers through a multiprocess directory
(``PROMETHEUS_MULTIPROC_DIR``, emptied at start; a private temporary one when
not set), which must be in the environment before prometheus-client is
imported: this handler sets it up before importing the API.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_json_flag, emit, emit_line
from kbops.config import Settings, usable_cores
from kbops.errors import ConfigError, KbopsError

#: Top-level modules the ``serve`` extra installs; a missing one is a setup mistake, not a bug.
_SERVE_EXTRA = ("uvicorn", "fastapi", "starlette", "jinja2", "multipart", "python_multipart")


def register(subparsers: Subparsers) -> None:
    """Add ask and serve."""
    p = add_command(subparsers, "ask", cmd_ask, "what the bot answers; with no QUESTION, one question per line on stdin → JSON lines")
    p.add_argument("question", nargs="*", help="the customer's question")
    p.add_argument("--top-k", type=int, default=3, help="how many entries to return (1–50)")
    p.add_argument("--lang", choices=["zh", "en"], help="only entries in this language")
    add_json_flag(p)

    p = add_command(subparsers, "serve", cmd_serve, "the bot HTTP API (POST /search, GET /healthz, GET /release) and the review page at /review")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 8080 is Airflow's api-server)")
    p.add_argument("--workers", type=_worker_count, default=1, help="worker processes, each on its own core (default 1); metrics are summed over them")
    p.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                   help="uvicorn's line per request (default on; the query log keeps every query with its request id and latency anyway)")


def _worker_count(text: str) -> int:
    """The argparse ``type`` of ``--workers``: a whole number from 1 to 64, else a usage error (exit 2) before anything starts."""
    if not text.isdigit() or not 1 <= int(text) <= 64:
        shown = text[:20].encode("utf-8", "backslashreplace").decode("utf-8")
        raise argparse.ArgumentTypeError(f"{shown!r} is not a worker count: a whole number from 1 to 64 (one per core is the usual choice)")
    return int(text)


def cmd_ask(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.serve.query_log import log_answer
    from kbops.serve.retriever import Retriever

    retriever = Retriever(settings)
    if args.question:
        answer = retriever.search(" ".join(args.question), top_k=args.top_k, lang=args.lang)
        log_answer(settings, answer)
        emit(args, answer, _print_answer)
        return 0
    # One question per line → one JSON line per answer; a bad question answers with its error and the stream goes on.
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = retriever.search(line.strip(), top_k=args.top_k, lang=args.lang)
            log_answer(settings, answer)
            emit_line(answer)
        except KbopsError as exc:
            emit_line({"query": line.strip()[:200], "error": str(exc)})
    return 0


def _print_answer(answer: Any) -> None:
    top = answer.top
    if answer.handoff:
        best = f" (best score {top.score:.3f}: entry {top.entry_id})" if top else ""
        print(f"handoff: true — {answer.reason}; a human agent should answer{best}  [release {answer.release_id}]")
        return
    print(f"{top.answer}")
    print(f"  entry {top.entry_id} ({top.entry_key}), score {top.score:.3f}, release {answer.release_id}, handoff: false")


#: The multiprocess directory variable of prometheus-client (kbops.serve.metrics reads it).
_METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _metrics_dir(workers: int) -> Path | None:
    """Set up prometheus-client's multiprocess directory before it is imported; the one to remove at exit, if made here.

    A directory given in ``PROMETHEUS_MULTIPROC_DIR`` is emptied of earlier runs' files (the
    library needs it empty at start); with several workers and none given, a private one is
    made and exported to the workers."""
    given = os.environ.get(_METRICS_DIR_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return None
    if workers == 1:
        return None
    made = Path(tempfile.mkdtemp(prefix="kbops-metrics-"))
    os.environ[_METRICS_DIR_ENV] = str(made)
    return made


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    made = _metrics_dir(args.workers)
    try:
        try:
            import fastapi  # noqa: F401 - the extra's check; with several workers only the workers import the API
            import uvicorn
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in _SERVE_EXTRA:
                raise
            raise ConfigError(f"`kbops serve` needs the serve extra ({exc.name} is not installed): pip install 'kbops[serve]'", missing=exc.name) from None
        options: dict[str, Any] = {"host": args.host, "port": args.port, "log_level": "info", "access_log": args.access_log}
        if args.workers == 1:
            from kbops.serve.api import create_app

            uvicorn.run(create_app(settings), **options)
        else:
            # Each worker is a fresh process that builds its own app from the environment: pass the config file on.
            if getattr(args, "config", None):
                os.environ["KBOPS_CONFIG"] = str(Path(args.config).resolve())
            os.environ.update(worker_environment(settings, args.workers, usable_cores()))
            uvicorn.run("kbops.serve.api:app_from_environment", factory=True, workers=args.workers, **options)
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    return 0


def worker_environment(settings: Settings, workers: int, cores: int) -> dict[str, str]:
    """What `kbops serve --workers N` sets for its workers, when the operator did not: N workers share the
    machine's cores, so each embeds with its share of them (``KBOPS_EMBED_THREADS``), and a worker gets
    query-vector helpers only for the cores of its share beyond its own (``KBOPS_QUERY_HELPERS``). With
    2 workers on 2 cores a helper each took a core the other worker needed: new questions at 200/s,
    p50 19.2 ms with helpers against 15.4 ms without (bench/bench_api.py, README "Bot API throughput")."""
    share = max(1, cores // workers)
    env: dict[str, str] = {}
    if not settings.embed_threads:
        env["KBOPS_EMBED_THREADS"] = str(share)
    if settings.query_helpers is None:
        env["KBOPS_QUERY_HELPERS"] = str(share - 1)
    return env
