"""The ``kbops`` parser, assembled from the command modules, and the one place errors become exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from kbops.cli import bot, calibrate, data, golden, notify, pipeline_cmds, review, reviewers, sources
from kbops.cli import health as health_cmd
from kbops.config import Settings
from kbops.db import require_db
from kbops.errors import KbopsError, TransientError

#: Command modules in the order their commands appear in ``kbops --help``.
_MODULES = (pipeline_cmds, review, golden, calibrate, bot, data, reviewers, sources, health_cmd, notify)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global options here, each command's arguments in its module's ``register``."""
    parser = argparse.ArgumentParser(
        prog="kbops",
        description="Keep a customer-service bot's knowledge base true: sync sources, review candidates, publish releases, answer.",
    )
    parser.add_argument("--config", help="kbops.toml to read (default: $KBOPS_CONFIG or ./kbops.toml)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _MODULES:
        module.register(subparsers)
    return parser


def report_error(exc: KbopsError) -> int:
    """Print ``error: <message>`` on stderr and return exit status 2 (every KbopsError, by class).

    A transient error (the database was locked, a disk was busy) says that
    running the command again may help; a terminal one says what to fix in its
    message. Neither prints a traceback: these are the errors kbops raises on
    purpose, and the message is the whole story."""
    hint = " (retry)" if isinstance(exc, TransientError) else ""
    print(f"error: {exc}{hint}", file=sys.stderr)
    return 2


def _not_utf8(arguments: Sequence[str]) -> str | None:
    """The first argument that is not UTF-8 text, shown with its bad bytes escaped; None when all are.

    Python hands a byte that is not UTF-8 (a Latin-1 or GBK terminal, a
    truncated paste) to the program as a lone surrogate; any command that
    stores the text (``--by``, ``--reason``, ``--answer``…) would then fail
    deep in the database driver with a traceback. Checked once here, before
    any command runs."""
    for arg in arguments:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = repr(arg)  # a lone surrogate shows as \udcff: printable, and names the bad byte
            return shown if len(shown) <= 40 else shown[:39] + "…"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``kbops`` command and return its exit status.

    0 success; 1 the command ran but found a problem it reports (a golden
    question missed, an import row refused, a decision not applied); 2 a usage
    error (argparse) or any :class:`~kbops.errors.KbopsError`; 130 interrupted;
    141 (the shell's code for SIGPIPE) when the reader of stdout went away, as
    in ``kbops review list | head``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    unreadable = _not_utf8(arguments)
    if unreadable is not None:
        print(f"error: the argument {unreadable} is not UTF-8 text; kbops reads its arguments as UTF-8 (check the terminal's or the script's encoding)", file=sys.stderr)
        return 2
    args = build_parser().parse_args(arguments)
    try:
        settings = Settings.load(config_file=args.config)
        if args.needs_db:
            require_db(settings)
        status: int = args.handler(settings, args)
        # Flush inside the try: output still buffered when the reader went away fails here (exit 141),
        # not in the interpreter's final flush ("Exception ignored … BrokenPipeError", exit 120).
        sys.stdout.flush()
        return status
    except KbopsError as exc:
        return report_error(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
