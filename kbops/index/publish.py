"""Publish: build a release from the servable KB entries, then activate it.

Servable = active entries whose validity window has not ended. A build
starts from the active release when it was made with the same model: only
entries whose revision or window changed are read from the database, and
only those whose question texts changed are re-embedded (IndexIDMap2
remove/add by entry id); ``kbops publish --full`` rebuilds from scratch. Entries whose
window has not started yet are included and filtered at query time, so a
promotion starts (and ends) on time without another publish; the manifest
records ``next_change_at``, the next boundary, and the next publish after it
drops what expired (kb_publish runs every 15 minutes). When the
servable set is identical to the active release's (same KB digest), publish
builds nothing: re-running it is a no-op.

One publish at a time: :func:`publish_lock` is held by the pipeline door around a
whole publish (apply, build, activate) and around each build or activation run on
its own (the DAG's tasks). It lives where every worker can see it: a PostgreSQL
session-level advisory lock on a KB in PostgreSQL (workers on several hosts), and
an exclusive ``flock`` on a file next to a SQLite KB (SQLite in WAL mode is only
ever shared by processes on one host). Both are released by the database or the
kernel when the holder's process or connection dies, so a crashed publish never
leaves a stale lock. A second publish waits for the first (up to
:data:`PUBLISH_LOCK_WAIT` seconds, then :class:`~kbops.errors.TransientError`
"another publish is running"), then does what is left: usually nothing to build.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import or_, select, text, update
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.db import engine_for
from kbops.errors import ReleaseError, ReleaseRefused, TransientError
from kbops.index import golden
from kbops.index import release as rel
from kbops.index import store as release_store
from kbops.index.calibration import calibrate
from kbops.index.embedder import Embedder
from kbops.index.lexical import LexicalIndex
from kbops.kb.audit import record_audit
from kbops.kb.runs import record_run
from kbops.schema import IndexRelease, KbEntry, utcnow
from kbops.text import content_hash

UNK_WARNING = 0.3
#: How long a publish waits for a running one before giving up (seconds).
PUBLISH_LOCK_WAIT = 1800.0
#: The PostgreSQL advisory lock key of "a publish is running" (any fixed bigint; "kbopspub").
PUBLISH_LOCK_KEY = 0x6B626F7073707562
_POLL = 0.25
_held = threading.local()  # database URL -> nesting depth, per thread: the lock is re-entrant
_memory_locks: dict[str, threading.Lock] = {}  # a SQLite KB with no file (":memory:") is one process's
log = logging.getLogger("kbops.publish")


@contextmanager
def publish_lock(settings: Settings) -> Iterator[None]:
    """Hold the KB's publish lock: wait for a running publish, then run alone (re-entrant in one thread).

    Raises :class:`TransientError` when another publish still holds it after
    :data:`PUBLISH_LOCK_WAIT` seconds.
    """
    url = settings.database_url
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    if depth.get(url):
        depth[url] += 1
        try:
            yield
        finally:
            depth[url] -= 1
        return
    acquire = _postgres_lock if url.startswith("postgresql") else _sqlite_lock
    with acquire(settings, PUBLISH_LOCK_WAIT):
        depth[url] = 1
        try:
            yield
        finally:
            depth[url] = 0


def _busy(waited: float) -> TransientError:
    return TransientError(
        f"another publish is running (waited {waited:.0f} s for the publish lock); run `kbops publish` again when it has finished. "
        "The lock is released when that publish's process or database session ends",
        waited=waited,
    )


def _wait_for(try_once: Any, wait: float) -> None:
    """Call ``try_once()`` until it returns True, polling; TransientError after ``wait`` seconds."""
    started = time.monotonic()
    logged = False
    while not try_once():
        waited = time.monotonic() - started
        if waited >= wait:
            raise _busy(waited)
        if not logged:
            log.info("another publish is running; waiting for it (up to %.0f s)", wait)
            logged = True
        time.sleep(min(_POLL, max(0.0, wait - waited)))


@contextmanager
def _postgres_lock(settings: Settings, wait: float) -> Iterator[None]:
    """A session-level advisory lock on a connection of its own, held for the whole publish."""
    conn = engine_for(settings).connect()
    try:
        def try_once() -> bool:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": PUBLISH_LOCK_KEY}).scalar())
            conn.commit()  # never sit idle in a transaction while waiting or holding
            return got

        _wait_for(try_once, wait)
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PUBLISH_LOCK_KEY})
                conn.commit()
            except Exception:  # noqa: BLE001 - a broken connection: its server session (and the lock) is gone
                conn.invalidate()
    finally:
        conn.close()


@contextmanager
def _sqlite_lock(settings: Settings, wait: float) -> Iterator[None]:
    """An exclusive flock on ``<database file>.publish-lock`` (one per open file: threads exclude each other too)."""
    database = engine_for(settings).url.database
    if not database or database == ":memory:":
        lock = _memory_locks.setdefault(settings.database_url, threading.Lock())
        _wait_for(lambda: lock.acquire(blocking=False), wait)
        try:
            yield
        finally:
            lock.release()
        return
    fd = os.open(f"{database}.publish-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        _wait_for(try_once, wait)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@dataclass
class BuildResult:
    release_id: str | None = None
    status: str = "unchanged"  # unchanged | built
    entries: int = 0
    vectors: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    mode: str = ""  # full | incremental | incremental+reindex (index type changed with size)
    index_type: str = ""
    added: int = 0
    removed: int = 0
    re_embedded: int = 0
    unreadable_share: float = 0.0
    next_change_at: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _entry_dict(e: KbEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "entry_key": e.entry_key,
        "revision": e.revision,
        "kind": e.kind,
        "origin": e.origin,
        "lang": e.lang,
        "question": e.question,
        "alt_questions": list(e.alt_questions),
        "answer": e.answer,
        "tags": list(e.tags),
        "valid_from": _iso(e.valid_from),
        "valid_to": _iso(e.valid_to),
    }


def _servable(now: datetime) -> Any:
    return (KbEntry.status == "active", or_(KbEntry.valid_to.is_(None), KbEntry.valid_to > now))


def _servable_versions(db: Session, now: datetime) -> list[tuple[int, int, str | None, str | None]]:
    """(id, revision, valid_from, valid_to) of servable entries: enough for the digest and the diff."""
    rows = db.execute(
        select(KbEntry.id, KbEntry.revision, KbEntry.valid_from, KbEntry.valid_to).where(*_servable(now)).order_by(KbEntry.id)
    ).all()
    return [(i, r, _iso(f), _iso(t)) for i, r, f, t in rows]


def _load_entries(db: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        for e in db.scalars(select(KbEntry).where(KbEntry.id.in_(ids[start : start + 500]))):
            out[e.id] = _entry_dict(e)
    return out


def next_boundary(entries: list[dict[str, Any]], now: datetime) -> str | None:
    """The earliest future validity boundary (a window opening or closing) among ``entries``."""
    times = [
        t
        for e in entries
        for raw in (e["valid_from"], e["valid_to"])
        if raw and (t := datetime.fromisoformat(raw)) > now
    ]
    return min(times).isoformat() if times else None


def _incremental_base(settings: Settings, active: str, model_id: str) -> tuple[dict[str, Any], Any, list[dict[str, Any]]] | None:
    """The active release to build on, or None when a full build is needed (other model, unreadable)."""
    try:
        manifest, index, previous = rel.read_index_and_entries(settings.index_dir, active)
    except ReleaseError:
        return None
    return (manifest, index, previous) if manifest["model"] == model_id else None


def _full_build(db: Session, settings: Settings, versions: list[tuple[int, int, str | None, str | None]], embedder: Embedder) -> tuple[list[dict[str, Any]], Any, list[str]]:
    by_id = _load_entries(db, [v[0] for v in versions])
    entries = [by_id[v[0]] for v in versions if v[0] in by_id]
    texts = [t for e in entries for t in rel.entry_questions(e)]
    ids = [e["id"] for e in entries for _ in rel.entry_questions(e)]
    vectors = embedder.encode(texts) if texts else np.zeros((0, embedder.dim), dtype=np.float32)
    index = rel.build_index(embedder.dim, vectors, np.array(ids, dtype=np.int64), ivf_threshold=settings.ivf_threshold, nprobe=settings.ivf_nprobe)
    return entries, index, texts


def _apply_changes(
    db: Session,
    versions: list[tuple[int, int, str | None, str | None]],
    index: Any,
    previous: list[dict[str, Any]],
    embedder: Embedder,
    result: BuildResult,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Turn the previous release into the current one: only changed entries are read and re-embedded.

    An entry whose questions did not change keeps its vectors even when its
    answer did (a price change re-embeds nothing).
    """
    before = {e["id"]: e for e in previous}
    wanted = {v[0] for v in versions}
    changed = [i for i, rev, start, end in versions if i not in before or (before[i]["revision"], before[i]["valid_from"], before[i]["valid_to"]) != (rev, start, end)]
    fresh = _load_entries(db, changed)
    removed = [i for i in before if i not in wanted]
    re_embed = [i for i in changed if i in fresh and (i not in before or rel.entry_questions(before[i]) != rel.entry_questions(fresh[i]))]
    stale = [i for i in removed + re_embed if i in before]
    if stale:
        index.remove_ids(np.array(stale, dtype=np.int64))
    texts = [t for i in re_embed for t in rel.entry_questions(fresh[i])]
    if texts:
        ids = np.array([i for i in re_embed for _ in rel.entry_questions(fresh[i])], dtype=np.int64)
        index.add_with_ids(np.ascontiguousarray(embedder.encode(texts), dtype=np.float32), ids)
    result.added = sum(1 for i in changed if i not in before)
    result.removed, result.re_embedded = len(removed), len(re_embed)
    # An entry that changed but vanished between the two reads is left out, never served stale.
    changed_set = set(changed)
    gone = [i for i in changed_set if i in before and i not in fresh]
    if gone:
        index.remove_ids(np.array(gone, dtype=np.int64))
    entries = [fresh[i] if i in fresh else before[i] for i, *_ in versions if i in fresh or (i in before and i not in changed_set)]
    return entries, texts


def _unreadable_share(embedder: Embedder, texts: list[str], previous: tuple[float, int] | None) -> float:
    """Share of [UNK] word pieces in the KB's questions, from a sample of the texts embedded now.

    An incremental build weights the new sample with the previous release's
    share by vector counts, so a publish that embeds nothing loads no model.
    """
    if not texts:
        return round(previous[0], 3) if previous else 0.0
    sample = texts[:: max(1, len(texts) // 500)]
    share = float(np.mean([embedder.unk_share(t) for t in sample]))
    if previous and previous[1] > 0:
        share = (previous[0] * previous[1] + share * len(texts)) / (previous[1] + len(texts))
    return round(share, 3)


def build_release(db: Session, settings: Settings, embedder: Embedder, full: bool = False, now: datetime | None = None) -> BuildResult:
    """Build (but do not activate) a release for the current servable KB.

    Returns status 'unchanged' with no release when the active release already
    serves exactly this KB, unless ``full`` forces a rebuild.
    """
    started = time.perf_counter()
    # The embedder is shared by the process: count only this build's cache traffic.
    hits_before, misses_before = embedder.stats.hits, embedder.stats.misses
    result = BuildResult()
    now = now or utcnow()
    versions = _servable_versions(db, now)
    digest = content_hash(versions)
    inputs = calibration_inputs(db, settings)
    active = rel.active_release_id(settings.index_dir)
    if active and not full:
        try:
            manifest = rel.read_manifest(settings.index_dir, active)
            # Same KB *and* same embedder: after a model or backend change the
            # server would refuse the active release, so this is not a no-op.
            # Same calibration inputs too: new golden questions are calibrated on at the next publish.
            if manifest["kb_digest"] == digest and manifest["model"] == embedder.model_id and _same_inputs(manifest, inputs):
                result.release_id, result.entries = active, len(versions)
                result.seconds = round(time.perf_counter() - started, 3)
                return result
        except ReleaseError:
            pass  # an unreadable active release means: build a new one
    reused = None if full else _unactivated_build(settings, digest, embedder.model_id, active, inputs)
    if reused is not None:
        # The last build serves exactly this KB but was never activated (refused by a check, or its
        # activation failed): activating it again is the retry; building the same release again is waste.
        result.release_id, result.status, result.mode = reused["release_id"], "built", "reused"
        result.entries, result.vectors, result.index_type = reused["entry_count"], reused["vector_count"], reused.get("index_type", "")
        result.next_change_at = reused.get("next_change_at")
        result.seconds = round(time.perf_counter() - started, 3)
        return result
    base = None if full or not active else _incremental_base(settings, active, embedder.model_id)
    if base is None:
        entries, index, embedded = _full_build(db, settings, versions, embedder)
        result.mode, share, trained_on = "full", None, int(index.ntotal)
    else:
        manifest, index, previous = base
        entries, embedded = _apply_changes(db, versions, index, previous, embedder, result)
        result.mode, share = "incremental", (manifest.get("unreadable_share", 0.0), index.ntotal - len(embedded))
        trained_on = manifest.get("index", {}).get("trained_on")
        index, rebuilt = rel.fit_index(index, ivf_threshold=settings.ivf_threshold, nprobe=settings.ivf_nprobe, trained_on=trained_on)
        if rebuilt:
            result.mode, trained_on = "incremental+reindex", int(index.ntotal)
    result.next_change_at = next_boundary(entries, now)
    result.unreadable_share = _unreadable_share(embedder, embedded, share)
    if result.unreadable_share > UNK_WARNING:
        result.warnings.append(
            f"the embedding model cannot read {result.unreadable_share:.0%} of the KB's question text "
            "([UNK] tokens, e.g. Chinese with an English-only model); retrieval relies on the lexical channel "
            "for those entries — consider a multilingual model in KBOPS_EMBEDDING_MODEL"
        )
    calibration = {**_calibration(db, settings, entries, index, embedder, now), "inputs": inputs}
    result.warnings.extend(
        f"confidence in {lang!r} uses the public default: {data['note']}" if data["source"] == "default" else f"confidence in {lang!r}: {data['note']}"
        for lang, data in calibration["languages"].items()
        if data.get("note") and any(e["lang"] == lang for e in entries)
    )
    result.release_id = rel.write_release(
        settings.index_dir,
        entries=entries,
        index=index,
        model_id=embedder.model_id,
        kb_digest=digest,
        extra={
            "build": result.mode,
            "unreadable_share": result.unreadable_share,
            "next_change_at": result.next_change_at,
            "changes": {"added": result.added, "removed": result.removed, "re_embedded": result.re_embedded},
            "index": {**rel.index_info(index), "trained_on": trained_on, "ivf_threshold": settings.ivf_threshold},
            "calibration": calibration,
        },
    )
    release_store.publish_to_store(settings, result.release_id)  # store I/O: the built release, files then manifest
    result.entries, result.vectors = len(entries), int(index.ntotal)
    result.index_type = rel.index_info(index)["description"]
    result.status = "built"
    result.cache_hits, result.cache_misses = embedder.stats.hits - hits_before, embedder.stats.misses - misses_before
    result.seconds = round(time.perf_counter() - started, 3)
    db.add(
        IndexRelease(
            id=result.release_id,
            status="built",
            kb_digest=digest,
            entry_count=result.entries,
            vector_count=result.vectors,
            model=embedder.model_id,
            path=str(rel.releases_dir(settings.index_dir) / result.release_id),
            stats=result.as_dict(),
        )
    )
    record_run(db, "build_release", result.as_dict())
    return result


def _calibration(db: Session, settings: Settings, entries: list[dict[str, Any]], index: Any, embedder: Embedder, now: datetime) -> dict[str, Any]:
    """Calibrate the release being built on the store's own questions (kbops/index/calibration.py).

    Scores the release exactly as the bot will serve it: the same entries, the
    same FAISS index and a lexical index built as the server builds it.
    """
    lexical = LexicalIndex([(e["id"], t) for e in entries for t in rel.entry_questions(e)], settings.lexical_scorer)
    loaded = rel.LoadedRelease("building", {}, index, {e["id"]: e for e in entries}, lexical, frozenset(e["kind"] for e in entries))
    return calibrate(loaded, embedder, settings, golden.golden_pairs(db), now=now)


def calibration_inputs(db: Session, settings: Settings) -> str:
    """A digest of what a release's calibration is fitted on besides the KB: the golden set (customers' questions a
    store labelled: ``kbops golden add``, ``kbops review label-gap``) and the settings that choose the questions."""
    return content_hash([golden.golden_digest(db), settings.calibrate_from, settings.calibration_questions])


def _same_inputs(manifest: dict[str, Any], inputs: str) -> bool:
    """Whether ``manifest``'s calibration was fitted on ``inputs``; a release built before they were recorded
    counts as fitted on them (no rebuild at upgrade: the next change or ``publish --full`` brings them in)."""
    return (manifest.get("calibration") or {}).get("inputs", inputs) == inputs


def _unactivated_build(settings: Settings, digest: str, model_id: str, active: str | None, inputs: str) -> dict[str, Any] | None:
    """The newest release's manifest when it was built for this very KB, model and calibration inputs and is not the
    active one."""
    ids = rel.list_release_ids(settings.index_dir)
    if not ids or ids[-1] == active:
        return None
    try:
        manifest = rel.read_manifest(settings.index_dir, ids[-1])
    except ReleaseError:
        return None
    return manifest if manifest.get("kb_digest") == digest and manifest.get("model") == model_id and _same_inputs(manifest, inputs) else None


def _serving_entries(settings: Settings, serving: str | None) -> list[dict[str, Any]]:
    """The serving release's entries ([] when there is none or it cannot be read: nothing to compare with)."""
    if serving is None:
        return []
    try:
        return rel.read_entries(settings.index_dir, serving)
    except ReleaseError:
        return []


def _shrink_check(settings: Settings, release_id: str, serving: str | None, entries: list[dict[str, Any]], before: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Why ``release_id`` must not replace ``serving`` without ``--force``: it is empty, or it drops more than
    ``max_release_drop_share`` of the serving release's entries. None when it may."""
    kept = {int(e["id"]) for e in entries}
    dropped = sum(1 for e in before if int(e["id"]) not in kept)
    share = dropped / len(before) if before else 0.0
    data: dict[str, Any] = {
        "release_id": release_id, "serving": serving, "entries": len(entries), "serving_entries": len(before),
        "dropped": dropped, "drop_share": round(share, 4), "max_drop_share": settings.max_release_drop_share,
    }
    if not entries and serving is None:
        message = (
            f"release {release_id} is empty: the KB has no servable entries yet. Run kb_ingest (`kbops sync`) and approve "
            "what it queues first; `kbops publish --force --by NAME` activates an empty release anyway"
        )
        return {"reason": "empty", "message": message, **data}
    if not entries:
        message = (
            f"release {release_id} is empty and would replace {serving} ({len(before)} entries); the previous release keeps serving. "
            "Check the sources and the KB; `kbops publish --force --by NAME` activates it anyway"
        )
        return {"reason": "empty", "message": message, **data}
    if share > settings.max_release_drop_share:
        message = (
            f"release {release_id} drops {dropped} of the {len(before)} entries release {serving} serves ({share:.0%} > "
            f"max_release_drop_share {settings.max_release_drop_share:.0%}); the previous release keeps serving. If the drop is real, "
            "run `kbops publish --force --by NAME` (or raise KBOPS_MAX_RELEASE_DROP_SHARE)"
        )
        return {"reason": "shrink", "message": message, **data}
    return None


def _revocation_reasons(db: Session, revoked: dict[int, list[Any] | None], before: list[dict[str, Any]], release_id: str) -> dict[int, str]:
    """Why each revoked entry is no longer served as it was: its KB status and reason, or what changed."""
    old = {int(e["id"]): e for e in before}
    ids = sorted(revoked)
    rows: dict[int, tuple[str, str | None]] = {}
    for start in range(0, len(ids), 500):
        for i, status, reason in db.execute(select(KbEntry.id, KbEntry.status, KbEntry.status_reason).where(KbEntry.id.in_(ids[start : start + 500]))):
            rows[i] = (status, reason)
    out: dict[int, str] = {}
    for i in ids:
        status, reason = rows.get(i, ("deleted", None))
        version = revoked[i]
        if version is not None:
            was = old[i]["revision"]
            out[i] = f"changed: revision {was} → {version[0]}" if version[0] != was else "changed: validity window"
        elif status in ("withdrawn", "retired"):
            out[i] = f"{status}: {reason}" if reason else status
        elif status == "active":
            out[i] = f"not served by release {release_id} (expired, or a rollback to a release without it)"
        else:
            out[i] = status
    return out


def activate_release(
    db: Session,
    settings: Settings,
    release_id: str,
    embedder: Embedder | None = None,
    *,
    force: bool = False,
    by: str = "operator",
    check_golden: bool = True,
    check_size: bool = True,
) -> dict[str, Any]:
    """Make ``release_id`` the served release (atomic pointer swap) and prune old ones.

    Checks, each overridden by ``force`` (audited as ``release_forced`` under ``by``):
    the release is not empty and drops at most ``max_release_drop_share`` of the
    serving release's entries (else :class:`~kbops.errors.ReleaseRefused`; the
    first release of a KB with nothing ingested is refused with a message to
    ingest first); with golden questions in the KB, it answers at least as many
    of them correctly as the active one (kbops/index/golden.py). Rollback skips
    the checks: it is the operator's explicit, instant way back.

    Just before the pointer moves, the revocation overlay is rewritten
    (:func:`kbops.index.release.write_overlay`): the entries this activation
    withdraws, retires or changes relative to the serving release, with reasons,
    so a bot replica still serving an older release stops serving them at its
    next query, before it has loaded this one.
    """
    release_store.prepare_activation(settings, release_id)  # store I/O: this host's index dir catches up with the cluster's store
    previous = rel.active_release_id(settings.index_dir)
    if previous == release_id:
        return {"release_id": release_id, "previous": previous, "changed": False, "pruned": []}
    entries = rel.read_entries(settings.index_dir, release_id, verify=True)
    before = _serving_entries(settings, previous)
    refusal = _shrink_check(settings, release_id, previous, entries, before) if check_size else None
    if refusal and not force:
        raise ReleaseRefused(refusal["message"], **{k: v for k, v in refusal.items() if k != "message"})
    gated = check_golden and golden.has_golden(db)
    # The golden check loads (and so verifies) the release; activate() then need not hash it again.
    outcome = golden.gate(db, settings, release_id, embedder or Embedder.from_settings(settings), force) if gated else None
    revoked = rel.revocations(before, entries)
    reasons = _revocation_reasons(db, revoked, before, release_id) if revoked else {}
    activated_at = utcnow()
    overlay = rel.next_overlay(
        rel.read_overlay(settings.index_dir), previous=previous, release_id=release_id,
        revoked={i: (v, reasons[i]) for i, v in revoked.items()}, activated_at=activated_at.isoformat(), keep=settings.release_retention,
    )
    rel.write_overlay(settings.index_dir, overlay)  # before the pointer: a replica that sees the move finds the overlay
    release_store.publish_to_store(settings, overlay=True)  # store I/O: the overlay before the pointer
    rel.activate(settings.index_dir, release_id, verify=not gated)
    release_store.publish_to_store(settings, pointer=True)  # store I/O: ACTIVE last
    if refusal:
        record_audit(
            db, actor=by, door="cli", action="release_forced",
            after={"release_id": release_id, "previous": previous, "guard": {k: v for k, v in refusal.items() if k != "message"}},
            note=f"activated despite the {refusal['reason']} check: {refusal['message']}",
        )
    if outcome and outcome["forced"]:
        record_audit(
            db, actor=by, door="cli", action="release_forced",
            after={"release_id": release_id, "previous": previous, **outcome},
            note=f"activated despite answering {outcome['correct']}/{outcome['total']} golden questions (active had {outcome['active_correct']})",
        )
    db.execute(update(IndexRelease).where(IndexRelease.status == "active").values(status="inactive"))
    db.execute(update(IndexRelease).where(IndexRelease.id == release_id).values(status="active", activated_at=activated_at))
    pruned = rel.prune(settings.index_dir, settings.release_retention)
    release_store.publish_to_store(settings, pruned=pruned)  # store I/O: the same releases leave the store
    return {"release_id": release_id, "previous": previous, "changed": True, "pruned": pruned, "golden": outcome, "revoked": len(revoked), "forced": bool(refusal)}


def list_releases(settings: Settings) -> list[dict[str, Any]]:
    """Every release, newest first, with the active one marked — as the release store has them.

    With a shared store (``KBOPS_RELEASE_STORE``) that is the cluster's list and
    its ACTIVE, not this host's index directory, which holds only what this
    host built or pulled. A local release is verified file by file; a remote
    one by its manifest only (its files are checked when a host pulls it). A
    broken or half-uploaded release is listed with its error, not hidden."""
    store = release_store.store_for(settings)
    local = store.is_dir(settings.index_dir)
    active = rel.active_release_id(settings.index_dir) if local else store.active_release_id()
    ids = rel.list_release_ids(settings.index_dir) if local else store.release_ids()

    def manifest(rid: str) -> dict[str, Any]:
        return rel.read_manifest(settings.index_dir, rid, verify=True) if local else store.read_manifest(rid)
    out = []
    for rid in reversed(ids):
        try:
            m = manifest(rid)
            out.append({
                "release_id": rid, "active": rid == active, "created_at": m["created_at"], "entries": m["entry_count"],
                "vectors": m["vector_count"], "model": m["model"], "index_type": m.get("index_type", "IDMap2,FlatIP"),
            })
        except ReleaseError as exc:  # show broken releases instead of hiding them
            out.append({"release_id": rid, "active": rid == active, "error": str(exc)})
    return out


def rollback(db: Session, settings: Settings, release_id: str | None = None) -> dict[str, Any]:
    """Re-activate ``release_id``, or the release before the active one — the release store's, which with a shared
    store is the cluster's; :func:`activate_release` pulls the release to this host when it was built elsewhere."""
    store = release_store.store_for(settings)
    if store.is_dir(settings.index_dir):
        ids, active = rel.list_release_ids(settings.index_dir), rel.active_release_id(settings.index_dir)
    else:
        ids, active = store.release_ids(), store.active_release_id()
    if release_id is None:
        older = [r for r in ids if active is None or r < active]
        if not older:
            raise ReleaseError("there is no earlier release to roll back to; see `kbops releases`")
        release_id = older[-1]
    return activate_release(db, settings, release_id, check_golden=False, check_size=False)
