"""The ``kbops`` command line.

Every command takes its configuration from one Settings object (environment
variables ``KBOPS_*`` and an optional kbops.toml). Errors a user can fix print
one line, ``error: …``, and exit 2; they never print a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from kbops.config import Settings
from kbops.errors import ConfigError, KbopsError


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _short(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- commands -------------------------------------------------------------------------


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.db import init_db

    revision = init_db(settings)
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    print(f"KB database ready at schema revision {revision}; index root {settings.index_dir}")
    return 0


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.pipeline import ingest

    result = ingest(settings, source=args.source, confirm_deletions=args.confirm_deletions)
    if args.json:
        _print_json(result)
        return 0
    for s in result["sync"]:
        print(
            f"{s['source']:<12} read {s['read']:>5}  new {s['new']:>4}  changed {s['changed']:>4}  "
            f"unchanged {s['unchanged']:>5}  deleted {s['deleted']:>3}  quarantined {s['quarantined']:>3}  withdrawn {s['withdrawn']:>3}"
            + ("  (files unchanged, not read)" if s["skipped"] else "")
        )
        for message in s["messages"]:
            print(f"  ! {message}")
    e, v, r = result["extract"], result["validate"], result["route"]
    print(f"extracted {e['proposed']} new candidates ({e['unchanged']} unchanged); validated {v['checked']}: {v['valid']} valid, {v['invalid']} invalid")
    rules = ", ".join(f"{k}={n}" for k, n in r["by_rule"].items()) or "none"
    print(f"auto-approved {r['auto_approved']} (rules: {rules}); queued {r['queued']} for review; superseded {r['superseded']}")
    return 0


def cmd_review_list(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.review.queue import invalid_candidates, list_items

    if args.invalid:
        rows = invalid_candidates(settings, limit=args.limit)
        if args.json:
            _print_json([{"candidate_id": c.id, "entry_key": c.entry_key, "question": c.question, "answer": c.answer, "reasons": c.reasons} for c in rows])
            return 0
        for c in rows:
            print(f"candidate {c.id:<5} {_short(c.question, 40):<40}  {'; '.join(c.reasons)}")
        print(f"{len(rows)} invalid candidate(s); fix one with `kbops review resubmit ID --by NAME --answer TEXT`")
        return 0
    items = list_items(settings, state=args.state, limit=args.limit)
    if args.json:
        _print_json([_item_dict(i) for i in items])
        return 0
    if not items:
        print(f"no {args.state} review items")
        return 0
    print(f"{'ID':>5}  {'ORIGIN':<7} {'LANG':<4} {'SUP':>3}  QUESTION / ANSWER")
    for i in items:
        flag = f"  [apply error: {i.apply_error}]" if i.apply_error else ""
        merge = f"  [alternate of {i.proposed_merge_into}?]" if i.proposed_merge_into else ""
        print(f"{i.id:>5}  {i.origin:<7} {i.lang:<4} {i.support:>3}  {_short(i.question, 50)}{merge}{flag}")
        print(f"{'':>24}→ {_short(i.answer, 70)}")
    print(f"{len(items)} {args.state} item(s); decide with `kbops review approve|reject|edit|merge ID --by NAME`")
    return 0


def _item_dict(i: Any) -> dict[str, Any]:
    return {
        "id": i.id,
        "entry_key": i.entry_key,
        "origin": i.origin,
        "kind": i.kind,
        "lang": i.lang,
        "question": i.question,
        "answer": i.answer,
        "alt_questions": i.alt_questions,
        "support": i.support,
        "priority": i.priority,
        "warnings": i.warnings,
        "evidence": i.evidence,
        "state": i.state,
        "decision": i.decision,
        "decided_by": i.decided_by,
        "apply_error": i.apply_error,
        "proposed_merge_into": i.proposed_merge_into,
        "merge_into": i.merge_into,
        "created_at": i.created_at,
    }


def cmd_review_show(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.review.queue import get_item

    item = _item_dict(get_item(settings, args.id))
    if args.json:
        _print_json(item)
        return 0
    for key in ("id", "entry_key", "origin", "kind", "lang", "state", "support", "question", "answer"):
        print(f"{key:>12}: {item[key]}")
    for alt in item["alt_questions"]:
        print(f"{'also asked':>12}: {alt}")
    for w in item["warnings"]:
        print(f"{'warning':>12}: {w}")
    if item["proposed_merge_into"]:
        print(f"{'proposal':>12}: add as an alternate question of {item['proposed_merge_into']} (approve or `kbops review merge {item['id']}`)")
    if item["apply_error"]:
        print(f"{'apply error':>12}: {item['apply_error']}")
    for ex in item["evidence"].get("excerpts", [])[:3]:
        print(f"{'evidence':>12}: session {ex['session']} turn {ex['turn']}: {_short(ex['question'], 40)} → {_short(ex['answer'], 50)}")
    if item["evidence"].get("records"):
        print(f"{'depends on':>12}: {', '.join(item['evidence']['records'])}")
    if item["evidence"].get("document"):
        print(f"{'document':>12}: {item['evidence']['document']} (v{item['evidence'].get('version')})")
    return 0


def _report_apply(result: Any) -> int:
    print(f"applied {result.applied} decision(s): {result.approved} approved, {result.rejected} rejected, {result.merged} merged")
    for item_id, error in result.errors.items():
        print(f"  ! item {item_id} not applied: {error}")
    return 0 if not result.errors else 1


def cmd_review_approve(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.review.queue import decide

    return _report_apply(decide(settings, args.ids, "approve", by=args.by, note=args.note))


def cmd_review_reject(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.review.queue import decide

    return _report_apply(decide(settings, args.ids, "reject", by=args.by, note=args.reason))


def cmd_review_edit(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.errors import InvalidDecision
    from kbops.review.queue import decide

    if not args.question and not args.answer:
        raise InvalidDecision("nothing to edit: pass --question TEXT and/or --answer TEXT")
    return _report_apply(decide(settings, [args.id], "approve", by=args.by, note=args.note, question=args.question, answer=args.answer))


def cmd_review_merge(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.review.queue import decide

    return _report_apply(decide(settings, args.ids, "merge", by=args.by, note=args.note, question=args.question, merge_into=args.into))


def cmd_review_invalid(settings: Settings, args: argparse.Namespace) -> int:
    args.invalid = True
    return cmd_review_list(settings, args)


def cmd_review_resubmit(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.errors import InvalidDecision
    from kbops.validate import resubmit

    if not (args.question or args.answer or args.slot):
        raise InvalidDecision("nothing to fix: pass --question TEXT, --answer TEXT and/or --slot NAME")
    c = resubmit(settings, args.id, by=args.by, question=args.question, answer=args.answer, template_slots=args.slot)
    if c.status == "invalid":
        print(f"candidate {c.id} is still invalid: {'; '.join(c.reasons)}")
        return 1
    print(f"candidate {c.id} passed the gate and is {c.status}")
    return 0


def cmd_review_report(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.errors import ReviewError
    from kbops.validate import get_report

    report = get_report(settings, args.id)
    if report is None:
        raise ReviewError(f"no validation report {args.id}" if args.id else "no validation report yet: run `kbops sync`")
    data = {
        "id": report.id, "run_id": report.run_id, "created_at": report.created_at, "suite": report.suite,
        "checked": report.checked, "valid": report.valid, "invalid": report.invalid,
        "near_duplicates": report.near_duplicates, "failures": report.failures, "rows": report.rows, "statistics": report.statistics,
    }
    if args.json:
        _print_json(data)
        return 0
    print(f"validation report {report.id} (run {report.run_id}, {report.created_at:%Y-%m-%d %H:%M:%S}): checked {report.checked}, {report.valid} valid, {report.invalid} invalid, {report.near_duplicates} near-duplicate(s)")
    for code, count in sorted(report.failures.items()):
        print(f"  {code:<20} {count}")
    for row in report.rows[: args.limit]:
        print(f"  candidate {row['candidate_id']:<5} {row['status']:<8} {'; '.join(row['reasons'] + row['flags'])}")
    return 0


def cmd_review_log(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.db import session_scope
    from kbops.review.audit import audit_events

    with session_scope(settings) as db:
        events = audit_events(db, limit=args.limit, item_id=args.item)
        rows = [
            {"id": e.id, "at": e.at, "actor": e.actor, "door": e.door, "action": e.action, "review_item_id": e.review_item_id, "entry_id": e.entry_id, "before": e.before, "after": e.after, "note": e.note}
            for e in events
        ]
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        target = f"item {r['review_item_id']}" if r["review_item_id"] else f"entry {r['entry_id']}"
        print(f"{r['at']:%Y-%m-%d %H:%M:%S}  {r['actor']:<26} {r['door']:<8} {r['action']:<13} {target}  {_short(r['note'] or '', 50)}")
    return 0


def cmd_review_gaps(settings: Settings, args: argparse.Namespace) -> int:
    """Unanswered topics mined from chats: handed-off or unanswered questions the KB does not answer."""
    from kbops.db import session_scope
    from kbops.extract.mining import list_gaps

    if args.limit < 1:
        from kbops.errors import ConfigError

        raise ConfigError(f"--limit {args.limit} must be at least 1")
    with session_scope(settings) as db:
        rows = [
            {"id": g.id, "topic_key": g.topic_key, "lang": g.lang, "question": g.question, "alt_questions": g.alt_questions,
             "support": g.support, "reasons": g.reasons, "kb_score": g.kb_score, "status": g.status, "evidence": g.evidence}
            for g in list_gaps(db, status=None if args.all else "open", lang=args.lang, limit=args.limit)
        ]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no unanswered topics" + ("" if args.all else " open"))
        return 0
    print(f"{'sessions':>8}  {'kb':>4}  {'lang':<4} {'why':<18} question")
    for r in rows:
        why = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items()))
        print(f"{r['support']:>8}  {r['kb_score'] or 0:>4.2f}  {r['lang']:<4} {_short(why, 18):<18} {_short(r['question'], 60)}")
    print(f"{len(rows)} topic(s); evidence (session key + turn) with --json; answer one with `kbops import` or a policy document")
    return 0


def cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.pipeline import publish

    if args.force and not args.by:
        raise ConfigError("--force overrides the golden-question check; say who decides with --by NAME")
    result = publish(settings, full=args.full, force=args.force, by=args.by or "operator")
    if args.json:
        _print_json(result)
        return 0
    a, b = result["apply"], result["build"]
    print(f"applied {a['applied']} review decision(s) ({a['approved']} approved, {a['rejected']} rejected, {a.get('merged', 0)} merged)")
    for item_id, error in a["errors"].items():
        print(f"  ! item {item_id} not applied: {error}")
    for warning in b["warnings"]:
        print(f"  warning: {warning}")
    if b["status"] == "unchanged":
        print(f"KB unchanged since release {b['release_id'] or '(none)'}: nothing to publish")
    else:
        print(
            f"built release {b['release_id']}: {b['entries']} entries, {b['vectors']} vectors "
            f"(embedding cache {b['cache_hits']} hits, {b['cache_misses']} misses) in {b['seconds']:.1f}s"
        )
        print(f"active release is now {result['activate']['release_id']}")
        golden = result["activate"].get("golden")
        if golden:
            was = f" (active release had {golden['active_correct']})" if golden["active_correct"] is not None else ""
            print(f"golden questions: {golden['correct']}/{golden['total']} answered correctly{was}" + (" — FORCED" if golden["forced"] else ""))
    return 0


def cmd_golden_add(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.index.golden import add_golden, read_golden_file

    if args.file:
        pairs = read_golden_file(Path(args.file))
    elif args.question and args.entry:
        pairs = [(" ".join(args.question), args.entry)]
    else:
        raise ConfigError("give a QUESTION with --entry KEY, or --file FILE (JSONL/CSV with question, entry_key)")
    added = add_golden(settings, pairs, by=args.by)
    print(f"added {added} golden question(s) ({len(pairs) - added} already there)")
    return 0


def cmd_golden_list(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.index.golden import list_golden

    rows = list_golden(settings)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no golden questions; add some with `kbops golden add QUESTION --entry KEY --by NAME`")
    for r in rows:
        print(f"{r['id']:>5}  {r['entry_key']:<40} {_short(r['question'], 60)}")
    return 0


def cmd_golden_remove(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.index.golden import remove_golden

    for golden_id in args.ids:
        remove_golden(settings, golden_id)
    print(f"removed {len(args.ids)} golden question(s)")
    return 0


def cmd_golden_check(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.index.golden import check_active

    score = check_active(settings)
    if args.json:
        _print_json(score.as_dict())
        return 0
    print(f"release {score.release_id}: {score.correct}/{score.total} golden questions answered correctly")
    for m in score.misses:
        print(f"  miss: {_short(m['question'], 50)!r} expected {m['expected']}, got {m['got'] or 'handoff (' + str(m['reason']) + ')'}")
    return 0 if not score.misses else 1


def cmd_ask(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.serve.retriever import Retriever, log_answer

    retriever = Retriever(settings)
    if args.question:
        answer = retriever.search(" ".join(args.question), top_k=args.top_k, lang=args.lang)
        log_answer(settings, answer)
        if args.json:
            _print_json(answer.as_dict())
            return 0
        _print_answer(answer)
        return 0
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = retriever.search(line.strip(), top_k=args.top_k, lang=args.lang)
            log_answer(settings, answer)
            print(json.dumps(answer.as_dict(), ensure_ascii=False, default=str), flush=True)
        except KbopsError as exc:
            print(json.dumps({"query": line.strip()[:200], "error": str(exc)}, ensure_ascii=False), flush=True)
    return 0


def _print_answer(answer: Any) -> None:
    top = answer.top
    if answer.handoff:
        best = f" (best score {top.score:.3f}: entry {top.entry_id})" if top else ""
        print(f"handoff: true — {answer.reason}; a human agent should answer{best}  [release {answer.release_id}]")
        return
    print(f"{top.answer}")
    print(f"  entry {top.entry_id} ({top.entry_key}), score {top.score:.3f}, release {answer.release_id}, handoff: false")


def cmd_releases(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.index.publish import list_releases

    rows = list_releases(settings)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no releases yet; run `kbops publish`")
    for r in rows:
        mark = "*" if r["active"] else " "
        if "error" in r:
            print(f"{mark} {r['release_id']}  BROKEN: {r['error']}")
        else:
            print(f"{mark} {r['release_id']}  {r['created_at'][:19]}  {r['entries']:>6} entries  {r['vectors']:>6} vectors  {r['index_type']}")
    return 0


def cmd_rollback(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.index.publish import rollback

    result = rollback(settings, args.release)
    print(f"active release is now {result['release_id']} (was {result['previous']})")
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:

    from kbops.faq import import_faq

    result = import_faq(settings, Path(args.file), approve=args.approve, by=args.by)
    if args.json:
        _print_json(result.as_dict())
        return 0 if not result.errors else 1
    print(
        f"read {result.read} row(s): {result.proposed} new candidate(s), {result.unchanged} unchanged; "
        + (f"{result.approved} approved by {args.by}" if args.approve else f"{result.queued} queued for review")
    )
    for error in result.errors:
        print(f"  ! {error}")
    return 0 if not result.errors else 1


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from kbops.faq import export_faq

    print(f"wrote {export_faq(settings, Path(args.file))} active entries to {args.file}")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from kbops.serve.api import create_app

    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0


def _read_new_password(args: argparse.Namespace) -> str:
    """The new password from stdin (--password-stdin) or a prompt; never echoed, never an argument."""
    import getpass

    from kbops.errors import AccountError

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise AccountError("--password-stdin read an empty line; pipe the password in, e.g. `printf '%s\\n' \"$PW\" | kbops reviewers add NAME --password-stdin`")
        return password
    if not sys.stdin.isatty():
        raise AccountError("no terminal to ask for the password: pass --password-stdin and pipe it in")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise AccountError("the two passwords differ; run the command again")
    return first


def _operator() -> str:
    """Who runs the command, for the audit log of account changes."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_reviewers_add(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.review.accounts import add_reviewer, check_name

    check_name(args.name)
    password = None if args.no_password else _read_new_password(args)
    account = add_reviewer(settings, args.name, password, role=args.role, by=_operator())
    how = "signs in only through the trusted proxy header" if password is None else "signs in with a password"
    print(f"reviewer {account.name} added ({account.role}; {how}); the review page is at /review on `kbops serve`")
    return 0


def cmd_reviewers_list(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.review.accounts import list_reviewers

    rows = list_reviewers(settings)
    if args.json:
        _print_json([{"name": a.name, "role": a.role, "password": a.has_password, "created_at": a.created_at, "last_login_at": a.last_login_at} for a in rows])
        return 0
    if not rows:
        print("no reviewer accounts; add one with `kbops reviewers add NAME --role admin`")
    for a in rows:
        last = f"{a.last_login_at:%Y-%m-%d %H:%M}" if a.last_login_at else "never"
        print(f"{a.name:<24} {a.role:<9} {'password' if a.has_password else 'proxy header only':<18} last sign-in {last}")
    return 0


def cmd_reviewers_remove(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.review.accounts import remove_reviewer

    remove_reviewer(settings, args.name, by=_operator())
    print(f"reviewer {args.name} removed; their past decisions stay in the audit log")
    return 0


def cmd_reviewers_passwd(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.review.accounts import get_reviewer, set_password
    from kbops.errors import AccountError

    if get_reviewer(settings, args.name) is None:
        raise AccountError(f"no reviewer called {args.name!r}; see `kbops reviewers list`")
    set_password(settings, args.name, _read_new_password(args), by=_operator())
    print(f"password of {args.name} changed; their open sessions ended")
    return 0


def cmd_reviewers_role(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.review.accounts import set_role

    set_role(settings, args.name, args.role, by=_operator())
    print(f"{args.name} is now {args.role}")
    return 0


def cmd_sources_status(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.sources.status import sources_status

    rows = sources_status(settings)
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        last = r["last_run"]
        when = f"{last['finished_at']:%Y-%m-%d %H:%M:%S}" if last and last["finished_at"] else "never"
        mark = f"  watermark {r['watermark']}" if r["watermark"] else ""
        print(f"{r['source']:<12} last sync {when}  records {r['records']:>6} (deleted {r['deleted']})  quarantined {r['quarantined']}{mark}")
        for q in r["recent_quarantine"]:
            print(f"  ! {q['location']}: {q['reason']}")
    return 0


# --- parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kbops",
        description="Keep a customer-service bot's knowledge base true: sync sources, review candidates, publish releases, answer.",
    )
    parser.add_argument("--config", help="kbops.toml to read (default: $KBOPS_CONFIG or ./kbops.toml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[..., int], help_text: str, parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    add("init", cmd_init, "create or upgrade the KB database and index root (idempotent)")

    p = add("sync", cmd_sync, "pull sources, detect changes, extract, validate, enqueue (kb_ingest's work)")
    p.add_argument("--source", help="only this source (a name from the sources config)")
    p.add_argument("--confirm-deletions", action="store_true", help="apply a snapshot held back by the mass-deletion guard")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    review = sub.add_parser("review", help="the review queue: list, show, approve, reject, edit, log", description="the review queue")
    rsub = review.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    p = add("list", cmd_review_list, "the waiting items, highest priority first", rsub)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--invalid", action="store_true", help="show candidates the validation gate refused, with reasons")
    p.add_argument("--state", default="open", choices=["open", "applied", "superseded"], help="which items (default open)")
    p.add_argument("--limit", type=int, default=200, help="at most this many rows")
    p = add("show", cmd_review_show, "one item with its evidence and warnings", rsub)
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("approve", cmd_review_approve, "approve items as they are", rsub)
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p.add_argument("--by", required=True, help="reviewer name (recorded in the audit log)")
    p.add_argument("--note", help="optional note")
    p = add("reject", cmd_review_reject, "reject items with a reason", rsub)
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p.add_argument("--by", required=True, help="reviewer name")
    p.add_argument("--reason", required=True, help="why (shown to other reviewers)")
    p = add("edit", cmd_review_edit, "edit an item's question and/or answer, then approve it", rsub)
    p.add_argument("id", type=int)
    p.add_argument("--by", required=True, help="reviewer name")
    p.add_argument("--question", help="the corrected question")
    p.add_argument("--answer", help="the corrected answer")
    p.add_argument("--note", help="optional note")
    p = add("merge", cmd_review_merge, "add items' questions as alternate questions of an existing entry", rsub)
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p.add_argument("--by", required=True, help="reviewer name")
    p.add_argument("--into", help="entry key to join (default: the entry routing proposed for a near-duplicate)")
    p.add_argument("--question", help="a corrected phrasing to add instead of the item's question")
    p.add_argument("--note", help="optional note")
    p = add("gaps", cmd_review_gaps, "unanswered topics mined from chats (handed off, or not in the KB), most-asked first", rsub)
    p.add_argument("--lang", choices=("zh", "en"), help="only topics in this language")
    p.add_argument("--all", action="store_true", help="also topics the KB now covers")
    p.add_argument("--limit", type=int, default=50, help="at most this many topics")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("invalid", cmd_review_invalid, "candidates the validation gate refused, with reasons", rsub)
    p.add_argument("--limit", type=int, default=200, help="at most this many rows")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("resubmit", cmd_review_resubmit, "fix a refused candidate and run it through the gate again", rsub)
    p.add_argument("id", type=int, metavar="CANDIDATE_ID")
    p.add_argument("--by", required=True, help="your name (recorded in the audit log)")
    p.add_argument("--question", help="the corrected question")
    p.add_argument("--answer", help="the corrected answer")
    p.add_argument("--slot", action="append", help="declare a {{NAME}} template slot the bot fills (repeatable)")
    p = add("report", cmd_review_report, "a stored validation report (default: the latest)", rsub)
    p.add_argument("id", type=int, nargs="?", help="report id (see pipeline run stats)")
    p.add_argument("--limit", type=int, default=50, help="at most this many rows")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("log", cmd_review_log, "the audit log of decisions and automatic changes", rsub)
    p.add_argument("--limit", type=int, default=50, help="at most this many events")
    p.add_argument("--item", type=int, help="only events for this review item")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("publish", cmd_publish, "apply decisions, build and activate a release (kb_publish's work)")
    p.add_argument("--full", action="store_true", help="rebuild even if the KB did not change")
    p.add_argument("--force", action="store_true", help="activate even if fewer golden questions are answered than before (needs --by)")
    p.add_argument("--by", help="who forces the activation (recorded in the audit log)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    golden = sub.add_parser("golden", help="golden questions that gate release activation", description="golden questions: question → expected entry")
    gsub = golden.add_subparsers(dest="golden_command", required=True, metavar="ACTION")
    p = add("add", cmd_golden_add, "add a golden question (or a JSONL/CSV file of them)", gsub)
    p.add_argument("question", nargs="*", help="the customer's question")
    p.add_argument("--entry", help="the entry key that must answer it (see `kbops export`)")
    p.add_argument("--file", help="JSONL or CSV with question, entry_key")
    p.add_argument("--by", required=True, help="who adds them")
    p = add("list", cmd_golden_list, "the golden questions", gsub)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("remove", cmd_golden_remove, "remove golden questions by id", gsub)
    p.add_argument("ids", type=int, nargs="+", metavar="ID")
    p = add("check", cmd_golden_check, "score the active release on the golden questions (exit 1 on any miss)", gsub)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("ask", cmd_ask, "what the bot answers; with no QUESTION, one question per line on stdin → JSON lines")
    p.add_argument("question", nargs="*", help="the customer's question")
    p.add_argument("--top-k", type=int, default=3, help="how many entries to return (1–50)")
    p.add_argument("--lang", choices=["zh", "en"], help="only entries in this language")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add("releases", cmd_releases, "list index releases (* = active)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("rollback", cmd_rollback, "re-activate RELEASE, or the release before the active one")
    p.add_argument("release", nargs="?", help="release id (default: the previous release)")

    p = add("import", cmd_import, "bring an FAQ file (.jsonl or .csv: question, answer, alt_questions, tags) in as candidates")
    p.add_argument("file", help="the FAQ file")
    p.add_argument("--approve", action="store_true", help="approve every valid row at once (needs --by)")
    p.add_argument("--by", help="who approves (recorded in the audit log)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("export", cmd_export, "write the active KB to a .jsonl or .csv file (the import format)")
    p.add_argument("file", help="where to write")

    p = add("serve", cmd_serve, "the bot HTTP API (POST /search, GET /healthz, GET /release) and the review page at /review")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")

    reviewers = sub.add_parser("reviewers", help="accounts for the review page: add, list, remove, passwd, role", description="accounts for the review page")
    vsub = reviewers.add_subparsers(dest="reviewers_command", required=True, metavar="ACTION")
    p = add("add", cmd_reviewers_add, "add an account (the password is prompted, or read from stdin with --password-stdin)", vsub)
    p.add_argument("name", help="sign-in name (letters, digits, . _ - @)")
    p.add_argument("--role", default="reviewer", choices=["reviewer", "admin"], help="reviewer decides items; admin also manages accounts (default reviewer)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.add_argument("--no-password", action="store_true", help="no password: signs in only through the trusted proxy header")
    p = add("list", cmd_reviewers_list, "the accounts with their roles", vsub)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("remove", cmd_reviewers_remove, "remove an account (its decisions stay in the audit log)", vsub)
    p.add_argument("name")
    p = add("passwd", cmd_reviewers_passwd, "set a new password (ends the account's sessions)", vsub)
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p = add("role", cmd_reviewers_role, "make an account a reviewer or an admin", vsub)
    p.add_argument("name")
    p.add_argument("role", choices=["reviewer", "admin"])

    sources = sub.add_parser("sources", help="configured sources", description="configured sources")
    ssub = sources.add_subparsers(dest="sources_command", required=True, metavar="ACTION")
    p = add("status", cmd_sources_status, "each source's last run, record counts and quarantined rows", ssub)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.load(config_file=args.config)
        if args.func is not cmd_init:
            from kbops.db import require_db

            require_db(settings)
        return args.func(settings, args)
    except KbopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
