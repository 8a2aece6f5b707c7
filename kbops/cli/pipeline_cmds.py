"""``kbops init | sync | publish | releases | rollback``: the pipeline's steps from the command line.

``sync`` and ``publish`` run the same settings-level steps as the ``kb_ingest``
and ``kb_publish`` DAGs (:mod:`kbops.pipeline`, imported inside the handlers:
it pulls the validation gate and the index builder). ``releases`` reads only
the index directory and, like ``ask``, never needs Airflow.
"""

from __future__ import annotations

import argparse
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_json_flag, emit, progress, row_count, short
from kbops.config import Settings
from kbops.db import init_db, session_scope
from kbops.errors import ConfigError
from kbops.index import release as rel
from kbops.index.embedder import Embedder
from kbops.index.preview import DEFAULT_DAYS, logged_queries, release_diff
from kbops.index.publish import list_releases


def register(subparsers: Subparsers) -> None:
    """Add init, sync, publish, releases and rollback."""
    add_command(subparsers, "init", cmd_init, "create or upgrade the KB database and index root (idempotent)", needs_db=False)

    p = add_command(subparsers, "sync", cmd_sync, "pull sources, detect changes, extract, validate, enqueue (kb_ingest's work); exits 1 if a source failed")
    p.add_argument("--source", help="only this source (a name from the sources config)")
    p.add_argument("--confirm-deletions", action="store_true", help="apply a snapshot held back by the mass-deletion guard")
    add_json_flag(p)

    p = add_command(subparsers, "publish", cmd_publish, "apply decisions, build and activate a release (kb_publish's work)")
    p.add_argument("--full", action="store_true", help="rebuild even if the KB did not change")
    p.add_argument(
        "--force", action="store_true",
        help="activate even if the release is empty, drops more than max_release_drop_share of the serving release's entries, "
        "or answers fewer golden questions than before (needs --by; audited as release_forced)",
    )
    p.add_argument("--by", help="who forces the activation (recorded in the audit log)")
    p.add_argument(
        "--preview", action="store_true",
        help="build the release but do not activate it: replay the questions customers asked (query log) against it and the serving "
        "release and print what would change; a later `kbops publish` activates the same build",
    )
    p.add_argument("--days", type=row_count, default=DEFAULT_DAYS, help=f"with --preview: days of questions to replay (default {DEFAULT_DAYS})")
    p.add_argument("--most-asked", type=row_count, default=PREVIEW_QUESTIONS,
                   help=f"with --preview: replay at most this many distinct questions, most asked first (default {PREVIEW_QUESTIONS}; "
                   "each costs two searches)")
    add_json_flag(p)

    p = add_command(subparsers, "releases", cmd_releases, "list index releases (* = active)")
    add_json_flag(p)

    p = add_command(subparsers, "rollback", cmd_rollback, "re-activate RELEASE, or the release before the active one")
    p.add_argument("release", nargs="?", help="release id (default: the previous release)")


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    revision = init_db(settings)
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    print(f"KB database ready at schema revision {revision}; index root {settings.index_dir}")
    return 0


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.pipeline import ingest

    with progress(args, "sync"):
        result = ingest(settings, source=args.source, confirm_deletions=args.confirm_deletions)
    emit(args, result, _print_sync)
    # 1: the other sources were synced and extracted, but a source failed (listed above).
    return 1 if result["failed"] else 0


def _print_sync(result: dict[str, Any]) -> None:
    for s in result["sync"]:
        if s["status"] == "failed":
            print(f"{s['source']:<12} FAILED: {s['error']}")
            continue
        print(
            f"{s['source']:<12} read {s['read']:>5}  new {s['new']:>4}  changed {s['changed']:>4}  "
            f"unchanged {s['unchanged']:>5}  deleted {s['deleted']:>3}  quarantined {s['quarantined']:>3}  withdrawn {s['withdrawn']:>3}"
            + ("  (files unchanged, not read)" if s["skipped"] else "")
        )
        for message in s["messages"]:
            print(f"  ! {message}")
    e, v, r = result["extract"], result["validate"], result["route"]
    print(f"extracted {e['proposed']} new candidates ({e['unchanged']} unchanged); validated {v['checked']}: {v['valid']} valid, {v['invalid']} invalid")
    for message in e.get("messages", []):
        print(f"  ! {message}")
    rules = ", ".join(f"{k}={n}" for k, n in r["by_rule"].items()) or "none"
    print(f"auto-approved {r['auto_approved']} (rules: {rules}); queued {r['queued']} for review; superseded {r['superseded']}")
    if result["failed"]:
        print(f"sync FAILED for {len(result['failed'])} source(s): {', '.join(result['failed'])} (the others were synced and extracted)")


def cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.pipeline import publish

    if args.force and not args.by:
        raise ConfigError("--force overrides the release checks (empty or shrinking release, golden questions); say who decides with --by NAME")
    if args.preview:
        return _preview(settings, args)
    with progress(args, "publish"):
        result = publish(settings, full=args.full, force=args.force, by=args.by or "operator")
    emit(args, result, _print_publish)
    return 0


def _print_publish(result: dict[str, Any]) -> None:
    a, b = result["apply"], result["build"]
    print(f"applied {a['applied']} review decision(s) ({a['approved']} approved, {a['rejected']} rejected, {a.get('merged', 0)} merged)")
    for item_id, error in a["errors"].items():
        print(f"  ! item {item_id} not applied: {error}")
    for warning in b["warnings"]:
        print(f"  warning: {warning}")
    if b["status"] == "unchanged":
        print(f"KB unchanged since release {b['release_id'] or '(none)'}: nothing to publish")
        return
    print(
        f"built release {b['release_id']}: {b['entries']} entries, {b['vectors']} vectors "
        f"(embedding cache {b['cache_hits']} hits, {b['cache_misses']} misses) in {b['seconds']:.1f}s"
    )
    activation = result["activate"]
    print(f"active release is now {activation['release_id']}" + (" — FORCED past the empty/shrink check" if activation.get("forced") else ""))
    if activation.get("revoked"):
        print(f"  {activation['revoked']} entries withdrawn or changed since {activation['previous']}: revoked on every bot replica at its next query")
    golden = result["activate"].get("golden")
    if golden:
        was = f" (active release had {golden['active_correct']})" if golden["active_correct"] is not None else ""
        print(f"golden questions: {golden['correct']}/{golden['total']} answered correctly{was}" + (" — FORCED" if golden["forced"] else ""))


#: Distinct questions ``publish --preview`` replays by default (bench/bench_preview.py: tens of ms each on a 100k release).
PREVIEW_QUESTIONS = 5_000


def _preview(settings: Settings, args: argparse.Namespace) -> int:
    """Build without activating, then replay the logged questions against the build and the serving release."""
    from kbops.pipeline import build_release

    embedder = Embedder.from_settings(settings)
    with progress(args, "publish --preview") as say:
        built = build_release(settings, full=args.full, embedder=embedder)
        active_id = rel.active_release_id(settings.index_dir)
        result: dict[str, Any] = {"build": built.as_dict(), "preview": None}
        if built.release_id and built.release_id != active_id:
            with session_scope(settings) as db:
                queries = logged_queries(db, days=args.days, limit=args.most_asked)
            say(f"replaying {len(queries)} logged question(s) against {built.release_id}")
            candidate = rel.load_release(settings.index_dir, built.release_id, lexical_scorer=settings.lexical_scorer)
            active = rel.load_release(settings.index_dir, active_id, lexical_scorer=settings.lexical_scorer) if active_id else None
            result["preview"] = release_diff(candidate, active, embedder, settings, queries).as_dict()
    emit(args, result, lambda r: _print_preview(r, args.days))
    return 0


def _print_preview(result: dict[str, Any], days: int) -> None:
    b, d = result["build"], result["preview"]
    if d is None:
        print(f"KB unchanged since release {b['release_id'] or '(none)'}: nothing to preview")
        return
    print(f"built release {d['release_id']} ({b['entries']} entries), NOT activated; replayed {d['questions']} question(s) "
          f"asked {d['asks']} time(s) in the last {days} day(s) against {d['against'] or 'the logged answers (no release serving)'}:")
    print(f"  newly answered {d['newly_answered']}   answer changes {d['changed']}   new handoffs {d['new_handoffs']}   unchanged {d['unchanged']}")
    for kind, title in (("newly_answered", "newly answered"), ("changed", "answer changes"), ("new_handoffs", "would hand off")):
        for ex in d["examples"][kind]:
            print(f"  {title:<15} {ex['asked']:>4}x  {short(ex['question'], 50)}  → {short(ex['after'] or ('handoff: ' + str(ex['reason'])), 50)}")
    print("activate it with `kbops publish` (the same build is reused)")


def cmd_releases(settings: Settings, args: argparse.Namespace) -> int:
    emit(args, list_releases(settings), _print_releases)
    return 0


def _print_releases(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no releases yet; run `kbops publish`")
    for r in rows:
        mark = "*" if r["active"] else " "
        if "error" in r:
            print(f"{mark} {r['release_id']}  BROKEN: {r['error']}")
        else:
            print(f"{mark} {r['release_id']}  {r['created_at'][:19]}  {r['entries']:>6} entries  {r['vectors']:>6} vectors  {r['index_type']}")


def cmd_rollback(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.pipeline import rollback

    result = rollback(settings, args.release)
    print(f"active release is now {result['release_id']} (was {result['previous']})")
    return 0
