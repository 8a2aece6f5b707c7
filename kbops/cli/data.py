"""``kbops import | export``: FAQ files in and out (.jsonl or .csv: question, answer, alt_questions, tags).

Both go through the settings-level doors :func:`kbops.pipeline.import_faq` and
:func:`kbops.pipeline.export_faq`, imported inside the handlers (the pipeline
pulls the validation gate).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_json_flag, emit, progress
from kbops.config import Settings
from kbops.errors import ConfigError


def register(subparsers: Subparsers) -> None:
    """Add import and export."""
    p = add_command(subparsers, "import", cmd_import, "bring an FAQ file (.jsonl or .csv: question, answer, alt_questions, tags) in as candidates")
    p.add_argument("file", help="the FAQ file")
    p.add_argument("--approve", action="store_true", help="approve every valid row at once (needs --by)")
    p.add_argument("--by", help="who approves (recorded in the audit log)")
    add_json_flag(p)

    p = add_command(subparsers, "export", cmd_export, "write the active KB to a .jsonl or .csv file (the import format)")
    p.add_argument("file", help="where to write")


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.pipeline import import_faq

    with progress(args, "import"):
        result = import_faq(settings, Path(args.file), approve=args.approve, by=args.by)
    emit(args, result, lambda r: _print_import(r, args))
    return 0 if not result.errors else 1


def _print_import(result: Any, args: argparse.Namespace) -> None:
    print(
        f"read {result.read} row(s): {result.proposed} new candidate(s), {result.unchanged} unchanged; "
        + (f"{result.approved} approved by {args.by}" if args.approve else f"{result.queued} queued for review")
    )
    for note in result.converted:
        print(f"  ~ {note}")
    for flag in result.flagged:
        print(f"  ? {flag}")
    for error in result.errors:
        print(f"  ! {error}")


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.pipeline import export_faq

    path = Path(args.file)
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: folder {path.parent} does not exist", path=str(path))
    print(f"wrote {export_faq(settings, path)} active entries to {args.file}")
    return 0
