"""Sync: mirror each source into the KB database and detect what changed.

Every upstream record is kept with a content hash and a version. A changed
hash adds a version; a record missing from a full snapshot (or deleted in a
feed) gets a tombstone version; a deleted record that comes back is
"relisted". Re-reading the same snapshot changes nothing.

When a fact changes or disappears, every active KB entry that rests on an
older version of it is withdrawn at once (:mod:`kbops.kb.entries`), so the
next release stops serving it even before anyone approves a replacement (the
bot hands off instead of quoting a stale price).

Bad input never deletes: a refused row that names its key keeps that key's
current version (like a duplicated key); a file that cannot be used (cut off,
rewritten while read, a column missing) infers no deletions; and a snapshot
deleting ``max_delete_share`` of a source's records or more is held back until
confirmed. Files are read once as stable snapshots and the run ledger keeps the
hash of exactly those bytes (:mod:`kbops.sources.snapshot`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.errors import ConfigError, KbopsError
from kbops.kb.entries import flag_stale_mentions, withdraw_dependents
from kbops.kb.runs import step_run
from kbops.schema import ChatSession, PipelineRun, QuarantinedRow, SourceRecord, utcnow
from kbops.sources.chats import Session as ChatData
from kbops.sources.chats import read_chats
from kbops.sources.config import SourceConfig, load_sources, with_settings
from kbops.sources.files import Parsed, Rejected, Unchanged, read_documents, read_records, snapshot_files
from kbops.sources.snapshot import FileSnapshot
from kbops.sources.sql import load_watermark, read_sql
from kbops.text import content_hash


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
    flagged: int = 0
    skipped: bool = False
    full: bool = True
    watermark: dict[str, Any] | None = None
    last_full_at: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    config: str = ""  # the source's settings as read (a changed bound or mapping re-reads unchanged files)
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | failed (the source could not be synced; ``error`` says why)
    error: str | None = None
    #: The exception a failed sync raised (not serialised): a door may re-raise it.
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(replace(self, exception=None))
        del out["exception"]
        return out


def configured_sources(settings: Settings, only: str | None = None) -> list[SourceConfig]:
    """Every configured source, or just the one named ``only`` (ConfigError naming the others)."""
    sources = [with_settings(s, settings) for s in load_sources(settings.require_sources())]
    if only is None:
        return sources
    chosen = [s for s in sources if s.name == only]
    if not chosen:
        names = ", ".join(s.name for s in sources)
        raise ConfigError(f"no source named {only!r}; configured sources: {names}", source=only)
    return chosen


def sync_source(
    db: Session,
    source: SourceConfig,
    confirm_deletions: bool = False,
    *,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> SyncResult:
    """Sync one source; one run-ledger row. ``env`` (default os.environ) supplies SQL URLs; ``now`` the clock."""
    result = SyncResult(source=source.name)
    with step_run(db, "sync", result, source=source.name) as run:
        if source.type == "sql":
            _sync_sql(db, source, run, result, confirm_deletions, os.environ if env is None else env, now or utcnow())
            return result
        snapshots = snapshot_files(source, keep_data=source.type != "chats")  # the chat reader reads its files itself
        if _skip_unchanged_files(db, source, result, snapshots, confirm_deletions):
            pass
        elif source.type == "chats":
            _sync_chats(db, source, run, result)
            # The chat reader reads the files itself: keep only hashes that still hold after it read.
            after = {snap.name: snap.sha256 for snap in snapshot_files(source, keep_data=False)}
            result.files = {name: digest for name, digest in result.files.items() if after.get(name) == digest}
        else:
            reader = (lambda known: read_documents(source, snapshots)) if source.type == "documents" else (lambda known: read_records(source, known, snapshots))
            snapshot = source.type == "documents" or source.mode == "snapshot"
            _sync_records(db, source, run, result, reader, confirm_deletions, snapshot)
    return result


def record_failure(db: Session, source_name: str, exc: BaseException) -> SyncResult:
    """A sync of ``source_name`` that failed, as a ``failed`` run-ledger row (the caller's own transaction).

    The failed sync's own writes were rolled back; this row is what ``kbops sources
    status`` and ``kbops sync`` show, and what tells the next run nothing was read.
    """
    error = str(exc) if isinstance(exc, KbopsError) else f"{type(exc).__name__}: {exc}"
    result = SyncResult(source=source_name, status="failed", error=error, exception=exc)
    run = PipelineRun(step="sync", source=source_name, status="failed", error=error, finished_at=utcnow())
    db.add(run)
    db.flush()
    result.run_id = run.id
    run.stats = result.as_dict()
    return result


def _skip_unchanged_files(db: Session, source: SourceConfig, result: SyncResult, snapshots: list[FileSnapshot], confirm_deletions: bool) -> bool:
    """True when every file is byte-identical to the last successful sync's (nothing to read).

    The hashes are those of the bytes this run reads (``snapshots``), and go
    into the run ledger either way; a file that could not be read stably has
    none, so the next run reads it again. A run that held back deletions is
    never skipped, so its warning repeats until confirmed.
    """
    result.files = {snap.name: snap.sha256 for snap in snapshots if snap.sha256}
    result.config = content_hash(repr(source))
    last = _last_ok_run(db, source.name)
    if any(snap.sha256 is None for snap in snapshots):
        return False
    if confirm_deletions or last is None or last.stats.get("held_back") or last.stats.get("files") != result.files or last.stats.get("config") != result.config:
        return False
    if source.type == "chats":
        counted = select(func.count()).select_from(ChatSession).where(ChatSession.source == source.name)
    else:
        counted = select(func.count()).select_from(SourceRecord).where(
            SourceRecord.source == source.name, SourceRecord.is_current.is_(True), SourceRecord.deleted.is_(False)
        )
    result.unchanged = db.scalar(counted) or 0
    result.skipped = True
    return True


def _last_ok_run(db: Session, source_name: str) -> PipelineRun | None:
    return db.scalar(
        select(PipelineRun)
        .where(PipelineRun.step == "sync", PipelineRun.source == source_name, PipelineRun.status == "ok")
        .order_by(PipelineRun.id.desc())
        .limit(1)
    )


def _quarantine(db: Session, run: PipelineRun, source: SourceConfig, item: Rejected, result: SyncResult, existing: Mapping[str, bool] | None = None) -> None:
    """Keep the refused row with its reason; ``existing`` (key → deleted) says whether its key has a live version to keep."""
    reason = item.reason
    if item.key is not None and existing is not None and existing.get(item.key) is False:
        reason += f"; the current version of {item.key!r} is kept"
    db.add(QuarantinedRow(run_id=run.id, source=source.name, location=item.location, reason=reason, raw=item.raw))
    result.quarantined += 1
    result.messages.append(f"quarantined {source.name}:{item.location}: {reason}")


_CHUNK = 500


def _sync_records(
    db: Session,
    source: SourceConfig,
    run: PipelineRun,
    result: SyncResult,
    read: Callable[[dict[str, str]], Iterable[Parsed | Unchanged | Rejected]],
    confirm_deletions: bool,
    snapshot: bool,
) -> None:
    """Mirror rows; with ``snapshot``, keys absent from them are deleted upstream.

    ``read`` gets each live key's raw-row hash so a reader can report an
    identical row as :class:`Unchanged` without parsing it; only new and
    changed rows are validated, hashed and written. Writes are bulk Core
    statements: at 100,000 records per source the ORM's per-object work
    would dominate the run.
    """
    kind = source.kind
    scope = (SourceRecord.source == source.name, SourceRecord.kind == kind, SourceRecord.is_current.is_(True))
    # Index-only scan (ix_source_records_scan): every current key with its raw hash.
    status: dict[str, bool] = {}  # key → deleted
    known: dict[str, str] = {}
    for key, raw_hash, deleted in db.connection().execute(select(SourceRecord.key, SourceRecord.raw_hash, SourceRecord.deleted).where(*scope)):
        status[key] = deleted
        if raw_hash and not deleted:
            known[key] = raw_hash
    broken_file = False
    incoming: dict[str, Parsed | Unchanged] = {}
    duplicated: set[str] = set()
    refused: set[str] = set()  # keys named by a refused row: never taken for deleted
    for item in read(known):
        if isinstance(item, Rejected):
            broken_file |= item.whole_file and item.key is None
            if item.key is not None:
                refused.add(item.key)
            _quarantine(db, run, source, item, result, status)
            continue
        result.read += 1
        if item.key in incoming and snapshot:
            duplicated.add(item.key)
        incoming[item.key] = item
    for key in sorted(duplicated):
        # Which duplicate is right cannot be known: keep the current version.
        _quarantine(db, run, source, Rejected(incoming.pop(key).location, f"key {key!r} appears more than once in this snapshot; keep one row per key"), result)
    if snapshot:
        for key in sorted(refused & incoming.keys()):
            # A refused row is a row too: next to a good one, which is right cannot be known either.
            _quarantine(db, run, source, Rejected(incoming.pop(key).location, f"key {key!r} appears more than once in this snapshot (another row for it was refused); keep one row per key"), result)
        duplicated |= refused

    live = [key for key, deleted in status.items() if not deleted]
    gone = [key for key in live if key not in incoming and key not in duplicated] if snapshot and not broken_file else []
    # Full details only for the keys that may get a new version.
    wanted = [key for key, item in incoming.items() if not isinstance(item, Unchanged) and key in status] + gone
    current: dict[str, Any] = {}
    for start in range(0, len(wanted), _CHUNK):
        for row in db.connection().execute(
            select(SourceRecord.key, SourceRecord.id, SourceRecord.version, SourceRecord.content_hash, SourceRecord.raw_hash, SourceRecord.deleted).where(
                *scope, SourceRecord.key.in_(wanted[start : start + _CHUNK])
            )
        ):
            current[row.key] = row

    rows: list[dict[str, Any]] = []
    superseded: list[int] = []
    changed_keys: list[tuple[str, int]] = []
    price_changes: list[tuple[str, int, int, dict[str, Any]]] = []  # key, old row id, new version, new payload

    def add_version(key: str, payload: dict[str, Any], raw_hash: str | None, digest: str, old: Any) -> None:
        version = old.version + 1 if old else 1
        if kind == "price" and old is not None and not old.deleted and digest != "deleted":
            price_changes.append((key, old.id, version, payload))
        rows.append(
            dict(source=source.name, kind=kind, key=key, version=version, payload=payload, content_hash=digest,
                 raw_hash=raw_hash, deleted=digest == "deleted", is_current=True, extracted=False, run_id=run.id,
                 first_seen=run.started_at, last_seen=run.started_at)
        )
        if old is not None:
            superseded.append(old.id)
            changed_keys.append((key, version))

    for key, item in incoming.items():
        old = current.get(key)
        if isinstance(item, Unchanged):
            result.unchanged += 1
            continue
        if item.op == "delete":
            if old is not None and not old.deleted:
                add_version(key, {}, None, "deleted", old)
                result.deleted += 1
            continue
        digest = content_hash(item.payload)
        if old is None:
            add_version(key, item.payload, item.raw_hash, digest, None)
            result.new += 1
        elif old.deleted:
            add_version(key, item.payload, item.raw_hash, digest, old)
            result.relisted += 1
        elif old.content_hash != digest:
            add_version(key, item.payload, item.raw_hash, digest, old)
            result.changed += 1
        else:
            result.unchanged += 1
            if item.raw_hash and item.raw_hash != old.raw_hash:
                # Same facts written differently ("¥299" vs "299.00"): remember the new spelling.
                db.execute(update(SourceRecord).where(SourceRecord.id == old.id).values(raw_hash=item.raw_hash).execution_options(synchronize_session=False))

    if snapshot and not broken_file:
        if gone and len(gone) / len(live) >= source.max_delete_share and not confirm_deletions:
            result.held_back = len(gone)
            result.messages.append(
                f"held back: this snapshot of {source.name!r} would delete {len(gone)} of {len(live)} records "
                f"({len(gone) / len(live):.0%} ≥ max_delete_share {source.max_delete_share:.0%}); if the deletions "
                f"are real, run `kbops sync --source {source.name} --confirm-deletions`"
            )
        else:
            for key in gone:
                add_version(key, {}, None, "deleted", current[key])
                result.deleted += 1
    elif broken_file and snapshot:
        result.messages.append(f"{source.name}: a file was unusable, so no deletions were inferred from this snapshot")

    # Retire old versions before inserting new current ones (one current row per key).
    for start in range(0, len(superseded), _CHUNK):
        chunk = superseded[start : start + _CHUNK]
        db.execute(update(SourceRecord).where(SourceRecord.id.in_(chunk)).values(is_current=False).execution_options(synchronize_session=False))
    for start in range(0, len(rows), _CHUNK):
        db.execute(insert(SourceRecord), rows[start : start + _CHUNK])
    # Stale mentions first: an answer quoting the old price goes to review with
    # the old → new values, rather than being silently withdrawn as a dependent.
    result.flagged = flag_stale_mentions(db, source.name, run.id, price_changes)
    result.withdrawn = withdraw_dependents(db, source.name, kind, changed_keys)


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
    last = _last_ok_run(db, source.name)
    previous = load_watermark(last.stats.get("watermark")) if last else None
    last_full = last.stats.get("last_full_at") if last else None
    due = last_full is None or (now - datetime.fromisoformat(last_full)).total_seconds() >= source.reconcile_every
    pull = read_sql(source, env, previous, full=due)
    result.full, result.watermark = pull.full, pull.watermark
    result.last_full_at = now.isoformat() if pull.full else last_full
    _sync_records(db, source, run, result, lambda known: pull.items, confirm_deletions, snapshot=pull.full)


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
