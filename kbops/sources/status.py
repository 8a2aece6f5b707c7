"""`kbops sources status`: each source's last run, record counts and quarantined rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from kbops.config import Settings
from kbops.db import session_scope
from kbops.schema import ChatSession, PipelineRun, QuarantinedRow, SourceRecord
from kbops.sources.config import load_sources


def sources_status(settings: Settings) -> list[dict[str, Any]]:
    out = []
    with session_scope(settings) as db:
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
            quarantined = db.scalar(select(func.count()).select_from(QuarantinedRow).where(QuarantinedRow.source == source.name)) or 0
            recent = db.scalars(
                select(QuarantinedRow).where(QuarantinedRow.source == source.name).order_by(QuarantinedRow.id.desc()).limit(5)
            )
            out.append(
                {
                    "source": source.name,
                    "type": source.type,
                    "last_run": {"run_id": last.id, "finished_at": last.finished_at, "stats": last.stats} if last else None,
                    "records": records,
                    "deleted": deleted,
                    "quarantined": quarantined,
                    "recent_quarantine": [{"location": q.location, "reason": q.reason, "at": q.created_at} for q in recent],
                }
            )
    return out
