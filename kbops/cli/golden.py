"""``kbops golden …``: the golden questions (question → expected entry) that gate release activation."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_group, add_json_flag, emit, record_id, short
from kbops.config import Settings
from kbops.db import session_scope
from kbops.errors import ConfigError
from kbops.index.golden import add_golden, list_golden, read_golden_file, remove_golden


def register(subparsers: Subparsers) -> None:
    """Add ``kbops golden`` and its actions."""
    gsub = add_group(subparsers, "golden", "golden questions that gate release activation", "golden questions: question → expected entry", "golden_command")

    p = add_command(gsub, "add", cmd_add, "add a golden question (or a JSONL/CSV file of them)")
    p.add_argument("question", nargs="*", help="the customer's question")
    p.add_argument("--entry", help="the entry key that must answer it (see `kbops export`), or handoff: a question the bot must hand off")
    p.add_argument("--file", help="JSONL or CSV with question, entry_key")
    p.add_argument("--by", required=True, help="who adds them")

    p = add_command(gsub, "list", cmd_list, "the golden questions")
    add_json_flag(p)

    p = add_command(gsub, "remove", cmd_remove, "remove golden questions by id")
    p.add_argument("ids", type=record_id, nargs="+", metavar="ID")

    p = add_command(gsub, "check", cmd_check, "score the active release on the golden questions (exit 1 on any miss)")
    add_json_flag(p)


def cmd_add(settings: Settings, args: argparse.Namespace) -> int:
    if args.file:
        pairs = read_golden_file(Path(args.file))
    elif args.question and args.entry:
        pairs = [(" ".join(args.question), args.entry)]
    else:
        raise ConfigError("give a QUESTION with --entry KEY, or --file FILE (JSONL/CSV with question, entry_key)")
    with session_scope(settings) as db:
        added = add_golden(db, pairs, by=args.by)
    print(f"added {added} golden question(s) ({len(pairs) - added} already there)")
    return 0


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        rows = list_golden(db)
    emit(args, rows, _print_list)
    return 0


def _print_list(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no golden questions; add some with `kbops golden add QUESTION --entry KEY --by NAME`")
    for r in rows:
        print(f"{r['id']:>5}  {r['entry_key']:<40} {short(r['question'], 60)}")


def cmd_remove(settings: Settings, args: argparse.Namespace) -> int:
    # One transaction: an unknown id removes none of them.
    with session_scope(settings) as db:
        for golden_id in args.ids:
            remove_golden(db, golden_id)
    print(f"removed {len(args.ids)} golden question(s)")
    return 0


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.pipeline import check_golden

    score = check_golden(settings)
    emit(args, score, _print_score)
    return 0 if not score.misses else 1


def _print_score(score: Any) -> None:
    print(f"release {score.release_id}: {score.correct}/{score.total} golden questions answered correctly")
    for m in score.misses:
        print(f"  miss: {short(m['question'], 50)!r} expected {m['expected']}, got {m['got'] or 'handoff (' + str(m['reason']) + ')'}")
