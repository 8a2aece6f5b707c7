"""``kbops init | sync | publish | releases | rollback``: the pipeline's steps from the command line.

``sync`` and ``publish`` run the same settings-level steps as the ``kb_ingest``
and ``kb_publish`` DAGs (:mod:`kbops.pipeline`, imported inside the handlers:
it pulls the validation gate and the index builder). ``releases`` reads only
the index directory and, like ``ask``, never needs Airflow.
"""

from __future__ import annotations

import argparse
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_json_flag, emit
from kbops.config import Settings
from kbops.db import init_db
from kbops.errors import ConfigError
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
    emit(args, publish(settings, full=args.full, force=args.force, by=args.by or "operator"), _print_publish)
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
