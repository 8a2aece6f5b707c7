"""The review queue as the doors see it: reading it, recording decisions, applying them.

Decisions arrive through three doors that all write the same columns: the
CLI and the web page (:func:`record_decision`, then applied at once) and a
plain SQL UPDATE (applied by the next ``kb_publish``). :func:`apply_decision`
checks each one (:func:`kbops.kb.routing.check_decision`, then the validation
gate again for approvals) and applies it; an invalid decision is not applied:
the row stays open with ``apply_error`` saying why. Routing itself (rules,
priority, queueing) is KB state and lives in :mod:`kbops.kb.routing`.

Exactly once: applying starts by *claiming* the row, in one UPDATE that is the
transaction's first write (``state: open → applying`` where it is still open
with a decision; rowcount checked). A second publish, worker or page request
that listed the same item waits for that row (PostgreSQL row lock, SQLite write
lock), then finds it no longer open and leaves it alone. ``applying`` is never
committed: the same transaction ends the row ``applied``, or ``open`` again with
``apply_error``.

Who decided: once reviewer accounts exist, a decision written through the SQL
door must name one in ``decided_by`` (the CLI's ``--by`` and the page's
signed-in reviewer already name people); otherwise it is not applied and
``apply_error`` says how to add the account.

Every function takes the door's session; the door decides the transactions
(``kbops.pipeline`` applies each item in its own).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.errors import AlreadyDecided, InvalidDecision, ReviewItemNotFound
from kbops.kb.audit import record_audit
from kbops.kb.entries import active_fingerprints, approve_candidate, merge_candidate
from kbops.kb.routing import DECISIONS, check_decision
from kbops.schema import Candidate, KbEntry, Reviewer, ReviewItem, utcnow
from kbops.text import detect_lang
from kbops.validate.facts import linked_skus, load_factbook
from kbops.validate.gate import RowVerdict, check_rows

# --- reading the queue -------------------------------------------------------------


def list_items(db: Session, state: str = "open", limit: int = 200) -> list[ReviewItem]:
    """Items in ``state``, highest priority first, oldest first among equals."""
    return list(
        db.scalars(
            select(ReviewItem)
            .where(ReviewItem.state == state)
            .order_by(ReviewItem.priority.desc(), ReviewItem.created_at, ReviewItem.id)
            .limit(limit)
        )
    )


def get_item(db: Session, item_id: int) -> ReviewItem:
    item = db.get(ReviewItem, item_id)
    if item is None:
        raise ReviewItemNotFound(f"no review item {item_id}; see `kbops review list`", item_id=item_id)
    return item


def invalid_candidates(db: Session, limit: int = 200) -> list[Candidate]:
    """Candidates the gate refused, newest first (``kbops review invalid``)."""
    return list(db.scalars(select(Candidate).where(Candidate.status == "invalid").order_by(Candidate.id.desc()).limit(limit)))


# --- deciding ------------------------------------------------------------------------


@dataclass
class ApplyResult:
    applied: int = 0
    approved: int = 0
    rejected: int = 0
    merged: int = 0
    #: Items another run (publish, worker, page) applied first: nothing left to do here.
    skipped: int = 0
    errors: dict[int, str] = field(default_factory=dict)

    def add(self, item_id: int, outcome: str | None, error: str | None) -> None:
        """Count one item's outcome (the decision applied), its error, or that another run had it."""
        if error is not None:
            self.errors[item_id] = error
            return
        if outcome is None:
            self.skipped += 1
            return
        self.applied += 1
        if outcome == "approve":
            self.approved += 1
        elif outcome == "merge":
            self.merged += 1
        else:
            self.rejected += 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_decision(
    db: Session,
    item_ids: list[int],
    decision: str,
    *,
    by: str,
    note: str | None = None,
    question: str | None = None,
    answer: str | None = None,
    merge_into: str | None = None,
    door: str = "cli",
) -> None:
    """Record a reviewer's decision on open items (applied by :func:`apply_decision`).

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
    if decision not in DECISIONS:  # the doors pass the exact word; SQL decisions are normalised at apply time
        raise InvalidDecision(f"decision {decision!r} is not one of {', '.join(DECISIONS)}", decision=decision)
    check_decision(decision, by=by, note=note, merge_into=merge_into, edited_answer=answer, door=door)
    merge_into = (merge_into or "").strip() or None
    for item_id in item_ids:
        item = get_item(db, item_id)
        if item.state != "open" or (item.decision is not None and item.apply_error is None):
            who = item.decided_by or "the pipeline"
            raise AlreadyDecided(f"review item {item_id} was already decided by {who} ({item.decision or item.state})", item_id=item_id, decided_by=who)
        target_key = merge_into or item.proposed_merge_into
        if decision == "merge":
            if not target_key:
                raise InvalidDecision(f"review item {item_id}: a merge needs the entry to join: pass --into ENTRY_KEY", item_id=item_id)
            error = _merge_target_error(db, item, target_key, question)
            if error:
                raise InvalidDecision(f"review item {item_id}: {error}", item_id=item_id, merge_into=target_key)
        claimed = cast(CursorResult[Any], db.execute(
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
        )).rowcount
        if claimed != 1:
            db.rollback()
            fresh = db.get(ReviewItem, item_id)
            who = fresh.decided_by if fresh and fresh.decided_by else "someone else"
            raise AlreadyDecided(f"review item {item_id} was already decided by {who}", item_id=item_id, decided_by=who)


def decided_items(db: Session, item_ids: list[int] | None = None) -> list[int]:
    """Ids of open items that carry a decision not yet applied (or just those among ``item_ids``)."""
    stmt = select(ReviewItem.id).where(ReviewItem.state == "open", ReviewItem.decision.is_not(None))
    if item_ids is not None:
        stmt = stmt.where(ReviewItem.id.in_(item_ids))
    return list(db.scalars(stmt.order_by(ReviewItem.id)))


def precheck_approvals(db: Session, settings: Settings, ids: list[int]) -> dict[int, RowVerdict]:
    """One gate run for every plain approval among ``ids`` (a bulk approve of N items
    costs one great-expectations validation, not N); verdicts by review item id."""
    rows = []
    for item in db.scalars(select(ReviewItem).where(ReviewItem.id.in_(ids))):
        if (item.decision or "").strip().lower() == "approve" and not (item.proposed_merge_into and not (item.edited_answer or "").strip()):
            candidate = db.get(Candidate, item.candidate_id)
            if candidate is not None:
                rows.append(_approval_row(item, candidate))
    if not rows:
        return {}
    skus = {sku for row in rows for sku in linked_skus(row)}
    verdicts = check_rows(rows, active_fingerprints(db), facts=load_factbook(db, skus), template_slots=settings.template_slots)
    return {row["candidate_id"]: verdict for row, verdict in zip(rows, verdicts)}


def apply_decision(db: Session, settings: Settings, item_id: int, verdict: RowVerdict | None = None) -> tuple[str | None, str | None]:
    """Apply one recorded decision; returns (the decision applied, None), (None, why not),
    or (None, None) when the item is no longer open with a decision (another run applied it).

    Call it in a fresh transaction: its first statement claims the row (see the
    module docstring), so concurrent runs apply each decision exactly once.
    A decision that cannot be applied changes nothing but the item's
    ``apply_error``; the item stays open for the reviewer to fix.
    ``verdict``: the gate's verdict on this approval when a bulk pre-check made one.
    """
    claimed = cast(CursorResult[Any], db.execute(
        update(ReviewItem)
        .where(ReviewItem.id == item_id, ReviewItem.state == "open", ReviewItem.decision.is_not(None))
        .values(state="applying")
        .execution_options(synchronize_session=False)
    )).rowcount
    if claimed != 1:
        get_item(db, item_id)  # ReviewItemNotFound when it does not exist at all
        return None, None
    item = db.get(ReviewItem, item_id, populate_existing=True)
    assert item is not None  # claimed above, in this transaction
    try:
        decision = _apply(db, item, settings, verdict)
    except InvalidDecision as exc:
        item.state, item.apply_error = "open", str(exc)
        return None, str(exc)
    item.state = "applied"
    item.decision = decision
    item.apply_error = None
    item.applied_at = utcnow()
    if item.decided_at is None:
        item.decided_at = item.applied_at
    return decision, None


def _apply(db: Session, item: ReviewItem, settings: Settings, verdict: RowVerdict | None) -> str:
    """Write what the decision says; raise InvalidDecision (before any write) when it cannot be."""
    decision = check_decision(item.decision, by=item.decided_by, note=item.note, merge_into=item.merge_into, door="sql")
    if item.decided_via is None:
        _check_sql_reviewer(db, item)
    candidate = db.get(Candidate, item.candidate_id)
    if candidate is None:
        raise InvalidDecision(f"candidate {item.candidate_id} of review item {item.id} no longer exists", item_id=item.id)
    if decision == "approve" and item.proposed_merge_into and not (item.edited_answer or "").strip():
        # Approving a near-duplicate accepts what routing proposed: an alternate question, not a new entry.
        decision = "merge"
    actor, via = (item.decided_by or "").strip(), item.decided_via or "sql"
    if decision == "merge":
        _apply_merge(db, item, candidate, settings, actor, via)
        return "merge"
    if decision == "approve":
        question = (item.edited_question or "").strip() or item.question
        answer = (item.edited_answer or "").strip() or item.answer
        # Re-check at apply time, edited or not: a fact may have changed (or another
        # entry taken the question) while the item waited in the queue.
        if verdict is None:
            row = _approval_row(item, candidate)
            verdict = check_rows([row], active_fingerprints(db), facts=load_factbook(db, linked_skus(row)), template_slots=settings.template_slots)[0]
        if not verdict.ok:
            edited = question != item.question or answer != item.answer
            raise InvalidDecision(("edited text fails validation: " if edited else "the answer fails validation now (edit it): ") + "; ".join(verdict.reasons), item_id=item.id)
        approve_candidate(db, candidate, actor=actor, door=via, question=question, answer=answer, review_item_id=item.id, note=item.note)
        return "approve"
    candidate.status = "rejected"
    record_audit(db, actor=actor, door=via, action="reject", review_item_id=item.id, before={"question": item.question, "answer": item.answer}, note=item.note)
    return "reject"


def _check_sql_reviewer(db: Session, item: ReviewItem) -> None:
    """A SQL-door decision names a reviewer account, once the KB has any (an audit trail naming nobody is no trail).

    A KB without accounts (decided only through SQL and the CLI) keeps taking
    the name as written.
    """
    name = (item.decided_by or "").strip()
    if db.scalar(select(Reviewer.id).limit(1)) is None or db.scalar(select(Reviewer.id).where(Reviewer.name == name)) is not None:
        return
    raise InvalidDecision(
        f"decided_by {name!r} is not a reviewer account; set decided_by to a reviewer's name (`kbops reviewers list`) "
        f"or add one with `kbops reviewers add {name}`",
        item_id=item.id, decided_by=name,
    )


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


def _apply_merge(db: Session, item: ReviewItem, candidate: Candidate, settings: Settings, actor: str, via: str) -> None:
    """Apply a merge: the item's question joins an existing entry's alternate questions."""
    target_key = (item.merge_into or "").strip() or item.proposed_merge_into
    if not target_key:
        raise InvalidDecision("decision 'merge' needs merge_into set to the entry key to join", item_id=item.id)
    if (item.edited_answer or "").strip():
        raise InvalidDecision("a merge keeps the existing entry's answer; clear edited_answer (or set decision = 'approve')", item_id=item.id)
    error = _merge_target_error(db, item, target_key)
    if error:
        raise InvalidDecision(error, item_id=item.id, merge_into=target_key)
    target = db.scalar(select(KbEntry).where(KbEntry.entry_key == target_key))
    assert target is not None  # checked by _merge_target_error
    question = (item.edited_question or "").strip() or item.question
    verdict = check_rows(
        [{"candidate_id": item.id, "entry_key": target.entry_key, "lang": target.lang, "question": question, "answer": target.answer}],
        active_fingerprints(db),
        template_slots=settings.template_slots,
    )[0]
    if not verdict.ok:
        raise InvalidDecision(f"the question cannot join {target_key!r}: " + "; ".join(verdict.reasons), item_id=item.id, merge_into=target_key)
    merge_candidate(db, candidate, target, actor=actor, door=via, question=question, review_item_id=item.id, note=item.note)
    item.merge_into = target_key


def _approval_row(item: ReviewItem, candidate: Candidate) -> dict[str, Any]:
    """The gate's view of what an approval would publish (edits applied)."""
    evidence = {k: v for k, v in (candidate.evidence or {}).items() if k != "stale_values"}
    question = (item.edited_question or "").strip() or item.question
    answer = (item.edited_answer or "").strip() or item.answer
    return {
        "candidate_id": item.id, "entry_key": item.entry_key, "origin": item.origin, "lang": item.lang,
        "question": question, "answer": answer, "alt_questions": list(candidate.alt_questions or []),
        "depends_on": list(candidate.depends_on or []), "evidence": evidence,
    }
