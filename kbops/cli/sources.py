"""``kbops sources …``: the configured sources and how their last syncs went."""

from __future__ import annotations

import argparse
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_group, add_json_flag, emit
from kbops.config import Settings
from kbops.db import session_scope
from kbops.sources.status import sources_status


def register(subparsers: Subparsers) -> None:
    """Add ``kbops sources`` and its actions."""
    ssub = add_group(subparsers, "sources", "configured sources", "configured sources", "sources_command")
    p = add_command(ssub, "status", cmd_status, "each source's last run, record counts and quarantined rows")
    add_json_flag(p)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        rows = sources_status(db, settings)
    emit(args, rows, _print_status)
    return 0


def _print_status(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        last = r["last_run"]
        when = f"{last['finished_at']:%Y-%m-%d %H:%M:%S}" if last and last["finished_at"] else "never"
        mark = f"  watermark {r['watermark']}" if r["watermark"] else ""
        print(f"{r['source']:<12} last sync {when}  records {r['records']:>6} (deleted {r['deleted']})  quarantined {r['quarantined']}{mark}")
        if r.get("last_failure"):
            failed = r["last_failure"]
            print(f"  ! latest sync FAILED at {failed['at']:%Y-%m-%d %H:%M:%S}: {failed['error']}")
        for q in r["recent_quarantine"]:
            print(f"  ! {q['location']}: {q['reason']}")
