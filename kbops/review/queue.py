"""The review queue: routing valid candidates, recording and applying decisions.

Routing sends each valid candidate either through an auto-approval rule
(logged with the rule's name) or into ``review_items``. A newer candidate for
the same entry supersedes an older open item, so reviewers never approve a
stale proposal.

Decisions arrive through three doors that all write the same columns: the
CLI (:func:`decide`), the web page, and a plain SQL UPDATE. :func:`apply_decisions`
checks each one and applies it in its own transaction: an invalid decision is
not applied; the row stays open with ``apply_error`` saying why.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kbops.config import ApprovalRule, Settings
from kbops.db import session_scope
from kbops.errors import AlreadyDecided, InvalidDecision, ReviewItemNotFound
from kbops.review.audit import record_audit
from kbops.review.decisions import approve_candidate, merge_candidate
from kbops.schema import Candidate, KbEntry, PipelineRun, QueryLogEntry, ReviewItem, utcnow
from kbops.text import detect_lang
from kbops.validate.facts import linked_skus, load_factbook
from kbops.validate.gate import check_rows

#: The values a reviewer may put in ``review_items.decision`` (see sql/review_contract.sql).
DECISIONS = ("approve", "reject", "merge")


@dataclass
class RouteResult:
    run_id: int = 0
    queued: int = 0
    auto_approved: int = 0
    superseded: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rule_for(rules: Iterable[ApprovalRule], candidate: Candidate, entry: KbEntry | None) -> ApprovalRule | None:
    if candidate.evidence.get("stale_values"):
        return None  # it quotes a fact that changed: a human must look, whatever the rules say
    if candidate.evidence.get("near_duplicate"):
        return None  # proposed as another entry's alternate question: a human decides
    for rule in rules:
        if not rule.covers(candidate.origin, candidate.kind):
            continue
        if rule.unchanged_text:
            if (
                entry is not None
                and entry.status in ("active", "withdrawn")
                and entry.question == candidate.question
                and entry.answer == candidate.answer
                and sorted(entry.alt_questions) == sorted(candidate.alt_questions)
            ):
                return rule
            continue
        return rule
    return None


TRAFFIC_DAYS = 7


def _priority(candidate: Candidate, entry: KbEntry | None, traffic: int = 0) -> float:
    """Higher first. Three signals, in the units a reviewer thinks in:

    * evidence: distinct sessions that asked it, weighted by the miner's quality
      score (0–1; records and policies count as 0.5) — ``support × (0.5 + quality)``;
    * a withdrawn entry the bot can no longer serve: +5, plus 2·ln(1 + queries
      that entry answered in the last ``TRAFFIC_DAYS`` days) — customers are being
      handed off on it right now;
    * age is the tie-breaker at read time (oldest first), not baked in here.
    """
    quality = (candidate.evidence or {}).get("quality")
    quality = float(quality) if isinstance(quality, (int, float)) else 0.5
    score = float(candidate.support) * (0.5 + min(max(quality, 0.0), 1.0))
    if entry is not None and entry.status == "withdrawn":
        score += 5.0 + 2.0 * math.log1p(traffic)
    return round(score, 3)


def _recent_traffic(db: Session, entry_ids: list[int]) -> dict[int, int]:
    """Queries each entry answered in the last TRAFFIC_DAYS days (from the bot's query log)."""
    if not entry_ids:
        return {}
    since = utcnow() - timedelta(days=TRAFFIC_DAYS)
    rows = db.execute(
        select(QueryLogEntry.entry_id, func.count())
        .where(QueryLogEntry.entry_id.in_(entry_ids), QueryLogEntry.at >= since)
        .group_by(QueryLogEntry.entry_id)
    )
    return {int(eid): int(n) for eid, n in rows}


def route_candidates(settings: Settings, candidate_ids: list[int] | None = None) -> RouteResult:
    """Auto-approve what a rule covers; queue the rest for a reviewer.

    A near-duplicate (``evidence["near_duplicate"]``, set by the gate) is never
    auto-approved: it is queued as a proposal to join the existing entry as an
    alternate question (``proposed_merge_into``).
    """
    started = time.perf_counter()
    result = RouteResult()
    with session_scope(settings) as db:
        run = PipelineRun(step="route")
        db.add(run)
        db.flush()
        result.run_id = run.id
        stmt = select(Candidate).where(Candidate.status == "valid")
        if candidate_ids is not None:
            stmt = stmt.where(Candidate.id.in_(candidate_ids))
        batch = list(db.scalars(stmt.order_by(Candidate.id)))
        # Within one batch the newest proposal per entry wins; older ones never reach a rule or a reviewer.
        newest = {c.entry_key: c for c in batch}
        for candidate in batch:
            if newest[candidate.entry_key] is not candidate:
                candidate.status = "superseded"
                result.superseded += 1
        batch = list(newest.values())
        entries, open_items = _prefetch(db, set(newest))
        # Each entry is written at most once per batch, so autoflush before every
        # statement is wasted work: flush explicitly where an id is needed.
        with db.no_autoflush:
            _route_batch(db, settings, batch, entries, open_items, result)
        result.seconds = round(time.perf_counter() - started, 3)
        run.finished_at, run.status, run.stats = utcnow(), "ok", result.as_dict()
    return result


def _route_batch(
    db: Session,
    settings: Settings,
    batch: list[Candidate],
    entries: dict[str, KbEntry],
    open_items: dict[str, list[ReviewItem]],
    result: RouteResult,
) -> None:
    """Route each candidate: a rule approves it, or it waits for a reviewer."""
    traffic = _recent_traffic(db, [e.id for e in entries.values() if e.status == "withdrawn"])
    for candidate in batch:
        result.superseded += _supersede_open_items(db, candidate, open_items.pop(candidate.entry_key, []))
        entry = entries.get(candidate.entry_key)
        rule = _rule_for(settings.rules, candidate, entry)
        if rule is not None:
            entries[candidate.entry_key] = approve_candidate(db, candidate, actor=f"rule:{rule.name}", door="rule", entry=entry)
            candidate.status = "auto_approved"
            result.auto_approved += 1
            result.by_rule[rule.name] = result.by_rule.get(rule.name, 0) + 1
            continue
        item = ReviewItem(
            candidate_id=candidate.id,
            entry_key=candidate.entry_key,
            origin=candidate.origin,
            kind=candidate.kind,
            lang=candidate.lang,
            question=candidate.question,
            answer=candidate.answer,
            alt_questions=list(candidate.alt_questions),
            evidence=candidate.evidence,
            warnings=_warnings(entry) + _gate_warnings(candidate),
            support=candidate.support,
            priority=_priority(candidate, entry, traffic.get(entry.id, 0) if entry is not None else 0),
            proposed_merge_into=(candidate.evidence.get("near_duplicate") or {}).get("entry_key"),
        )
        db.add(item)
        candidate.status = "queued"
        result.queued += 1


def _gate_warnings(candidate: Candidate) -> list[str]:
    """The gate's non-blocking flags (near-duplicate, a stale fact the sync flagged), for the reviewer."""
    return [r for r in candidate.reasons or [] if isinstance(r, str)]


def _warnings(entry: KbEntry | None) -> list[str]:
    if entry is None:
        return []
    if entry.status == "withdrawn":
        return [f"replaces withdrawn entry {entry.id}: {entry.status_reason}"]
    return [f"replaces active entry {entry.id} (revision {entry.revision})"]


def _prefetch(db: Session, keys: set[str]) -> tuple[dict[str, KbEntry], dict[str, list[ReviewItem]]]:
    """Entries and open review items for a batch's entry keys, one query per chunk."""
    entries: dict[str, KbEntry] = {}
    open_items: dict[str, list[ReviewItem]] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        for entry in db.scalars(select(KbEntry).where(KbEntry.entry_key.in_(chunk))):
            entries[entry.entry_key] = entry
        for item in db.scalars(select(ReviewItem).where(ReviewItem.entry_key.in_(chunk), ReviewItem.state == "open").order_by(ReviewItem.id)):
            open_items.setdefault(item.entry_key, []).append(item)
    return entries, open_items


def _supersede_open_items(db: Session, candidate: Candidate, older: list[ReviewItem]) -> int:
    """Close the open items for the candidate's entry: a newer proposal replaces them."""
    for item in older:
        item.state = "superseded"
        item.apply_error = None
        db.get(Candidate, item.candidate_id).status = "superseded"
        record_audit(db, actor="kbops", door="pipeline", action="supersede", review_item_id=item.id, note=f"newer candidate {candidate.id}")
    return len(older)


# --- reading the queue -------------------------------------------------------------


def list_items(settings: Settings, state: str = "open", limit: int = 200) -> list[ReviewItem]:
    with session_scope(settings) as db:
        return list(
            db.scalars(
                select(ReviewItem)
                .where(ReviewItem.state == state)
                .order_by(ReviewItem.priority.desc(), ReviewItem.created_at, ReviewItem.id)
                .limit(limit)
            )
        )


def get_item(settings: Settings, item_id: int) -> ReviewItem:
    with session_scope(settings) as db:
        item = db.get(ReviewItem, item_id)
        if item is None:
            raise ReviewItemNotFound(f"no review item {item_id}; see `kbops review list`")
        return item


def invalid_candidates(settings: Settings, limit: int = 200) -> list[Candidate]:
    with session_scope(settings) as db:
        return list(
            db.scalars(select(Candidate).where(Candidate.status == "invalid").order_by(Candidate.id.desc()).limit(limit))
        )


# --- deciding ------------------------------------------------------------------------


@dataclass
class ApplyResult:
    applied: int = 0
    approved: int = 0
    rejected: int = 0
    merged: int = 0
    errors: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    settings: Settings,
    item_ids: list[int],
    decision: str,
    *,
    by: str,
    note: str | None = None,
    question: str | None = None,
    answer: str | None = None,
    merge_into: str | None = None,
    door: str = "cli",
) -> ApplyResult:
    """Record a reviewer's decision on open items, then apply it at once.

    ``decision`` is ``approve`` (optionally with an edited ``question`` /
    ``answer``), ``reject`` (``note`` is the reason) or ``merge``: the item's
    question (or the edited ``question``) becomes an alternate question of the
    existing entry ``merge_into`` (an entry key) instead of a new entry; with
    no ``merge_into`` the entry routing proposed (``proposed_merge_into``) is
    used. ``door`` names where the decision came from (cli, web) for the audit log.

    Exactly one decision wins per item: the UPDATE only matches an undecided
    open row at the version we read (optimistic concurrency), so a second
    reviewer gets :class:`AlreadyDecided` naming who decided first.
    """
    if decision not in DECISIONS:
        raise InvalidDecision(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
    if not by or not by.strip():
        raise InvalidDecision("a decision needs the reviewer's name: pass --by NAME")
    if decision == "reject" and not (note or "").strip():
        raise InvalidDecision("a rejection needs a reason: pass --reason TEXT")
    if decision != "merge" and merge_into:
        raise InvalidDecision(f"merge_into={merge_into!r} only goes with the decision 'merge', not {decision!r}")
    if decision == "merge" and answer:
        raise InvalidDecision("a merge keeps the existing entry's answer: drop the edited answer, or approve instead")
    merge_into = (merge_into or "").strip() or None
    with session_scope(settings) as db:
        for item_id in item_ids:
            item = db.get(ReviewItem, item_id)
            if item is None:
                raise ReviewItemNotFound(f"no review item {item_id}; see `kbops review list`")
            if item.state != "open" or (item.decision is not None and item.apply_error is None):
                who = item.decided_by or "the pipeline"
                raise AlreadyDecided(f"review item {item_id} was already decided by {who} ({item.decision or item.state})")
            target_key = merge_into or item.proposed_merge_into
            if decision == "merge":
                if not target_key:
                    raise InvalidDecision(f"review item {item_id}: a merge needs the entry to join: pass --into ENTRY_KEY")
                error = _merge_target_error(db, item, target_key, question)
                if error:
                    raise InvalidDecision(f"review item {item_id}: {error}")
            claimed = db.execute(
                update(ReviewItem)
                .where(ReviewItem.id == item_id, ReviewItem.row_version == item.row_version, ReviewItem.state == "open")
                .values(
                    decision=decision,
                    decided_by=by.strip(),
                    decided_at=utcnow(),
                    decided_via=door,
                    note=note,
                    edited_question=question,
                    edited_answer=answer,
                    merge_into=target_key if decision == "merge" else None,
                    apply_error=None,
                    row_version=item.row_version + 1,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed != 1:
                db.rollback()
                fresh = db.get(ReviewItem, item_id)
                raise AlreadyDecided(f"review item {item_id} was already decided by {fresh.decided_by if fresh else 'someone else'}")
    return apply_decisions(settings, item_ids=item_ids)


def apply_decisions(settings: Settings, item_ids: list[int] | None = None) -> ApplyResult:
    """Apply every decided open item (or just ``item_ids``), one transaction each.

    Items decided by a plain SQL UPDATE have no ``decided_via``; they are
    audited as coming through the 'sql' door.
    """
    result = ApplyResult()
    with session_scope(settings) as db:
        stmt = select(ReviewItem.id).where(ReviewItem.state == "open", ReviewItem.decision.is_not(None))
        if item_ids is not None:
            stmt = stmt.where(ReviewItem.id.in_(item_ids))
        ids = list(db.scalars(stmt.order_by(ReviewItem.id)))
    checked = _precheck_approvals(settings, ids) if len(ids) > 1 else {}
    for item_id in ids:
        with session_scope(settings) as db:
            item = db.get(ReviewItem, item_id)
            error = _apply_one(db, item, settings, checked.get(item_id))
            if error is None:
                result.applied += 1
                if item.decision == "approve":
                    result.approved += 1
                elif item.decision == "merge":
                    result.merged += 1
                else:
                    result.rejected += 1
        if error is not None:
            # The failed attempt rolled back nothing else; record why, keep it open.
            with session_scope(settings) as db:
                db.execute(update(ReviewItem).where(ReviewItem.id == item_id).values(apply_error=error))
            result.errors[item_id] = error
    return result


def _merge_target_error(db: Session, item: ReviewItem, target_key: str, question: str | None = None) -> str | None:
    """Why the item's question cannot join entry ``target_key`` (None when it can)."""
    target = db.scalar(select(KbEntry).where(KbEntry.entry_key == target_key))
    if target is None:
        return f"merge_into {target_key!r} is not an entry key; pick one from `kbops review show {item.id}` (nearest entries)"
    if target.status not in ("active", "withdrawn"):
        return f"entry {target_key!r} is {target.status}; merge into an active entry"
    question = (question or item.edited_question or "").strip() or item.question
    if detect_lang(question) not in (target.lang, "und"):
        return f"the question is {detect_lang(question)} but entry {target_key!r} answers in {target.lang}; merge into an entry of the same language"
    return None


def _apply_merge(db: Session, item: ReviewItem, candidate: Candidate, settings: Settings) -> str | None:
    """Apply a merge: the item's question joins an existing entry's alternate questions."""
    target_key = (item.merge_into or "").strip() or item.proposed_merge_into
    if not target_key:
        return "decision 'merge' needs merge_into set to the entry key to join"
    if (item.edited_answer or "").strip():
        return "a merge keeps the existing entry's answer; clear edited_answer (or set decision = 'approve')"
    error = _merge_target_error(db, item, target_key)
    if error:
        return error
    target = db.scalar(select(KbEntry).where(KbEntry.entry_key == target_key))
    question = (item.edited_question or "").strip() or item.question
    verdict = check_rows(
        [{"candidate_id": item.id, "entry_key": target.entry_key, "lang": target.lang, "question": question, "answer": target.answer}],
        _active_fingerprints(db),
        template_slots=settings.template_slots,
    )[0]
    if not verdict.ok:
        return f"the question cannot join {target_key!r}: " + "; ".join(verdict.reasons)
    merge_candidate(db, candidate, target, actor=item.decided_by.strip(), door=item.decided_via or "sql", question=question, review_item_id=item.id, note=item.note)
    item.state = "applied"
    item.decision = "merge"
    item.merge_into = target_key
    item.apply_error = None
    item.applied_at = utcnow()
    if item.decided_at is None:
        item.decided_at = item.applied_at
    return None


def _active_fingerprints(db: Session) -> dict[str, str]:
    from kbops.validate import active_fingerprints

    return active_fingerprints(db)


def _approval_row(item: ReviewItem, candidate: Candidate) -> dict[str, Any]:
    """The gate's view of what an approval would publish (edits applied)."""
    evidence = {k: v for k, v in (candidate.evidence or {}).items() if k != "stale_values"}
    question = (item.edited_question or "").strip() or item.question
    answer = (item.edited_answer or "").strip() or item.answer
    return {"candidate_id": item.id, "entry_key": item.entry_key, "origin": item.origin, "lang": item.lang, "question": question, "answer": answer, "depends_on": list(candidate.depends_on or []), "evidence": evidence}


def _precheck_approvals(settings: Settings, ids: list[int]) -> dict[int, Any]:
    """One gate run for every plain approval among ``ids`` (a bulk approve of N items
    costs one great-expectations validation, not N); verdicts by review item id."""
    with session_scope(settings) as db:
        rows = []
        for item in db.scalars(select(ReviewItem).where(ReviewItem.id.in_(ids))):
            if (item.decision or "").strip().lower() == "approve" and not (item.proposed_merge_into and not (item.edited_answer or "").strip()):
                candidate = db.get(Candidate, item.candidate_id)
                if candidate is not None:
                    rows.append(_approval_row(item, candidate))
        if not rows:
            return {}
        skus = {sku for row in rows for sku in linked_skus(row)}
        verdicts = check_rows(rows, _active_fingerprints(db), facts=load_factbook(db, skus), template_slots=settings.template_slots)
    return {row["candidate_id"]: verdict for row, verdict in zip(rows, verdicts)}


def _apply_one(db: Session, item: ReviewItem, settings: Settings, verdict: Any = None) -> str | None:
    """Apply one decision; return an error message instead of applying a bad one.

    ``verdict``: the gate's verdict on this approval when a bulk pre-check made one."""
    decision = (item.decision or "").strip().lower()
    if decision not in DECISIONS:
        return f"decision {item.decision!r} is not one of {', '.join(DECISIONS)}; set decision to approve, reject or merge"
    if not (item.decided_by or "").strip():
        return "decided_by is empty; set it to the reviewer's name"
    if decision == "reject" and not (item.note or "").strip():
        return "a rejection needs a reason in note"
    if decision != "merge" and (item.merge_into or "").strip():
        return f"merge_into is set ({item.merge_into!r}) but decision is {decision!r}; set decision = 'merge' or clear merge_into"
    candidate = db.get(Candidate, item.candidate_id)
    if decision == "approve" and item.proposed_merge_into and not (item.edited_answer or "").strip():
        # Approving a near-duplicate accepts what routing proposed: an alternate question, not a new entry.
        decision = "merge"
    if decision == "merge":
        return _apply_merge(db, item, candidate, settings)
    question = (item.edited_question or "").strip() or item.question
    answer = (item.edited_answer or "").strip() or item.answer
    if decision == "approve":
        # Re-check at apply time, edited or not: a fact may have changed (or another
        # entry taken the question) while the item waited in the queue.
        if verdict is None:
            row = _approval_row(item, candidate)
            verdict = check_rows([row], _active_fingerprints(db), facts=load_factbook(db, linked_skus(row)), template_slots=settings.template_slots)[0]
        if not verdict.ok:
            edited = question != item.question or answer != item.answer
            return ("edited text fails validation: " if edited else "the answer fails validation now (edit it): ") + "; ".join(verdict.reasons)
    actor = item.decided_by.strip()
    via = item.decided_via or "sql"
    if decision == "approve":
        approve_candidate(db, candidate, actor=actor, door=via, question=question, answer=answer, review_item_id=item.id, note=item.note)
    else:
        candidate.status = "rejected"
        record_audit(db, actor=actor, door=via, action="reject", review_item_id=item.id, before={"question": item.question, "answer": item.answer}, note=item.note)
    item.state = "applied"
    item.decision = decision
    item.apply_error = None
    item.applied_at = utcnow()
    if item.decided_at is None:
        item.decided_at = item.applied_at
    return None
