"""The append-only audit log: who changed what knowledge, when, through which door."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kbops.schema import AuditEvent

DOORS = ("cli", "sql", "web", "rule", "pipeline", "import")


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
            before=before,
            after=after,
            note=note,
        )
    )


def audit_events(db: Session, limit: int = 50, item_id: int | None = None) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if item_id is not None:
        stmt = stmt.where(AuditEvent.review_item_id == item_id)
    return list(db.scalars(stmt))
