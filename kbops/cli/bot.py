"""``kbops ask | serve``: what the bot answers, and the bot HTTP API with the review page.

Both need only the ``serve`` extra, never Airflow. :mod:`kbops.serve` is
imported inside the handlers: the retriever loads FAISS and the embedding
model, the API needs FastAPI and uvicorn, and neither should slow down (or,
without the extra, break) ``kbops --help`` and the other commands.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_json_flag, emit, emit_line
from kbops.config import Settings
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
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")


def cmd_ask(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.serve.retriever import Retriever, log_answer

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


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from kbops.serve.api import create_app
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _SERVE_EXTRA:
            raise
        raise ConfigError(f"`kbops serve` needs the serve extra ({exc.name} is not installed): pip install 'kbops[serve]'", missing=exc.name) from None

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0
