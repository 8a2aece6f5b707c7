"""The review page's reads: what a handler fetches, in its session, for the view-models.

Each function takes the handler's session and returns rows; turning rows
into what the templates show is :mod:`kbops.serve.review_web.views`. Reads
of a whole page are batched (a handful of queries per page, not per item).
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from kbops.kb.entries import parse_ref
from kbops.schema import AuditEvent, Candidate, ChatSession, IndexRelease, KbEntry, ReviewItem, SourceRecord
from kbops.serve.review_web.views import CardRows, QueueRow, evidence_of, merge_keys, record_refs


def open_queue(db: Session) -> list[QueueRow]:
    """Every open item, highest priority first, then oldest (the queue's order)."""
    rows = db.execute(
        select(ReviewItem.id, ReviewItem.origin, ReviewItem.lang, ReviewItem.warnings, ReviewItem.apply_error, Candidate.tags)
        .join(Candidate, Candidate.id == ReviewItem.candidate_id)
        .where(ReviewItem.state == "open")
        .order_by(ReviewItem.priority.desc(), ReviewItem.created_at, ReviewItem.id)
    ).all()
    return [QueueRow(*row) for row in rows]


def items_in_order(db: Session, ids: list[int]) -> list[ReviewItem]:
    """The review items ``ids``, in that order (ids that vanished are left out)."""
    if not ids:
        return []
    rows = {r.id: r for r in db.scalars(select(ReviewItem).where(ReviewItem.id.in_(ids)))}
    return [rows[i] for i in ids if i in rows]


def recently_decided(db: Session, limit: int = 200) -> list[ReviewItem]:
    """Applied items, most recently applied first."""
    return list(
        db.scalars(select(ReviewItem).where(ReviewItem.state == "applied").order_by(ReviewItem.applied_at.desc(), ReviewItem.id.desc()).limit(limit))
    )


def card_rows(db: Session, items: list[ReviewItem]) -> CardRows:
    """The candidates, chat sessions, record versions, entries and audit events behind ``items``."""
    out = CardRows()
    if not items:
        return out
    out.candidates = {c.id: c for c in db.scalars(select(Candidate).where(Candidate.id.in_([r.candidate_id for r in items])))}
    # Chat evidence: the whole (scrubbed) session around the answering turn.
    session_keys = {ex["session"] for r in items for ex in evidence_of(r).get("excerpts", [])}
    if session_keys:
        for s in db.scalars(select(ChatSession).where(ChatSession.session_key.in_(sorted(session_keys)))):
            out.sessions.setdefault(s.session_key, s)
    # Record evidence: each version the item rests on, and the version before it (the old → new diff).
    for r in items:
        cand = out.candidates.get(r.candidate_id)
        for ref in record_refs(r, cand):
            try:
                out.refs[ref] = parse_ref(ref)
            except ValueError:
                continue  # not a record reference: nothing to look up or show
    wanted = sorted({(s, k, key) for s, k, key, _ in out.refs.values()})
    for start in range(0, len(wanted), 100):
        chunk = wanted[start : start + 100]
        cond = or_(*[and_(SourceRecord.source == s, SourceRecord.kind == k, SourceRecord.key == key) for s, k, key in chunk])
        for rec in db.scalars(select(SourceRecord).where(cond)):
            out.records[(rec.source, rec.kind, rec.key, rec.version)] = rec
    # The entry each item would replace, and the entries it could be merged into.
    keys = {r.entry_key for r in items} | {k for r in items for k in merge_keys(r)}
    out.entries = {e.entry_key: e for e in db.scalars(select(KbEntry).where(KbEntry.entry_key.in_(sorted(keys))))}
    # Audit trail: events on the item, and on the entry it replaces.
    entry_ids = [out.entries[r.entry_key].id for r in items if r.entry_key in out.entries]
    out.events = list(
        db.scalars(
            select(AuditEvent)
            .where(or_(AuditEvent.review_item_id.in_([r.id for r in items]), AuditEvent.entry_id.in_(entry_ids or [-1])))
            .order_by(AuditEvent.id.desc())
            .limit(50 * len(items))
        )
    )
    return out


def activated_releases(db: Session) -> list[IndexRelease]:
    """Every release that was ever activated, oldest build first (when did a decision go live)."""
    return list(db.scalars(select(IndexRelease).where(IndexRelease.activated_at.is_not(None)).order_by(IndexRelease.created_at, IndexRelease.id)))
