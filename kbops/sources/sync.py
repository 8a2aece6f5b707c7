"""Sync: mirror each source into the KB database and detect what changed.

Every upstream record is kept with a content hash and a version. A changed
hash adds a version; a record missing from a full snapshot (or deleted in a
feed) gets a tombstone version; a deleted record that comes back is
"relisted". Re-reading the same snapshot changes nothing.

When a fact changes or disappears, every active KB entry that rests on an
older version of it is withdrawn at once, so the next release stops serving
it even before anyone approves a replacement (the bot hands off instead of
quoting a stale price).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.db import session_scope
from kbops.review.audit import record_audit
from kbops.schema import (
    ChatSession,
    EntryDependency,
    KbEntry,
    PipelineRun,
    QuarantinedRow,
    SourceRecord,
    utcnow,
)
from kbops.sources.chats import Session as ChatData
from kbops.sources.chats import read_chats
from kbops.sources.config import SourceConfig, load_sources
from kbops.sources.files import Parsed, Rejected, read_documents, read_records
from kbops.text import content_hash
from kbops.errors import ConfigError


@dataclass
class SyncResult:
    """What one source's sync read and changed."""

    source: str
    run_id: int = 0
    read: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0
    relisted: int = 0
    quarantined: int = 0
    withdrawn: int = 0
    held_back: int = 0
    full: bool = True
    watermark: dict[str, Any] | None = None
    last_full_at: str | None = None
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sync_sources(settings: Settings, only: str | None = None, confirm_deletions: bool = False) -> list[SyncResult]:
    """Sync every configured source (or just ``only``); one run-ledger row each."""
    sources = load_sources(settings.require_sources())
    if only is not None:
        sources = [s for s in sources if s.name == only]
        if not sources:
            names = ", ".join(s.name for s in load_sources(settings.require_sources()))
            raise ConfigError(f"no source named {only!r}; configured sources: {names}")
    return [sync_source(settings, s, confirm_deletions) for s in sources]


def sync_source(
    settings: Settings,
    source: SourceConfig,
    confirm_deletions: bool = False,
    *,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> SyncResult:
    """Sync one source. ``env`` (default os.environ) supplies SQL URLs; ``now`` the clock."""
    started = time.perf_counter()
    result = SyncResult(source=source.name)
    with session_scope(settings) as db:
        run = PipelineRun(step="sync", source=source.name)
        db.add(run)
        db.flush()
        result.run_id = run.id
        if source.type == "chats":
            _sync_chats(db, source, run, result)
        elif source.type == "sql":
            _sync_sql(db, source, run, result, confirm_deletions, os.environ if env is None else env, now or utcnow())
        else:
            items = read_documents(source) if source.type == "documents" else read_records(source)
            snapshot = source.type == "documents" or source.mode == "snapshot"
            _sync_records(db, source, run, result, list(items), confirm_deletions, snapshot)
        result.seconds = round(time.perf_counter() - started, 3)
        run.finished_at = utcnow()
        run.status = "ok"
        run.stats = result.as_dict()
    return result


def _quarantine(db: Session, run: PipelineRun, source: SourceConfig, item: Rejected, result: SyncResult) -> None:
    db.add(QuarantinedRow(run_id=run.id, source=source.name, location=item.location, reason=item.reason, raw=item.raw))
    result.quarantined += 1
    result.messages.append(f"quarantined {source.name}:{item.location}: {item.reason}")


def _sync_records(
    db: Session,
    source: SourceConfig,
    run: PipelineRun,
    result: SyncResult,
    items: list[Parsed | Rejected],
    confirm_deletions: bool,
    snapshot: bool,
) -> None:
    """Mirror parsed rows; with ``snapshot``, keys absent from them are deleted upstream."""
    kind = source.kind
    broken_file = False
    incoming: dict[str, Parsed] = {}
    duplicated: set[str] = set()
    for item in items:
        if isinstance(item, Rejected):
            broken_file |= item.whole_file
            _quarantine(db, run, source, item, result)
            continue
        result.read += 1
        if item.key in incoming and snapshot:
            duplicated.add(item.key)
        incoming[item.key] = item
    for key in sorted(duplicated):
        # Which duplicate is right cannot be known: keep the current version.
        _quarantine(db, run, source, Rejected(incoming.pop(key).location, f"key {key!r} appears more than once in this snapshot; keep one row per key"), result)

    current = {
        r.key: r
        for r in db.scalars(
            select(SourceRecord).where(SourceRecord.source == source.name, SourceRecord.kind == kind, SourceRecord.is_current.is_(True))
        )
    }
    changed_keys: list[tuple[str, int]] = []

    def add_version(key: str, payload: dict[str, Any], deleted: bool, old: SourceRecord | None) -> None:
        if old is not None:
            old.is_current = False
        rec = SourceRecord(
            source=source.name,
            kind=kind,
            key=key,
            version=(old.version + 1) if old else 1,
            payload=payload,
            content_hash=content_hash(payload) if not deleted else "deleted",
            deleted=deleted,
            is_current=True,
            run_id=run.id,
        )
        db.add(rec)
        if old is not None:
            changed_keys.append((key, rec.version))

    for key, item in incoming.items():
        old = current.get(key)
        if item.op == "delete":
            if old is not None and not old.deleted:
                add_version(key, {}, True, old)
                result.deleted += 1
            continue
        digest = content_hash(item.payload)
        if old is None:
            add_version(key, item.payload, False, None)
            result.new += 1
        elif old.deleted:
            add_version(key, item.payload, False, old)
            result.relisted += 1
        elif old.content_hash != digest:
            add_version(key, item.payload, False, old)
            result.changed += 1
        else:
            result.unchanged += 1

    if snapshot and not broken_file:
        live = [r for r in current.values() if not r.deleted]
        gone = [r for r in live if r.key not in incoming and r.key not in duplicated]
        if gone and live and len(gone) / len(live) > source.max_delete_share and not confirm_deletions:
            result.held_back = len(gone)
            result.messages.append(
                f"held back: this snapshot of {source.name!r} would delete {len(gone)} of {len(live)} records "
                f"({len(gone) / len(live):.0%} > max_delete_share {source.max_delete_share:.0%}); if the deletions "
                f"are real, run `kbops sync --source {source.name} --confirm-deletions`"
            )
        else:
            for old in gone:
                add_version(old.key, {}, True, old)
                result.deleted += 1
    elif broken_file and snapshot:
        result.messages.append(f"{source.name}: a file was unusable, so no deletions were inferred from this snapshot")

    db.flush()
    result.withdrawn = _withdraw_dependents(db, source, kind, changed_keys)


def _sync_sql(
    db: Session,
    source: SourceConfig,
    run: PipelineRun,
    result: SyncResult,
    confirm_deletions: bool,
    env: Mapping[str, str],
    now: datetime,
) -> None:
    """Incremental pull since the last watermark, or a full (snapshot) pass when due."""
    from kbops.sources.sql import load_watermark, read_sql

    last = db.scalar(
        select(PipelineRun)
        .where(PipelineRun.step == "sync", PipelineRun.source == source.name, PipelineRun.status == "ok")
        .order_by(PipelineRun.id.desc())
        .limit(1)
    )
    previous = load_watermark(last.stats.get("watermark")) if last else None
    last_full = last.stats.get("last_full_at") if last else None
    due = last_full is None or (now - datetime.fromisoformat(last_full)).total_seconds() >= source.reconcile_every
    pull = read_sql(source, env, previous, full=due)
    result.full, result.watermark = pull.full, pull.watermark
    result.last_full_at = now.isoformat() if pull.full else last_full
    _sync_records(db, source, run, result, pull.items, confirm_deletions, snapshot=pull.full)


def _withdraw_dependents(db: Session, source: SourceConfig, kind: str, changed: list[tuple[str, int]]) -> int:
    """Withdraw active entries resting on an older version of a changed record."""
    withdrawn = 0
    for key, new_version in changed:
        rows = db.execute(
            select(KbEntry, EntryDependency.version)
            .join(EntryDependency, EntryDependency.entry_id == KbEntry.id)
            .where(
                EntryDependency.source == source.name,
                EntryDependency.kind == kind,
                EntryDependency.key == key,
                EntryDependency.version < new_version,
                KbEntry.status == "active",
            )
        ).all()
        for entry, old_version in rows:
            reason = f"{source.name}/{kind}/{key} changed (v{old_version} → v{new_version})"
            before = {"status": entry.status, "revision": entry.revision}
            entry.status = "withdrawn"
            entry.status_reason = reason
            entry.updated_at = utcnow()
            record_audit(db, actor="kbops", door="pipeline", action="withdraw", entry_id=entry.id, before=before, after={"status": "withdrawn"}, note=reason)
            withdrawn += 1
    return withdrawn


def _sync_chats(db: Session, source: SourceConfig, run: PipelineRun, result: SyncResult) -> None:
    """Store new sessions only; a re-delivered session id is skipped."""
    known = set(db.scalars(select(ChatSession.session_key).where(ChatSession.source == source.name)))
    for item in read_chats(source):
        if isinstance(item, Rejected):
            _quarantine(db, run, source, item, result)
            continue
        result.read += 1
        if item.key in known:
            result.unchanged += 1
            continue
        known.add(item.key)
        _store_session(db, source, run, item)
        result.new += 1
        result.messages.extend(f"session {item.key}: {note}" for note in item.notes)


def _store_session(db: Session, source: SourceConfig, run: PipelineRun, item: ChatData) -> None:
    db.add(
        ChatSession(
            source=source.name,
            session_key=item.key,
            lang=item.lang,
            sku=item.sku,
            started_at=item.started_at,
            turns=item.turns,
            run_id=run.id,
        )
    )


def mark_extracted(db: Session, record_ids: list[int]) -> None:
    if record_ids:
        db.execute(update(SourceRecord).where(SourceRecord.id.in_(record_ids)).values(extracted=True))
