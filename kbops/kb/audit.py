"""The append-only audit log: who changed what knowledge, when, through which door.

Snapshots (``before``/``after``) and notes are scrubbed of private data as they
are recorded (:func:`kbops.pii.scrub`): an audit trail that quoted a customer's
phone number would store it for good, since events are never updated.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kbops.pii import scrub
from kbops.schema import AuditEvent

DOORS = ("cli", "sql", "web", "rule", "pipeline", "import")
#: Snapshot keys that hold knowledge or reviewer text (scrubbed); ids, keys, revisions and statuses are kept as they are.
TEXT_KEYS = frozenset({"question", "answer", "alt_questions", "note", "edited_question", "edited_answer", "matched", "excerpts"})


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    return value


def scrub_snapshot(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    """``snapshot`` with the text under :data:`TEXT_KEYS` scrubbed (nested too)."""
    if snapshot is None:
        return None
    return {k: _scrubbed(v) if k in TEXT_KEYS else v for k, v in snapshot.items()}


def record_audit(
    db: Session,
    *,
    actor: str,
    door: str,
    action: str,
    review_item_id: int | None = None,
    entry_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str | None = None,
) -> None:
    """Append one event; events are never updated or deleted."""
    db.add(
        AuditEvent(
            actor=actor,
            door=door,
            action=action,
            review_item_id=review_item_id,
            entry_id=entry_id,
            before=scrub_snapshot(before),
            after=scrub_snapshot(after),
            note=scrub(note) if note else note,
        )
    )


def audit_events(db: Session, limit: int = 50, item_id: int | None = None) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if item_id is not None:
        stmt = stmt.where(AuditEvent.review_item_id == item_id)
    return list(db.scalars(stmt))
