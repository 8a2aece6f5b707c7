"""Turning decisions into knowledge: the only code that writes ``kb_entries``.

Humans (through any door) and auto-approval rules both end here, so an
approved entry always gets the same treatment: upsert by entry key (the
entry id, and so its FAISS id, stays stable), refresh its dependencies,
bump its revision, and append an audit event with before/after.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kbops.review.audit import record_audit
from kbops.schema import Candidate, EntryDependency, KbEntry, utcnow
from kbops.text import fingerprint


def entry_snapshot(entry: KbEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "revision": entry.revision,
        "status": entry.status,
        "question": entry.question,
        "answer": entry.answer,
        "alt_questions": list(entry.alt_questions),
    }


class LOOKUP:
    """Sentinel: look the entry up by the candidate's key."""


def _parse_ref(ref: str) -> tuple[str, str, str, int]:
    """'source/kind/key@version' → parts. Keys may contain '/', so split from the ends."""
    head, version = ref.rsplit("@", 1)
    source, kind, key = head.split("/", 2)
    return source, kind, key, int(version)


def approve_candidate(
    db: Session,
    candidate: Candidate,
    *,
    actor: str,
    door: str,
    question: str | None = None,
    answer: str | None = None,
    review_item_id: int | None = None,
    note: str | None = None,
    entry: KbEntry | None | type[LOOKUP] = LOOKUP,
) -> KbEntry:
    """Make the candidate (optionally edited) the active entry for its key.

    ``entry`` is the current entry for the key when the caller already has it
    (batch routing); by default it is looked up.
    """
    if entry is LOOKUP:
        entry = db.scalar(select(KbEntry).where(KbEntry.entry_key == candidate.entry_key))
    before = entry_snapshot(entry)
    question = question or candidate.question
    answer = answer or candidate.answer
    fields = dict(
        origin=candidate.origin,
        kind=candidate.kind,
        lang=candidate.lang,
        question=question,
        alt_questions=list(candidate.alt_questions),
        answer=answer,
        tags=list(candidate.tags),
        depends_on=list(candidate.depends_on),
        fingerprint=fingerprint(question),
        valid_from=candidate.valid_from,
        valid_to=candidate.valid_to,
        status="active",
        status_reason=None,
        candidate_id=candidate.id,
        approved_by=actor,
        approved_via=door,
        updated_at=utcnow(),
    )
    if entry is None:
        entry = KbEntry(entry_key=candidate.entry_key, revision=1, **fields)
        db.add(entry)
        db.flush()
    else:
        for name, value in fields.items():
            setattr(entry, name, value)
        entry.revision += 1
    # synchronize_session=False: evaluating the delete against the whole identity map is O(session size).
    db.execute(delete(EntryDependency).where(EntryDependency.entry_id == entry.id).execution_options(synchronize_session=False))
    for ref in candidate.depends_on:
        source, kind, key, version = _parse_ref(ref)
        db.add(EntryDependency(entry_id=entry.id, source=source, kind=kind, key=key, version=version))
    candidate.status = "approved"
    record_audit(
        db,
        actor=actor,
        door=door,
        action="approve" if question == candidate.question and answer == candidate.answer else "edit_approve",
        review_item_id=review_item_id,
        entry_id=entry.id,
        before=before,
        after=entry_snapshot(entry),
        note=note,
    )
    return entry


def retire_entries(db: Session, key_prefix: str, reason: str, keep: set[str] | None = None) -> int:
    """Retire entries whose key starts with ``key_prefix`` (except ``keep``)."""
    keep = keep or set()
    count = 0
    for entry in db.scalars(
        select(KbEntry).where(KbEntry.entry_key.startswith(key_prefix, autoescape=True), KbEntry.status != "retired")
    ):
        if entry.entry_key in keep:
            continue
        before = entry_snapshot(entry)
        entry.status, entry.status_reason, entry.updated_at = "retired", reason, utcnow()
        record_audit(db, actor="kbops", door="pipeline", action="retire", entry_id=entry.id, before=before, after={"status": "retired"}, note=reason)
        count += 1
    return count


def merge_candidate(
    db: Session,
    candidate: Candidate,
    target: KbEntry,
    *,
    actor: str,
    door: str,
    question: str | None = None,
    review_item_id: int | None = None,
    note: str | None = None,
) -> KbEntry:
    """Add the candidate's question (and its alternates) to ``target``'s alternate questions.

    The target keeps its answer, key and id (so its FAISS id); its revision is
    bumped so the next publish re-embeds it. Phrasings the target already asks
    (same fingerprint) are not added twice. The candidate ends ``merged``.
    """
    before = entry_snapshot(target)
    seen = {fingerprint(target.question)} | {fingerprint(q) for q in target.alt_questions}
    alternates = list(target.alt_questions)
    for phrasing in [question or candidate.question, *candidate.alt_questions]:
        fp = fingerprint(phrasing)
        if phrasing.strip() and fp not in seen:
            seen.add(fp)
            alternates.append(phrasing.strip())
    target.alt_questions = alternates
    target.revision += 1
    target.updated_at = utcnow()
    candidate.status = "merged"
    record_audit(
        db,
        actor=actor,
        door=door,
        action="merge",
        review_item_id=review_item_id,
        entry_id=target.id,
        before=before,
        after=entry_snapshot(target),
        note=note or f"candidate {candidate.id} merged into {target.entry_key}",
    )
    return target
