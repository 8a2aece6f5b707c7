"""``kbops review …``: the review queue, refused candidates, validation reports, gaps and the audit log.

Reads open one session here and call the db-level API; decisions and
resubmissions go through the settings-level doors :func:`kbops.pipeline.decide`
and :func:`kbops.pipeline.resubmit` (imported inside the handlers: the pipeline
pulls the validation gate), which check, apply and audit exactly as the review
page does.
"""

from __future__ import annotations

import argparse
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_group, add_json_flag, emit, record_id, row_count, short
from kbops.config import Settings
from kbops.db import session_scope
from kbops.errors import InvalidDecision, ReviewError
from kbops.index.embedder import Embedder
from kbops.kb.audit import audit_events
from kbops.review.gaps import answer_gap, label_gap, ranked_gaps, refresh_bot_gaps
from kbops.review.queue import get_item, invalid_candidates, list_items
from kbops.review.spot_check import label_answer, sample_answers
from kbops.schema import Candidate, ReviewItem
from kbops.validate import get_report


def register(subparsers: Subparsers) -> None:
    """Add ``kbops review`` and its actions."""
    rsub = add_group(subparsers, "review", "the review queue: list, show, approve, reject, edit, log", "the review queue", "review_command")

    p = add_command(rsub, "list", cmd_list, "the waiting items, highest priority first")
    add_json_flag(p)
    p.add_argument("--invalid", action="store_true", help="show candidates the validation gate refused, with reasons")
    p.add_argument("--state", default="open", choices=["open", "applied", "superseded"], help="which items (default open)")
    p.add_argument("--limit", type=row_count, default=200, help="at most this many rows")

    p = add_command(rsub, "show", cmd_show, "one item with its evidence and warnings")
    p.add_argument("id", type=record_id)
    add_json_flag(p)

    p = add_command(rsub, "approve", cmd_approve, "approve items as they are")
    p.add_argument("ids", type=record_id, nargs="+", metavar="ID")
    p.add_argument("--by", required=True, help="reviewer name (recorded in the audit log)")
    p.add_argument("--note", help="optional note")

    p = add_command(rsub, "reject", cmd_reject, "reject items with a reason")
    p.add_argument("ids", type=record_id, nargs="+", metavar="ID")
    p.add_argument("--by", required=True, help="reviewer name")
    p.add_argument("--reason", required=True, help="why (shown to other reviewers)")

    p = add_command(rsub, "edit", cmd_edit, "edit an item's question and/or answer, then approve it")
    p.add_argument("id", type=record_id)
    p.add_argument("--by", required=True, help="reviewer name")
    p.add_argument("--question", help="the corrected question")
    p.add_argument("--answer", help="the corrected answer")
    p.add_argument("--note", help="optional note")

    p = add_command(rsub, "merge", cmd_merge, "add items' questions as alternate questions of an existing entry")
    p.add_argument("ids", type=record_id, nargs="+", metavar="ID")
    p.add_argument("--by", required=True, help="reviewer name")
    p.add_argument("--into", help="entry key to join (default: the entry routing proposed for a near-duplicate)")
    p.add_argument("--question", help="a corrected phrasing to add instead of the item's question")
    p.add_argument("--note", help="optional note")

    p = add_command(rsub, "gaps", cmd_gaps, "unanswered topics from chats and from the bot's own handoffs, ranked by frequency × recency")
    p.add_argument("--lang", choices=("zh", "en"), help="only topics in this language")
    p.add_argument("--origin", choices=("chat", "bot"), help="only topics mined from chats, or from the bot's handoffs")
    p.add_argument("--all", action="store_true", help="also topics the KB now covers and those a reviewer dismissed")
    p.add_argument("--no-refresh", action="store_true", help="list as stored; skip regrouping the bot's recent handoffs first")
    p.add_argument("--limit", type=row_count, default=50, help="at most this many topics")
    add_json_flag(p)

    p = add_command(rsub, "answer-gap", cmd_answer_gap, "answer a gap topic with a new entry; it goes through the gate and waits for review")
    p.add_argument("id", type=record_id, metavar="GAP_ID")
    p.add_argument("--by", required=True, help="your name (recorded in the audit log)")
    p.add_argument("--answer", required=True, help="the answer the bot should give")
    p.add_argument("--question", help="the question as the entry should ask it (default: the topic's question)")

    p = add_command(rsub, "label-gap", cmd_label_gap,
                    "say what a gap topic's questions are: an existing entry answers them, or the bot must hand them off; "
                    "they become golden questions")
    p.add_argument("id", type=record_id, metavar="GAP_ID")
    p.add_argument("--by", required=True, help="your name (recorded in the audit log and on the golden questions)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--entry", metavar="KEY", help="the active entry that answers them")
    which.add_argument("--handoff", action="store_true", help="no entry should answer them (out of scope): the topic is dismissed")
    p.add_argument("--teach", action="store_true",
                   help="with --entry: also add the phrasings to the entry's questions, so the next publish answers them "
                        "(can draw other questions to it: README, Reviewed handoffs)")
    add_json_flag(p)

    p = add_command(rsub, "answers", cmd_answers,
                    "a random sample of the bot's answers to check (spot check): label each with label-answer")
    p.add_argument("--count", type=row_count, default=20, help="how many answers (default 20)")
    p.add_argument("--days", type=row_count, default=7, help="from the last DAYS days of the query log (default 7)")
    p.add_argument("--lang", choices=("zh", "en"), help="only questions in this language")
    p.add_argument("--seed", type=int, help="repeat a draw")
    add_json_flag(p)

    p = add_command(rsub, "label-answer", cmd_label_answer,
                    "say whether the bot answered a logged question right; it becomes a golden question")
    p.add_argument("id", type=record_id, metavar="QUERY_ID")
    p.add_argument("--by", required=True, help="your name (recorded in the audit log and on the golden question)")
    verdict = p.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--right", action="store_true", help="the entry it answered with answers it")
    verdict.add_argument("--entry", metavar="KEY", help="wrong: this active entry answers it")
    verdict.add_argument("--handoff", action="store_true", help="wrong: no entry should answer it (the bot must hand it off)")
    add_json_flag(p)

    p = add_command(rsub, "invalid", cmd_invalid, "candidates the validation gate refused, with reasons")
    p.add_argument("--limit", type=row_count, default=200, help="at most this many rows")
    add_json_flag(p)

    p = add_command(rsub, "resubmit", cmd_resubmit, "fix a refused candidate and run it through the gate again")
    p.add_argument("id", type=record_id, metavar="CANDIDATE_ID")
    p.add_argument("--by", required=True, help="your name (recorded in the audit log)")
    p.add_argument("--question", help="the corrected question")
    p.add_argument("--answer", help="the corrected answer")
    p.add_argument("--slot", action="append", help="declare a {{NAME}} template slot the bot fills (repeatable)")

    p = add_command(rsub, "report", cmd_report, "a stored validation report (default: the latest)")
    p.add_argument("id", type=record_id, nargs="?", help="report id (see pipeline run stats)")
    p.add_argument("--limit", type=row_count, default=50, help="at most this many rows")
    add_json_flag(p)

    p = add_command(rsub, "log", cmd_log, "the audit log of decisions and automatic changes")
    p.add_argument("--limit", type=row_count, default=50, help="at most this many events")
    p.add_argument("--item", type=record_id, help="only events for this review item")
    add_json_flag(p)


# --- reading the queue -----------------------------------------------------------------


def _item_dict(i: ReviewItem) -> dict[str, Any]:
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


def _candidate_dict(c: Candidate) -> dict[str, Any]:
    return {"candidate_id": c.id, "entry_key": c.entry_key, "question": c.question, "answer": c.answer, "reasons": c.reasons}


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    if args.invalid:
        return cmd_invalid(settings, args)
    with session_scope(settings) as db:
        items = [_item_dict(i) for i in list_items(db, state=args.state, limit=args.limit)]
    emit(args, items, lambda rows: _print_items(rows, args.state))
    return 0


def _print_items(items: list[dict[str, Any]], state: str) -> None:
    if not items:
        print(f"no {state} review items")
        return
    print(f"{'ID':>5}  {'ORIGIN':<7} {'LANG':<4} {'SUP':>3}  QUESTION / ANSWER")
    for i in items:
        flag = f"  [apply error: {i['apply_error']}]" if i["apply_error"] else ""
        merge = f"  [alternate of {i['proposed_merge_into']}?]" if i["proposed_merge_into"] else ""
        print(f"{i['id']:>5}  {i['origin']:<7} {i['lang']:<4} {i['support']:>3}  {short(i['question'], 50)}{merge}{flag}")
        print(f"{'':>24}→ {short(i['answer'], 70)}")
    print(f"{len(items)} {state} item(s); decide with `kbops review approve|reject|edit|merge ID --by NAME`")


def cmd_invalid(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        rows = [_candidate_dict(c) for c in invalid_candidates(db, limit=args.limit)]
    emit(args, rows, _print_invalid)
    return 0


def _print_invalid(rows: list[dict[str, Any]]) -> None:
    for c in rows:
        print(f"candidate {c['candidate_id']:<5} {short(c['question'], 40):<40}  {'; '.join(c['reasons'])}")
    print(f"{len(rows)} invalid candidate(s); fix one with `kbops review resubmit ID --by NAME --answer TEXT`")


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        item = _item_dict(get_item(db, args.id))
    emit(args, item, _print_item)
    return 0


def _print_item(item: dict[str, Any]) -> None:
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
    evidence = item["evidence"]
    for ex in evidence.get("excerpts", [])[:3]:
        print(f"{'evidence':>12}: session {ex['session']} turn {ex['turn']}: {short(ex['question'], 40)} → {short(ex['answer'], 50)}")
    if evidence.get("records"):
        print(f"{'depends on':>12}: {', '.join(evidence['records'])}")
    if evidence.get("document"):
        print(f"{'document':>12}: {evidence['document']} (v{evidence.get('version')})")


# --- deciding ----------------------------------------------------------------------------


def _decide(settings: Settings, item_ids: list[int], decision: str, **kwargs: Any) -> int:
    """Record and apply a decision through the pipeline door; exit 1 when an item could not be applied."""
    from kbops.pipeline import decide

    result = decide(settings, item_ids, decision, door="cli", **kwargs)
    print(f"applied {result.applied} decision(s): {result.approved} approved, {result.rejected} rejected, {result.merged} merged")
    if result.skipped:  # a publish running at the same moment applied them first (each decision is applied once)
        print(f"  {result.skipped} decision(s) were applied meanwhile by a publish running at the same time")
    for item_id, error in result.errors.items():
        print(f"  ! item {item_id} not applied: {error}")
    return 0 if not result.errors else 1


def cmd_approve(settings: Settings, args: argparse.Namespace) -> int:
    return _decide(settings, args.ids, "approve", by=args.by, note=args.note)


def cmd_reject(settings: Settings, args: argparse.Namespace) -> int:
    return _decide(settings, args.ids, "reject", by=args.by, note=args.reason)


def cmd_edit(settings: Settings, args: argparse.Namespace) -> int:
    if not args.question and not args.answer:
        raise InvalidDecision("nothing to edit: pass --question TEXT and/or --answer TEXT")
    return _decide(settings, [args.id], "approve", by=args.by, note=args.note, question=args.question, answer=args.answer)


def cmd_merge(settings: Settings, args: argparse.Namespace) -> int:
    return _decide(settings, args.ids, "merge", by=args.by, note=args.note, question=args.question, merge_into=args.into)


def cmd_resubmit(settings: Settings, args: argparse.Namespace) -> int:
    from kbops.pipeline import resubmit

    if not (args.question or args.answer or args.slot):
        raise InvalidDecision("nothing to fix: pass --question TEXT, --answer TEXT and/or --slot NAME")
    c = resubmit(settings, args.id, by=args.by, question=args.question, answer=args.answer, template_slots=args.slot, door="cli")
    if c.status == "invalid":
        print(f"candidate {c.id} is still invalid: {'; '.join(c.reasons)}")
        return 1
    print(f"candidate {c.id} passed the gate and is {c.status}")
    return 0


# --- reports, gaps and the audit log ---------------------------------------------------------


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        report = get_report(db, args.id)
        if report is None:
            raise ReviewError(f"no validation report {args.id}" if args.id else "no validation report yet: run `kbops sync`", report_id=args.id)
        data = {
            "id": report.id, "run_id": report.run_id, "created_at": report.created_at, "suite": report.suite,
            "checked": report.checked, "valid": report.valid, "invalid": report.invalid,
            "near_duplicates": report.near_duplicates, "failures": report.failures, "rows": report.rows, "statistics": report.statistics,
        }
    emit(args, data, lambda d: _print_report(d, args.limit))
    return 0


def _print_report(report: dict[str, Any], limit: int) -> None:
    print(
        f"validation report {report['id']} (run {report['run_id']}, {report['created_at']:%Y-%m-%d %H:%M:%S}): checked {report['checked']}, "
        f"{report['valid']} valid, {report['invalid']} invalid, {report['near_duplicates']} near-duplicate(s)"
    )
    for code, count in sorted(report["failures"].items()):
        print(f"  {code:<20} {count}")
    for row in report["rows"][:limit]:
        print(f"  candidate {row['candidate_id']:<5} {row['status']:<8} {'; '.join(row['reasons'] + row['flags'])}")


def cmd_gaps(settings: Settings, args: argparse.Namespace) -> int:
    """Unanswered topics: chats' handed-off questions and the bot's own handoffs, regrouped first (unless --no-refresh)."""
    refreshed = None
    if not args.no_refresh:
        with session_scope(settings) as db:
            refreshed = refresh_bot_gaps(db, settings, Embedder.from_settings(settings)).as_dict()
    with session_scope(settings) as db:
        rows = [
            {"id": g.id, "topic_key": g.topic_key, "origin": g.origin, "lang": g.lang, "question": g.question, "alt_questions": g.alt_questions,
             "support": g.support, "rank": round(rank, 3), "last_seen": g.last_seen, "reasons": g.reasons, "kb_score": g.kb_score,
             "status": g.status, "answer_key": g.answer_key, "evidence": g.evidence}
            for g, rank in ranked_gaps(db, origin=args.origin, status=None if args.all else "open", lang=args.lang, limit=args.limit)
        ]
    emit(args, rows, lambda r: _print_gaps(r, args.all, refreshed))
    return 0


def _print_gaps(rows: list[dict[str, Any]], show_all: bool, refreshed: dict[str, Any] | None) -> None:
    if refreshed is not None:
        print(f"bot handoffs regrouped: {refreshed['queries']} question(s) → {refreshed['open']} open, {refreshed['covered']} covered topic(s)")
    if not rows:
        print("no unanswered topics" + ("" if show_all else " open"))
        return
    print(f"{'id':>5}  {'from':<4} {'asked':>5}  {'rank':>6}  {'kb':>4}  {'lang':<4} {'why':<18} question")
    for r in rows:
        why = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items()))
        status = "" if r["status"] == "open" else f"  [{r['status']}]"
        print(f"{r['id']:>5}  {r['origin']:<4} {r['support']:>5}  {r['rank']:>6.2f}  {r['kb_score'] or 0:>4.2f}  {r['lang']:<4} {short(why, 18):<18} {short(r['question'], 60)}{status}")
    print(f"{len(rows)} topic(s); examples with --json; answer one with `kbops review answer-gap ID --answer TEXT --by NAME`, "
          "or label it with `kbops review label-gap ID --entry KEY | --handoff --by NAME`")


def cmd_answer_gap(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        c = answer_gap(db, settings, Embedder.from_settings(settings), args.id, question=args.question, answer=args.answer, by=args.by, door="cli")
        status, cid, key, reasons = c.status, c.id, c.entry_key, list(c.reasons or [])
    if status == "invalid":
        print(f"candidate {cid} ({key}) was refused by the gate: {'; '.join(str(r) for r in reasons)}; fix it with `kbops review resubmit {cid}`")
        return 1
    print(f"candidate {cid} ({key}) passed the gate and is {status}; the gap is marked covered once a publish answers it")
    return 0


def cmd_label_gap(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        done = label_gap(db, args.id, entry_key=None if args.handoff else args.entry, by=args.by, door="cli", teach=args.teach).as_dict()
    emit(args, done, _print_label)
    return 0


def _print_label(done: dict[str, Any]) -> None:
    what = f"answered by {done['entry_key']}" if done["entry_key"] else "handed off (out of scope)"
    print(f"gap {done['gap_id']}: {done['phrasings']} phrasing(s) labelled {what}; {done['golden_added']} new golden question(s)")
    if done["entry_key"] and done["taught"]:
        print(f"  {len(done['taught'])} phrasing(s) added to {done['entry_key']}'s alternate questions; "
              "the gap is covered once a publish answers it (`kbops publish`)")
    elif done["entry_key"]:
        print("  the gap stays open while the bot misses it; --teach adds the phrasings to the entry's questions")
    else:
        print("  the topic is dismissed; its questions are no gap again (`kbops golden list` shows them, `kbops golden remove` undoes one)")


def cmd_answers(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        rows = [i.as_dict() for i in sample_answers(db, count=args.count, days=args.days, lang=args.lang, seed=args.seed)]
    emit(args, rows, _print_answers)
    return 0


def _print_answers(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no answers to check: none logged in the period, or all of them labelled already")
        return
    for r in rows:
        confidence = f"{r['confidence']:.2f}" if r["confidence"] is not None else "  - "
        print(f"{r['query_id']:>8}  {confidence}  {r['lang']:<3} {short(r['question'], 50):<50}  → {r['entry_key']}: {short(r['answer'] or '', 50)}")
    print(f"{len(rows)} answer(s); label each: `kbops review label-answer QUERY_ID --right | --entry KEY | --handoff --by NAME`")


def cmd_label_answer(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        done = label_answer(db, args.id, right=args.right, entry_key=args.entry, by=args.by, door="cli").as_dict()
    emit(args, done, lambda d: print(f"query {d['query_id']}: {d['verdict']}; golden question → {d['outcome']}"
                                     + ("" if d["golden_added"] else " (already labelled so)")))
    return 0


def cmd_log(settings: Settings, args: argparse.Namespace) -> int:
    with session_scope(settings) as db:
        rows = [
            {"id": e.id, "at": e.at, "actor": e.actor, "door": e.door, "action": e.action, "review_item_id": e.review_item_id,
             "entry_id": e.entry_id, "before": e.before, "after": e.after, "note": e.note}
            for e in audit_events(db, limit=args.limit, item_id=args.item)
        ]
    emit(args, rows, _print_log)
    return 0


def _print_log(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        target = f"item {r['review_item_id']}" if r["review_item_id"] else f"entry {r['entry_id']}" if r["entry_id"] else "-"
        print(f"{r['at']:%Y-%m-%d %H:%M:%S}  {r['actor']:<26} {r['door']:<8} {r['action']:<13} {target}  {short(r['note'] or '', 50)}")
