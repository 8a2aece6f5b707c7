"""``kbops health``: the KB's health in one screen (or ``--json`` for a monitor or a daily report).

Opens one read session and calls :func:`kbops.health.health_report`; the
review page's ``/review/health`` shows the same report with plots.
"""

from __future__ import annotations

import argparse
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_json_flag, emit, row_count, short
from kbops.config import Settings
from kbops.db import session_scope
from kbops.health import DEFAULT_DAYS, health_report


def register(subparsers: Subparsers) -> None:
    """Add ``kbops health``."""
    p = add_command(subparsers, "health", cmd_health, "KB health: coverage, freshness, review queue, handoffs, gap topics, pipeline figures")
    p.add_argument("--days", type=row_count, default=DEFAULT_DAYS, help=f"days of history (default {DEFAULT_DAYS})")
    p.add_argument("--gaps", type=row_count, default=10, help="at most this many gap topics (default 10)")
    add_json_flag(p)


def cmd_health(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        report = health_report(db, settings, days=args.days, gap_limit=args.gaps).as_dict()
    emit(args, report, _print_health)
    return 0


def _age(seconds: float | None) -> str:
    """Seconds as the largest sensible unit (``3.2h``); ``-`` for none."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _print_health(h: dict[str, Any]) -> None:
    c, q, ho, p = h["coverage"], h["queue"], h["handoffs"], h["pipeline"]
    release = h["release"]
    print(f"KB health over the last {h['days']} day(s); serving " + (f"{release['release_id']} ({release['entries']} entries, since {release['activated_at'][:19]})" if release else "no release yet"))
    print(f"coverage   {_share(c['share'])} of {c['questions']} question(s) answered by the bot (not handed off)"
          + "".join(f"; {lang} {_share(v['share'])} of {v['questions']}" for lang, v in c["by_lang"].items()))
    print(f"handoffs   {_share(ho['rate'])} ({ho['handoffs']} of {ho['questions']})" + "".join(f"; {k} {v}" for k, v in ho["by_reason"].items()))
    print(f"queue      {q['size']} open; age p50 {_age(q['age_p50_s'])}, p90 {_age(q['age_p90_s'])}, oldest {_age(q['oldest_s'])}"
          + ("; decided " + ", ".join(f"{k} {v}" for k, v in q["decided_by"].items()) if q["decided_by"] else ""))
    print("freshness")
    for f in h["freshness"]:
        state = "FAILING" if f["failing"] else "ok"
        print(f"  {f['source']:<14} last sync {_age(f['last_sync_age_s'])} ago ({state}); lag {_age(f['lag_s'])}; {f['withdrawn_unreplaced']} withdrawn, not replaced")
    print("pipeline")
    for s in p["sync"]:
        print(f"  {s['source']:<14} read {s['read']}  changed {s['changed']}  new {s['new']}  quarantined {s['quarantined']}  ({s['status']})")
    print("  candidates " + (", ".join(f"{k} {v}" for k, v in p["candidates"].items()) or "none"))
    if p["last_publish"]:
        lp = p["last_publish"]
        print(f"  last publish {lp['release_id'] or '(unchanged)'}: {lp['status']} in {lp['seconds']}s")
    for lang, c in (h["calibration"] or {"languages": {}})["languages"].items():
        at = f"answers {_share(c['answered'])} of its calibration questions at {_share(c['precision'])} precision" if c["answered"] is not None else "no curve"
        print(f"calibration {lang}: threshold {c['threshold']:.2f} ({c['source']}, {c['pairs']} questions); {at}")
    for note in h["notes"]:
        print(f"note: {note}")
    print("top gap topics" if h["gaps"] else "no open gap topics")
    for g in h["gaps"]:
        print(f"  #{g['id']:<4} {g['origin']:<4} {g['lang']:<3} asked {g['support']:>3}x  rank {g['rank']:>6.2f}  {short(g['question'], 60)}")
