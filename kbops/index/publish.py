"""Publish: build a release from the servable KB entries, then activate it.

Servable = active entries whose validity window has not ended. Entries whose
window has not started yet are included and filtered at query time, so a
promotion starts (and ends) on time without another publish; the manifest
records ``next_change_at``, the next boundary, and the next publish after it
drops what expired (kb_publish runs every 15 minutes). When the
servable set is identical to the active release's (same KB digest), publish
builds nothing: re-running it is a no-op.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import or_, select, update

from kbops.config import Settings
from kbops.db import session_scope
from kbops.errors import ReleaseError
from kbops.index import release as rel
from kbops.index.embedder import Embedder
from kbops.schema import IndexRelease, KbEntry, PipelineRun, utcnow
from kbops.text import content_hash

UNK_WARNING = 0.3


@dataclass
class BuildResult:
    release_id: str | None = None
    status: str = "unchanged"  # unchanged | built
    entries: int = 0
    vectors: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    unreadable_share: float = 0.0
    next_change_at: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_embedder(settings: Settings) -> Embedder:
    return Embedder(settings.embedding_model, settings.embed_cache)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def servable_entries(settings: Settings, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or utcnow()
    with session_scope(settings) as db:
        rows = db.scalars(
            select(KbEntry)
            .where(KbEntry.status == "active", or_(KbEntry.valid_to.is_(None), KbEntry.valid_to > now))
            .order_by(KbEntry.id)
        )
        return [
            {
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
            for e in rows
        ]


def next_boundary(entries: list[dict[str, Any]], now: datetime) -> str | None:
    """The earliest future validity boundary (a window opening or closing) among ``entries``."""
    times = [
        t
        for e in entries
        for raw in (e["valid_from"], e["valid_to"])
        if raw and (t := datetime.fromisoformat(raw)) > now
    ]
    return min(times).isoformat() if times else None


def build_release(settings: Settings, full: bool = False, embedder: Embedder | None = None, now: datetime | None = None) -> BuildResult:
    """Build (but do not activate) a release for the current servable KB.

    Returns status 'unchanged' with no release when the active release already
    serves exactly this KB, unless ``full`` forces a rebuild.
    """
    started = time.perf_counter()
    result = BuildResult()
    now = now or utcnow()
    entries = servable_entries(settings, now)
    digest = content_hash([(e["id"], e["revision"], e["valid_from"], e["valid_to"]) for e in entries])
    active = rel.active_release_id(settings.index_dir)
    if active and not full:
        try:
            if rel.read_manifest(settings.index_dir, active)["kb_digest"] == digest:
                result.release_id, result.entries = active, len(entries)
                result.seconds = round(time.perf_counter() - started, 3)
                return result
        except ReleaseError:
            pass  # an unreadable active release means: build a new one
    result.next_change_at = next_boundary(entries, now)
    embedder = embedder or make_embedder(settings)
    texts, ids = [], []
    for e in entries:
        for text in [e["question"], *e["alt_questions"]]:
            texts.append(text)
            ids.append(e["id"])
    vectors = embedder.encode(texts) if texts else np.zeros((0, embedder.dim), dtype=np.float32)
    if texts:
        sample = texts[:: max(1, len(texts) // 500)]
        result.unreadable_share = round(float(np.mean([embedder.unk_share(t) for t in sample])), 3)
        if result.unreadable_share > UNK_WARNING:
            result.warnings.append(
                f"the embedding model cannot read {result.unreadable_share:.0%} of the KB's question text "
                "([UNK] tokens, e.g. Chinese with an English-only model); retrieval relies on the lexical channel "
                "for those entries — consider a multilingual model in KBOPS_EMBEDDING_MODEL"
            )
    result.release_id = rel.write_release(
        settings.index_dir,
        entries=entries,
        vectors=vectors,
        vector_ids=np.array(ids, dtype=np.int64),
        model_id=embedder.model_id,
        kb_digest=digest,
        extra={"dim": embedder.dim, "unreadable_share": result.unreadable_share, "next_change_at": result.next_change_at},
    )
    result.status = "built"
    result.entries, result.vectors = len(entries), len(texts)
    result.cache_hits, result.cache_misses = embedder.stats.hits, embedder.stats.misses
    result.seconds = round(time.perf_counter() - started, 3)
    with session_scope(settings) as db:
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
        db.add(PipelineRun(step="build_release", finished_at=utcnow(), status="ok", stats=result.as_dict()))
    return result


def activate_release(settings: Settings, release_id: str) -> dict[str, Any]:
    """Make ``release_id`` the served release (atomic pointer swap) and prune old ones."""
    previous = rel.active_release_id(settings.index_dir)
    if previous == release_id:
        return {"release_id": release_id, "previous": previous, "changed": False, "pruned": []}
    rel.activate(settings.index_dir, release_id)
    with session_scope(settings) as db:
        db.execute(update(IndexRelease).where(IndexRelease.status == "active").values(status="inactive"))
        db.execute(update(IndexRelease).where(IndexRelease.id == release_id).values(status="active", activated_at=utcnow()))
    pruned = rel.prune(settings.index_dir, settings.release_retention)
    return {"release_id": release_id, "previous": previous, "changed": True, "pruned": pruned}


def list_releases(settings: Settings) -> list[dict[str, Any]]:
    active = rel.active_release_id(settings.index_dir)
    out = []
    for rid in reversed(rel.list_release_ids(settings.index_dir)):
        try:
            m = rel.read_manifest(settings.index_dir, rid, verify=True)
            out.append({"release_id": rid, "active": rid == active, "created_at": m["created_at"], "entries": m["entry_count"], "vectors": m["vector_count"], "model": m["model"]})
        except ReleaseError as exc:  # show broken releases instead of hiding them
            out.append({"release_id": rid, "active": rid == active, "error": str(exc)})
    return out


def rollback(settings: Settings, release_id: str | None = None) -> dict[str, Any]:
    """Re-activate ``release_id``, or the release before the active one."""
    ids = rel.list_release_ids(settings.index_dir)
    active = rel.active_release_id(settings.index_dir)
    if release_id is None:
        older = [r for r in ids if active is None or r < active]
        if not older:
            raise ReleaseError("there is no earlier release to roll back to; see `kbops releases`")
        release_id = older[-1]
    return activate_release(settings, release_id)
