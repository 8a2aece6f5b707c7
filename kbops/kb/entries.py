"""Knowledge entries: the only code that writes ``kb_entries``.

Humans (through any door) and auto-approval rules both approve through
:func:`approve_candidate`, so an approved entry always gets the same
treatment: upsert by entry key (the entry id, and so its FAISS id, stays
stable), refresh its dependencies, bump its revision, and append an audit
event with before/after. Taking knowledge out of service has one path per
intent — :func:`withdraw` (a fact it rests on changed: it may come back),
:func:`retire_entries` (its subject is gone) — each audited.

When sync sees a new version of a record, :func:`withdraw_dependents`
withdraws every active entry resting on an older one, and
:func:`flag_stale_mentions` withdraws chat-mined answers that quote a price
that just changed and re-proposes them for review with the old → new values.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from typing import Any, cast

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kbops.kb.audit import record_audit
from kbops.kb.candidates import Evidence, Proposal, StaleValue, propose
from kbops.schema import Candidate, EntryDependency, KbEntry, SourceRecord, utcnow
from kbops.text import amounts, fingerprint

_CHUNK = 500


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


class _Lookup(enum.Enum):
    """Sentinel type: look the entry up by the candidate's key."""

    BY_KEY = enum.auto()


LOOKUP = _Lookup.BY_KEY


def parse_ref(ref: str) -> tuple[str, str, str, int]:
    """'source/kind/key@version' → parts. Keys may contain '/', so split from the ends.

    Raises ValueError for a string that is not a record reference."""
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
    entry: KbEntry | None | _Lookup = LOOKUP,
) -> KbEntry:
    """Make the candidate (optionally edited) the active entry for its key.

    ``entry`` is the current entry for the key when the caller already has it
    (batch routing); by default it is looked up.
    """
    if isinstance(entry, _Lookup):
        entry = db.scalar(select(KbEntry).where(KbEntry.entry_key == candidate.entry_key))
    before = entry_snapshot(entry)
    question = question or candidate.question
    answer = answer or candidate.answer
    taught = list(entry.reviewer_questions or []) if entry is not None else []
    fields = dict(
        origin=candidate.origin,
        kind=candidate.kind,
        lang=candidate.lang,
        question=question,
        # What reviewers taught the entry outlives the revision that replaces it (a price changed upstream):
        # the candidate's phrasings, then theirs that it does not ask already.
        alt_questions=[*candidate.alt_questions, *new_phrasings([question, *candidate.alt_questions], taught)],
        reviewer_questions=taught,
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
        source, kind, key, version = parse_ref(ref)
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


def retire_entries(db: Session, source: str, kind: str, reasons: Mapping[str, str], keep: Collection[str] = ()) -> int:
    """Retire the entries resting on records whose subject is gone (a delisted product, a removed policy section).

    ``reasons`` maps record keys of ``source``/``kind`` to why. An entry is
    matched by the exact record it depends on (any version), never by an entry
    key prefix: retiring product ``A`` leaves product ``A:price`` alone.
    ``keep``: entry keys to leave in service (a document's sections that are still there).
    """
    keys = list(reasons)
    count = 0
    for start in range(0, len(keys), _CHUNK):
        rows = db.execute(
            select(KbEntry, EntryDependency.key)
            .join(EntryDependency, EntryDependency.entry_id == KbEntry.id)
            .where(
                EntryDependency.source == source,
                EntryDependency.kind == kind,
                EntryDependency.key.in_(keys[start : start + _CHUNK]),
                KbEntry.status != "retired",
            )
        ).all()
        for entry, key in rows:
            if entry.entry_key in keep or entry.status == "retired":
                continue
            _take_out(db, entry, "retired", reasons[key])
            count += 1
    return count


def withdraw(db: Session, entry: KbEntry, reason: str) -> None:
    """Stop serving ``entry`` until a replacement is approved: a fact it rests on changed."""
    _take_out(db, entry, "withdrawn", reason)


def _take_out(db: Session, entry: KbEntry, status: str, reason: str) -> None:
    before = entry_snapshot(entry) if status == "retired" else {"status": entry.status, "revision": entry.revision}
    entry.status, entry.status_reason, entry.updated_at = status, reason, utcnow()
    action = "retire" if status == "retired" else "withdraw"
    record_audit(db, actor="kbops", door="pipeline", action=action, entry_id=entry.id, before=before, after={"status": status}, note=reason)


def active_fingerprints(db: Session) -> dict[str, str]:
    """Fingerprint → entry key for the question and every alternate question of active entries."""
    known: dict[str, str] = {}
    for key, fp, alternates in db.execute(select(KbEntry.entry_key, KbEntry.fingerprint, KbEntry.alt_questions).where(KbEntry.status == "active")):
        known.setdefault(fp, key)
        for alt in alternates or []:
            known.setdefault(fingerprint(alt), key)
    return known


def withdraw_dependents(db: Session, source: str, kind: str, changed: Iterable[tuple[str, int]]) -> int:
    """Withdraw active entries resting on an older version of a changed record.

    ``changed``: (record key, new version) pairs of ``source``/``kind``.
    """
    new_versions = dict(changed)
    withdrawn = 0
    keys = list(new_versions)
    for start in range(0, len(keys), _CHUNK):
        rows = db.execute(
            select(KbEntry, EntryDependency.key, EntryDependency.version)
            .join(EntryDependency, EntryDependency.entry_id == KbEntry.id)
            .where(
                EntryDependency.source == source,
                EntryDependency.kind == kind,
                EntryDependency.key.in_(keys[start : start + _CHUNK]),
                KbEntry.status == "active",
            )
        ).all()
        for entry, key, old_version in rows:
            new_version = new_versions[key]
            if old_version >= new_version or entry.status != "active":
                continue
            withdraw(db, entry, f"{source}/{kind}/{key} changed (v{old_version} → v{new_version})")
            withdrawn += 1
    return withdrawn


def flag_stale_mentions(db: Session, source: str, run_id: int | None, changes: list[tuple[str, int, int, dict[str, Any]]]) -> int:
    """Withdraw chat-mined answers that quote a price that just changed, and queue them for review.

    ``changes``: (SKU, the old price record's row id, the new version, the new
    payload). Structured price entries are regenerated from the record; a
    human agent's answer ("这款现在299元") is not, so it is withdrawn and
    re-proposed with the old → new values for a reviewer (no rule
    auto-approves a candidate with ``stale_values``).
    """
    if not changes:
        return 0
    old_prices: dict[int, dict[str, Any]] = dict(
        db.execute(select(SourceRecord.id, SourceRecord.payload).where(SourceRecord.id.in_([c[1] for c in changes]))).tuples().all()
    )
    # Chat-mined entries are few next to records: read them once, match in Python.
    chat_entries = list(db.scalars(select(KbEntry).where(KbEntry.origin == "chat", KbEntry.status == "active")))
    if not chat_entries:
        return 0
    products = {
        key: payload
        for key, payload in db.execute(
            select(SourceRecord.key, SourceRecord.payload).where(
                SourceRecord.kind == "product", SourceRecord.is_current.is_(True), SourceRecord.key.in_([c[0] for c in changes])
            )
        )
    }
    by_amount: dict[str, list[KbEntry]] = {}
    for entry in chat_entries:
        for amount in amounts(entry.answer):
            by_amount.setdefault(amount, []).append(entry)
    flagged = 0
    for key, old_id, version, payload in changes:
        old, new = old_prices.get(old_id, {}).get("price"), payload.get("price")
        if not old or not new or old == new or old not in by_amount:
            continue
        product = products.get(key) or {}
        names = [n for n in (product.get("name_zh"), product.get("name_en"), product.get("name"), key) if n]
        for entry in by_amount[old]:
            if entry.status != "active":
                continue
            candidate = db.get(Candidate, entry.candidate_id) if entry.candidate_id else None
            evidence = cast(Evidence, dict(candidate.evidence)) if candidate else Evidence()
            if key not in evidence.get("skus", []) and not any(n in entry.question or n in entry.answer for n in names):
                continue
            withdraw(db, entry, f"answer mentions {old}, the old price of {key} (now {new})")
            record = f"{source}/price/{key}@{version}"
            evidence["stale_values"] = [StaleValue(record=record, old=old, new=new)]
            propose(
                db,
                Proposal(
                    entry_key=entry.entry_key, origin=entry.origin, kind=entry.kind, lang=entry.lang,
                    question=entry.question, answer=entry.answer, alt_questions=list(entry.alt_questions),
                    tags=list(entry.tags), evidence=evidence,
                    depends_on=sorted({*entry.depends_on, record}),
                    support=candidate.support if candidate else 1,
                ),
                run_id,
            )
            flagged += 1
    return flagged


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
    add_reviewer_questions(
        db, target, [question or candidate.question, *candidate.alt_questions], actor=actor, door=door, action="merge",
        review_item_id=review_item_id, note=note or f"candidate {candidate.id} merged into {target.entry_key}",
    )
    candidate.status = "merged"
    return target


def new_phrasings(asked: Iterable[str], more: Iterable[str]) -> list[str]:
    """Each of ``more`` (stripped, once) whose fingerprint none of ``asked`` has."""
    seen = {fingerprint(q) for q in asked}
    out = []
    for phrasing in more:
        phrasing = (phrasing or "").strip()
        if phrasing and fingerprint(phrasing) not in seen:
            seen.add(fingerprint(phrasing))
            out.append(phrasing)
    return out


def add_reviewer_questions(
    db: Session,
    target: KbEntry,
    phrasings: Iterable[str],
    *,
    actor: str,
    door: str,
    action: str = "merge",
    review_item_id: int | None = None,
    note: str | None = None,
) -> list[str]:
    """Teach ``target`` customers' ``phrasings`` a reviewer vouched for: they join its alternate questions and its
    ``reviewer_questions``, which a later revision of the entry keeps (:func:`approve_candidate`).

    The target keeps its answer, key and id (so its FAISS id); its revision is bumped so the next publish
    re-embeds it. Phrasings it already asks (same fingerprint) are not added twice, and the entry is then left
    as it was. Returns the phrasings added; the reviewer's act is audited as ``action`` either way."""
    before = entry_snapshot(target)
    added = new_phrasings([target.question, *target.alt_questions], phrasings)
    if added:
        target.alt_questions = [*target.alt_questions, *added]
        target.reviewer_questions = [*(target.reviewer_questions or []), *new_phrasings(target.reviewer_questions or [], added)]
        target.revision += 1
        target.updated_at = utcnow()
    record_audit(db, actor=actor, door=door, action=action, review_item_id=review_item_id, entry_id=target.id,
                 before=before, after=entry_snapshot(target), note=note)
    return added


def forget_reviewer_questions(db: Session, phrasings: Iterable[str], *, keep_entry: int | None, actor: str, door: str, note: str | None = None) -> int:
    """Take ``phrasings`` back from every entry a reviewer taught them to (but ``keep_entry``): a reviewer who
    labels them otherwise now (kbops/review/gaps.py) takes back their earlier word. Only what reviewers added
    goes (``reviewer_questions``); a phrasing the entry had of its own stays. Audited per entry changed;
    returns how many entries changed."""
    wanted = {fingerprint(p) for p in phrasings}
    changed = 0
    # Two columns of every servable entry, not every entry's row: a label is a reviewer's click, on a KB of 100k entries.
    holders = [
        eid for eid, taught in db.execute(select(KbEntry.id, KbEntry.reviewer_questions).where(KbEntry.status.in_(("active", "withdrawn"))))
        if eid != keep_entry and any(fingerprint(q) in wanted for q in taught or [])
    ]
    for entry in db.scalars(select(KbEntry).where(KbEntry.id.in_(holders)).order_by(KbEntry.id)):
        taught = [q for q in entry.reviewer_questions or [] if fingerprint(q) in wanted]
        before = entry_snapshot(entry)
        gone = {fingerprint(q) for q in taught}
        entry.alt_questions = [q for q in entry.alt_questions if fingerprint(q) not in gone]
        entry.reviewer_questions = [q for q in entry.reviewer_questions if fingerprint(q) not in gone]
        entry.revision += 1
        entry.updated_at = utcnow()
        record_audit(db, actor=actor, door=door, action="gap_label", entry_id=entry.id, before=before, after=entry_snapshot(entry), note=note)
        changed += 1
    return changed
