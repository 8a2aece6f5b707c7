"""The pipeline's door: every step as a settings-level call that owns its transactions.

This is what the DAGs (through :mod:`kbops.airflow_adapter`), the CLI, the
review page and the tests call. Each function opens the session(s), builds the
collaborators (one :meth:`Embedder.from_settings` per process) and calls the
stage functions, which take ``db`` and never open a session themselves:

``kb_ingest``:  sync_sources → extract_candidates → validate_candidates → route_candidates
``kb_publish``: apply_decisions → build_release → activate_release

Transactions: one per source synced (a source that fails is recorded as a
``failed`` run in another, and the others go on), one per step (extract: one
per batch of records, each with its candidates), one per review decision
applied (a bad decision never blocks the others; each claims its row first, so
concurrent runs apply it exactly once), one for a resubmission with
its gate run and routing, one for an import. Each step reads its work from
the KB database (records not yet extracted, candidates not yet validated,
decisions not yet applied), so any step can be re-run for the same interval
and does only what is left. Publishing (apply, build, activate) runs under the
KB's publish lock (:func:`kbops.index.publish.publish_lock`): two publishes at
once never both build; the second waits, then finds little or nothing left.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from kbops import faq
from kbops.config import Settings
from kbops.db import require_db, session_scope
from kbops.errors import ConfigError, KbopsError, ReleaseRefused
from kbops.extract import ExtractResult, mark_failed
from kbops.extract import extract_candidates as _extract
from kbops.index import calibration, golden
from kbops.index import publish as _publish
from kbops.index import release as rel
from kbops.index.embedder import Embedder
from kbops.index.golden import GoldenScore
from kbops.index.publish import BuildResult
from kbops.index.store import sync_from_store
from kbops.kb.routing import RouteResult
from kbops.kb.routing import route_candidates as _route
from kbops.review import queue
from kbops.review import resubmit as _resubmit
from kbops.review.queue import ApplyResult
from kbops.schema import Candidate
from kbops.sources import sync
from kbops.sources.config import SourceConfig, with_settings
from kbops.sources.sync import SyncResult
from kbops.validate import ValidateResult
from kbops.validate import validate_candidates as _validate

log = logging.getLogger("kbops.pipeline")

__all__ = [
    "sync_sources",
    "sync_source",
    "extract_candidates",
    "validate_candidates",
    "route_candidates",
    "apply_decisions",
    "build_release",
    "activate_release",
    "rollback",
    "check_golden",
    "calibrate",
    "calibration_report",
    "decide",
    "resubmit",
    "import_faq",
    "export_faq",
    "ingest",
    "publish",
]


# --- kb_ingest ------------------------------------------------------------------------


def sync_sources(settings: Settings, only: str | None = None, confirm_deletions: bool = False) -> list[SyncResult]:
    """Sync every configured source (or just ``only``), each in its own transaction.

    Each source succeeds or fails on its own: a source that cannot be synced (a
    missing file, an unreachable database) is recorded as a ``failed`` run with
    its error and returned as a result with ``status == "failed"``, and the
    others are synced regardless. Only a broken sources config raises.
    """
    return [_sync_isolated(settings, source, confirm_deletions) for source in sync.configured_sources(settings, only)]


def sync_source(
    settings: Settings,
    source: SourceConfig,
    confirm_deletions: bool = False,
    *,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> SyncResult:
    """Sync one source. ``env`` (default os.environ) supplies SQL URLs; ``now`` the clock.

    A failure is recorded in the run ledger (``failed``, with the error) and then
    raised, so a caller syncing just this source (an Airflow task) fails with it.
    """
    result = _sync_isolated(settings, source, confirm_deletions, env=env, now=now)
    if result.exception is not None:
        raise result.exception
    return result


def _sync_isolated(
    settings: Settings,
    source: SourceConfig,
    confirm_deletions: bool,
    *,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> SyncResult:
    """One source's sync in its own transaction; on any error, a ``failed`` ledger row in another."""
    try:
        with session_scope(settings) as db:
            r = sync.sync_source(db, with_settings(source, settings), confirm_deletions, env=env, now=now)
    except Exception as exc:  # noqa: BLE001 - one source's failure must not stop the others; it is recorded and reported
        if not isinstance(exc, KbopsError):
            log.exception("sync of source %r failed", source.name)
        with session_scope(settings) as db:
            failed = sync.record_failure(db, source.name, exc)
        log.error("sync %s failed: %s", source.name, failed.error)
        return failed
    # In the Airflow task log (and on a terminal): what the sync did, and every quarantined row's reason.
    log.info("sync %s: read %d, new %d, changed %d, deleted %d, quarantined %d, withdrawn %d (%.1f s)",
             source.name, r.read, r.new, r.changed, r.deleted, r.quarantined, r.withdrawn, r.seconds)
    for message in r.messages:
        log.warning("sync %s: %s", source.name, message)
    return r


def extract_candidates(settings: Settings) -> ExtractResult:
    """Propose candidates from changed records and new chat sessions.

    Without a usable embedding model, chat questions are grouped lexically
    only (logged): records and policies need no model.
    """
    try:
        embedder: Embedder | None = Embedder.from_settings(settings)
    except ConfigError as exc:
        log.warning("chat mining groups by lexical similarity only: %s", exc)
        embedder = None
    result = ExtractResult()
    try:
        with session_scope(settings) as db:
            # Records are extracted in batches, each committed with its candidates (memory stays bounded;
            # a re-run after a crash does only what is left).
            return _extract(db, settings, embedder, commit=db.commit, result=result)
    except Exception as exc:
        if result.run_id:  # batches were committed under this run: say it did not finish
            with session_scope(settings) as db:
                mark_failed(db, result.run_id, exc)
        raise


def validate_candidates(settings: Settings, candidate_ids: list[int] | None = None) -> ValidateResult:
    """Run the gate over every new candidate (or just ``candidate_ids``)."""
    with session_scope(settings) as db:
        return _validate(db, settings, Embedder.from_settings(settings), candidate_ids)


def route_candidates(settings: Settings, candidate_ids: list[int] | None = None) -> RouteResult:
    """Auto-approve by rule or queue for review every valid candidate (or just ``candidate_ids``)."""
    with session_scope(settings) as db:
        return _route(db, settings, candidate_ids)


# --- review -----------------------------------------------------------------------------


def apply_decisions(settings: Settings, item_ids: list[int] | None = None) -> ApplyResult:
    """Apply every decided open item (or just ``item_ids``), one transaction each.

    Items decided by a plain SQL UPDATE have no ``decided_via``; they are
    audited as coming through the 'sql' door. Approvals in a batch are
    re-checked by one gate run up front. Safe to run concurrently (other
    publishes, the review page): each item's transaction first claims the row,
    and an item another run applied meanwhile is counted as ``skipped``.
    """
    result = ApplyResult()
    with session_scope(settings) as db:
        ids = queue.decided_items(db, item_ids)
        checked = queue.precheck_approvals(db, settings, ids) if len(ids) > 1 else {}
    for item_id in ids:
        with session_scope(settings) as db:
            outcome, error = queue.apply_decision(db, settings, item_id, checked.get(item_id))
        result.add(item_id, outcome, error)
    return result


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
    """Record a reviewer's decision on open items (all or none), then apply it at once.

    See :func:`kbops.review.queue.record_decision` for what each decision means
    and how concurrent reviewers are kept apart.
    """
    with session_scope(settings) as db:
        queue.record_decision(db, item_ids, decision, by=by, note=note, question=question, answer=answer, merge_into=merge_into, door=door)
    return apply_decisions(settings, item_ids=item_ids)


def resubmit(
    settings: Settings,
    candidate_id: int,
    *,
    by: str,
    question: str | None = None,
    answer: str | None = None,
    template_slots: list[str] | None = None,
    door: str = "cli",
) -> Candidate:
    """Fix a refused candidate and run it through the gate (and routing) again, in one transaction."""
    with session_scope(settings) as db:
        return _resubmit.resubmit(
            db, settings, candidate_id, by=by, embedder=Embedder.from_settings(settings),
            question=question, answer=answer, template_slots=template_slots, door=door,
        )


def import_faq(settings: Settings, path: Path, approve: bool = False, by: str | None = None) -> faq.ImportResult:
    """``kbops import``: an FAQ file in, in one transaction."""
    with session_scope(settings) as db:
        return faq.import_faq(db, settings, Embedder.from_settings(settings), path, approve=approve, by=by)


def export_faq(settings: Settings, path: Path) -> int:
    """``kbops export``: the active entries out."""
    with session_scope(settings) as db:
        return faq.export_faq(db, path)


# --- kb_publish ---------------------------------------------------------------------------


def build_release(settings: Settings, full: bool = False, embedder: Embedder | None = None, now: datetime | None = None) -> BuildResult:
    """Build (not activate) a release for the servable KB; a no-op when the active one serves it.

    Holds the publish lock: waits while another publish builds or activates."""
    with _publish.publish_lock(settings), session_scope(settings) as db:
        sync_from_store(settings)  # another worker may have published last: build on what the cluster serves
        r = _publish.build_release(db, settings, embedder or Embedder.from_settings(settings), full=full, now=now)
    log.info("build: release %s (%s, %s): %d entries, %d vectors, %d re-embedded, %d cache hits",
             r.release_id, r.status, r.mode, r.entries, r.vectors, r.re_embedded, r.cache_hits)
    for warning in r.warnings:
        log.warning("build: %s", warning)
    return r


def activate_release(
    settings: Settings,
    release_id: str,
    *,
    force: bool = False,
    by: str = "operator",
    embedder: Embedder | None = None,
    check_golden: bool = True,
) -> dict[str, Any]:
    """Make ``release_id`` the served release (golden-question gate, atomic pointer swap), under the publish lock."""
    try:
        with _publish.publish_lock(settings), session_scope(settings) as db:
            out = _publish.activate_release(db, settings, release_id, embedder, force=force, by=by, check_golden=check_golden)
    except ReleaseRefused as exc:
        log.warning("activate refused: %s", exc)
        raise
    log.info("activate: release %s active (was %s); %d entries revoked; pruned %s", out["release_id"], out["previous"], out.get("revoked", 0), out["pruned"])
    return out


def rollback(settings: Settings, release_id: str | None = None) -> dict[str, Any]:
    """Re-activate ``release_id``, or the release before the active one (never gated).

    Under the publish lock, so a rollback is never overtaken by a publish activating its build."""
    with _publish.publish_lock(settings), session_scope(settings) as db:
        return _publish.rollback(db, settings, release_id)


def check_golden(settings: Settings, embedder: Embedder | None = None) -> GoldenScore:
    """Score the active release on the golden questions (``kbops golden check``)."""
    with session_scope(settings) as db:
        return golden.check_active(db, settings, embedder or Embedder.from_settings(settings))


def calibrate(settings: Settings, embedder: Embedder | None = None) -> dict[str, Any]:
    """Calibrate the active release on the store's own questions now (``kbops calibrate``).

    What the next publish would store with its release; the active release's
    own calibration (fitted when it was built) is left as it is: a release
    never changes once written. See :mod:`kbops.index.calibration`."""
    active = rel.active_release_id(settings.index_dir)
    if active is None:
        raise ConfigError("no active release to calibrate: publish one first (`kbops publish`)")
    loaded = rel.load_release(settings.index_dir, active, lexical_scorer=settings.lexical_scorer)
    with session_scope(settings) as db:
        pairs = golden.golden_pairs(db)
    return {"release_id": active, **calibration.calibrate(loaded, embedder or Embedder.from_settings(settings), settings, pairs)}


def calibration_report(settings: Settings) -> dict[str, Any]:
    """The calibration stored with the active release (``kbops calibrate --report``)."""
    active = rel.active_release_id(settings.index_dir)
    if active is None:
        raise ConfigError("no active release: publish one first (`kbops publish`)")
    manifest = rel.read_manifest(settings.index_dir, active)
    return {"release_id": active, **(manifest.get("calibration") or {})}


# --- whole DAGs -----------------------------------------------------------------------------


def ingest(settings: Settings, source: str | None = None, confirm_deletions: bool = False) -> dict[str, Any]:
    """The whole of kb_ingest in one call (what `kbops sync` runs); ``failed`` lists the sources that failed."""
    require_db(settings)
    synced = sync_sources(settings, source, confirm_deletions)
    return {
        "sync": [r.as_dict() for r in synced],
        # Extraction runs whatever failed: it works from the KB's state, and the sources that did
        # sync (their withdrawn entries waiting for replacements) must not wait for the broken one.
        "failed": [r.source for r in synced if r.status == "failed"],
        "extract": extract_candidates(settings).as_dict(),
        "validate": validate_candidates(settings).as_dict(),
        "route": route_candidates(settings).as_dict(),
    }


def publish(settings: Settings, full: bool = False, force: bool = False, by: str = "operator") -> dict[str, Any]:
    """The whole of kb_publish in one call (what `kbops publish` runs).

    ``force`` activates a release that answers fewer golden questions than the
    active one (audited under ``by``). The whole run holds the publish lock: a
    second publish started meanwhile waits for this one, then applies what was
    decided since and finds the KB already built (see README, Operations)."""
    require_db(settings)
    with _publish.publish_lock(settings):
        applied = apply_decisions(settings)
        built = build_release(settings, full=full)
        activation = activate_release(settings, built.release_id, force=force, by=by) if built.release_id else {"changed": False}
    return {"apply": applied.as_dict(), "build": built.as_dict(), "activate": activation}
