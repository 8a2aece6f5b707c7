"""`kbops sources status`: each source's last run, record counts and quarantined rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.schema import ChatSession, PipelineRun, QuarantinedRow, SourceRecord
from kbops.sources.config import load_sources


def _last_reading_run(db: Session, source: str) -> int | None:
    """The latest successful sync that read the source (not one that skipped identical files)."""
    runs = db.execute(
        select(PipelineRun.id, PipelineRun.stats)
        .where(PipelineRun.step == "sync", PipelineRun.source == source, PipelineRun.status == "ok")
        .order_by(PipelineRun.id.desc())
        .limit(100)
    ).all()
    return next((run_id for run_id, stats in runs if not (stats or {}).get("skipped")), None)


def sources_status(db: Session, settings: Settings) -> list[dict[str, Any]]:
    """Each source's last successful run, its failure if the latest sync failed, watermark, record counts and current quarantine."""
    out = []
    for source in load_sources(settings.require_sources()):
        last = db.scalar(
            select(PipelineRun)
            .where(PipelineRun.step == "sync", PipelineRun.source == source.name, PipelineRun.status == "ok")
            .order_by(PipelineRun.id.desc())
            .limit(1)
        )
        if source.type == "chats":
            records = db.scalar(select(func.count()).select_from(ChatSession).where(ChatSession.source == source.name)) or 0
            deleted = 0
        else:
            base = select(func.count()).select_from(SourceRecord).where(SourceRecord.source == source.name, SourceRecord.is_current.is_(True))
            records = db.scalar(base.where(SourceRecord.deleted.is_(False))) or 0
            deleted = db.scalar(base.where(SourceRecord.deleted.is_(True))) or 0
        # Quarantine as of the latest run that actually read the source (a run
        # that skipped byte-identical files leaves the earlier verdicts standing).
        read_run = _last_reading_run(db, source.name)
        in_run = select(QuarantinedRow).where(QuarantinedRow.source == source.name, QuarantinedRow.run_id == read_run)
        quarantined = len(list(db.scalars(in_run))) if read_run else 0
        recent = list(db.scalars(in_run.order_by(QuarantinedRow.id).limit(5))) if read_run else []
        latest = db.scalar(
            select(PipelineRun).where(PipelineRun.step == "sync", PipelineRun.source == source.name).order_by(PipelineRun.id.desc()).limit(1)
        )
        failure = latest if latest is not None and latest.status == "failed" else None
        out.append(
            {
                "source": source.name,
                "type": source.type,
                "last_run": {"run_id": last.id, "finished_at": last.finished_at, "stats": last.stats} if last else None,
                # The latest sync failed (what stands until a sync succeeds again).
                "last_failure": {"run_id": failure.id, "at": failure.finished_at, "error": failure.error} if failure else None,
                "records": records,
                "deleted": deleted,
                "quarantined": quarantined,
                "watermark": (last.stats.get("watermark") or {}).get("value") if last else None,
                "recent_quarantine": [{"location": q.location, "reason": q.reason, "at": q.created_at} for q in recent],
            }
        )
    return out
