"""What every command module shares: registering a command, the ``--json`` flag and its one output helper."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from tqdm import tqdm

from kbops.config import Settings
from kbops.schema import MAX_ID, parse_record_id

#: A command handler: runs the command and returns the exit status.
Handler = Callable[[Settings, argparse.Namespace], int]

def _whole_number(text: str, what: str) -> int:
    """``text`` as a whole number from 1 to :data:`MAX_ID`, else argparse's usage error naming it (exit 2)."""
    number = parse_record_id(text)
    if number is not None:
        return number
    shown = text if len(text) <= 30 else text[:29] + "…"
    shown = shown.encode("utf-8", "backslashreplace").decode("utf-8")  # a non-UTF-8 byte in argv arrives as a lone surrogate
    raise argparse.ArgumentTypeError(f"{shown!r} is not {what}: a whole number from 1 to {MAX_ID}")


def record_id(text: str) -> int:
    """The argparse ``type`` of every argument that names a record by id (review items, candidates,
    golden questions, validation reports, ``--item``): parsed here once for every command."""
    return _whole_number(text, "an id")


def row_count(text: str) -> int:
    """The argparse ``type`` of ``--limit``: how many rows, at least 1 (the database refuses a negative
    or a past-64-bit LIMIT with a traceback)."""
    return _whole_number(text, "a row count")


class Subparsers(Protocol):
    """What ``ArgumentParser.add_subparsers()`` returns (argparse does not export the type)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def add_command(subparsers: Subparsers, name: str, handler: Handler, help_text: str, *, needs_db: bool = True) -> argparse.ArgumentParser:
    """Add a command whose help line and description are ``help_text`` and whose handler is ``handler``.

    ``needs_db=False`` is for the one command that creates the database (``init``);
    every other command fails with one line if it was never initialised."""
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler, needs_db=needs_db)
    return parser


def add_group(subparsers: Subparsers, name: str, help_text: str, description: str, dest: str) -> Subparsers:
    """Add a command group (``kbops review …``) and return the subparsers its actions go into."""
    group = subparsers.add_parser(name, help=help_text, description=description)
    return group.add_subparsers(dest=dest, required=True, metavar="ACTION")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """The ``--json`` flag; a command that has it prints through :func:`emit`."""
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _encode(value: Any) -> Any:
    """JSON for what json does not know: results with ``as_dict()``, dataclasses, else ``str`` (datetimes)."""
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def to_json(data: Any, *, indent: int | None = 2) -> str:
    """``data`` as JSON text: UTF-8 kept readable (Chinese stays Chinese), datetimes as ``str``."""
    return json.dumps(data, ensure_ascii=False, indent=indent, default=_encode)


def emit(args: argparse.Namespace, data: Any, human: Callable[[Any], None] | None = None) -> None:
    """Print a command's result: ``data`` as JSON under ``--json``, else ``human(data)`` for people.

    Every command with ``--json`` prints through here, so they all print the same
    kind of JSON (indented, ``ensure_ascii=False``, results with ``as_dict()``
    expanded, datetimes as text)."""
    if getattr(args, "json", False):
        print(to_json(data))
    elif human is not None:
        human(data)


def emit_line(data: Any) -> None:
    """One compact JSON line, flushed (streaming output such as ``kbops ask`` reading stdin)."""
    print(to_json(data, indent=None), flush=True)


def short(text: str, width: int = 60) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


class _ToBar(logging.Handler):
    """Shows each kbops log record (INFO and up) as the status line's latest message."""

    def __init__(self, bar: tqdm) -> None:
        super().__init__(logging.INFO)
        self.bar = bar

    def emit(self, record: logging.LogRecord) -> None:
        self.bar.set_postfix_str(short(record.getMessage(), 70), refresh=True)


@contextmanager
def progress(args: argparse.Namespace, what: str) -> Iterator[Callable[[str], None]]:
    """A live status line on stderr while a long command runs: what, elapsed time, the latest step.

    Shown only on a terminal (stderr is a TTY) and never under ``--json``: a
    script, a pipe or Airflow gets exactly the output it got before. The steps
    are what kbops logs (``kbops.*`` loggers, INFO and up) while the command
    runs, and whatever the command reports through the yielded function; the
    line is redrawn twice a second so the clock moves during a long build,
    and is erased at the end (the command's own summary follows)."""
    if getattr(args, "json", False) or not sys.stderr.isatty():
        yield lambda _message: None
        return
    bar = tqdm(total=None, desc=what, file=sys.stderr, bar_format="{desc} {elapsed} {postfix}", leave=False, dynamic_ncols=True)
    logger = logging.getLogger("kbops")
    handler, level = _ToBar(bar), logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.5):
            bar.refresh()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield lambda message: bar.set_postfix_str(short(message, 70), refresh=True)
    finally:
        stop.set()
        ticker.join()
        logger.removeHandler(handler)
        logger.setLevel(level)
        bar.close()
