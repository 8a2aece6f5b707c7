"""The KB's health, computed from the KB database: what ``kbops health`` and the health page show.

Every figure is read from tables the loop already writes, so health needs no
extra bookkeeping and is the same whichever door asks:

* **coverage** — of the real questions in ``query_log`` over the last ``days``,
  the share the bot answered (no handoff: its own calibrated decision, not a
  raw-score bar), per language (detected from the scrubbed question, as mining does);
* **freshness** — per source: the last successful sync, the lag of the newest
  upstream change behind the serving release (0 when the release is newer), and
  entries withdrawn because a record of the source changed and not replaced yet;
* **review queue** — open items, their age percentiles, decisions applied per
  reviewer over ``days``;
* **handoffs** — per day: questions, handoffs and their rate, by reason;
* **gaps** — the open gap topics (chat and bot), most asked first;
* **pipeline** — the run ledger's figures: records read/changed/quarantined per
  source (last sync), candidates by state, last publish duration;
* **calibration** — the serving release's confidence calibration per language
  (threshold, where it came from, the answered-share / precision curve on the
  store's own questions), read from its manifest in the release store: the one
  figure that is not in a table, because a release carries its own calibration.

Functions take the door's ``db`` session and never open one (see kbops/cli/health.py
and the review page's ``/health``). ``now`` is a parameter so tests and
reports can pin the clock.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.errors import ConfigError, ReleaseError, TransientError
from kbops.index.confidence import model_for
from kbops.index.store import store_for
from kbops.review.gaps import ranked_gaps
from kbops.schema import (
    Candidate,
    EntryDependency,
    IndexRelease,
    KbEntry,
    PipelineRun,
    QueryLogEntry,
    ReviewItem,
    SourceRecord,
    utcnow,
)
from kbops.text import detect_lang

#: Days of history the report covers unless told otherwise.
DEFAULT_DAYS = 7


@dataclass
class Health:
    """One health report; ``as_dict()`` is what ``kbops health --json`` prints."""

    at: datetime
    days: int
    coverage: dict[str, Any]
    freshness: list[dict[str, Any]]
    queue: dict[str, Any]
    handoffs: dict[str, Any]
    gaps: list[dict[str, Any]]
    pipeline: dict[str, Any]
    release: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out


def health_report(db: Session, settings: Settings, *, days: int = DEFAULT_DAYS, now: datetime | None = None, gap_limit: int = 10) -> Health:
    """Every health figure over the last ``days`` days (see the module docstring)."""
    now = now or utcnow()
    since = now - timedelta(days=days)
    release = serving_release(db)
    notes: list[str] = []
    try:
        calibration = release_calibration(settings, release)
    except (ConfigError, ReleaseError, TransientError) as exc:  # health is what an operator opens when something is wrong
        calibration = None
        notes.append(f"calibration not shown: {exc}")
    return Health(
        at=now,
        days=days,
        coverage=coverage(db, since),
        freshness=freshness(db, now, release),
        queue=review_queue(db, now, since),
        handoffs=handoffs(db, since, now),
        gaps=[_gap_dict(g, score) for g, score in ranked_gaps(db, now=now, limit=gap_limit)],
        pipeline=pipeline_figures(db, now),
        release=release,
        calibration=calibration,
        notes=notes,
    )


def release_calibration(settings: Settings, release: dict[str, Any] | None) -> dict[str, Any] | None:
    """The serving release's calibration per language, from its manifest in the release store (None before the first publish).

    Per language: its threshold as the bot applies it (re-read from the stored
    curve for the current ``target_precision``), whether the store's own fit or
    the public default answers (``source``), how many questions it was fitted
    on, its note, the curve (confidence threshold, answered share, answered
    precision) and the point the threshold picks. ReleaseError (or the store's
    errors) when the manifest cannot be read: :func:`health_report` turns that
    into a note."""
    if release is None:
        return None
    manifest = store_for(settings).read_manifest(release["release_id"])
    stored = manifest.get("calibration") or {}
    languages = {}
    for lang, data in sorted((stored.get("languages") or {}).items()):
        curve = [[float(t), float(a), float(p)] for t, a, p in data.get("curve", ())]
        threshold = model_for(manifest, lang, settings).threshold  # as the bot applies it: KBOPS_TARGET_PRECISION now
        at = next(((a, p) for t, a, p in curve if abs(t - threshold) < 1e-9), (None, None))
        languages[lang] = {
            "threshold": threshold, "source": data.get("source"), "dense_weight": data.get("dense_weight"),
            "pairs": data.get("pairs"), "note": data.get("note"), "curve": curve, "answered": at[0], "precision": at[1],
        }
    return {"target_precision": settings.target_precision, "calibrated_for": stored.get("target_precision"), "languages": languages}


def serving_release(db: Session) -> dict[str, Any] | None:
    """The active release: id, activation time, entry count (None before the first publish)."""
    row = db.scalar(select(IndexRelease).where(IndexRelease.status == "active").order_by(IndexRelease.activated_at.desc()).limit(1))
    if row is None:
        return None
    return {"release_id": row.id, "activated_at": row.activated_at.isoformat() if row.activated_at else None, "entries": row.entry_count}


def coverage(db: Session, since: datetime) -> dict[str, Any]:
    """Share of logged questions since ``since`` the bot answered (did not hand off), overall and per language.

    The bot's decision is the measure: it answers when its calibrated confidence
    reaches the language's threshold, whatever the raw top score."""
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for question, handoff in db.execute(select(QueryLogEntry.question, QueryLogEntry.handoff).where(QueryLogEntry.at >= since)):
        lang = detect_lang(question or "")
        per[lang][0] += 1
        per[lang][1] += int(not handoff)
    total = sum(n for n, _ in per.values())
    answered = sum(a for _, a in per.values())
    return {
        "questions": total,
        "answered": answered,
        "share": round(answered / total, 4) if total else None,
        "by_lang": {lang: {"questions": n, "answered": a, "share": round(a / n, 4)} for lang, (n, a) in sorted(per.items())},
    }


def freshness(db: Session, now: datetime, release: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per source: last successful sync, the newest upstream change and its lag behind the serving release,
    and entries withdrawn on a record of the source that no new approved version replaced yet."""
    sources = sorted(_synced_sources(db) | set(db.scalars(select(SourceRecord.source).distinct())))
    sync = (PipelineRun.step == "sync", PipelineRun.source.is_not(None))
    last_ok = dict(db.execute(select(PipelineRun.source, func.max(PipelineRun.finished_at)).where(*sync, PipelineRun.status == "ok").group_by(PipelineRun.source)).tuples().all())
    last_failed = dict(db.execute(select(PipelineRun.source, func.max(PipelineRun.started_at)).where(*sync, PipelineRun.status == "failed").group_by(PipelineRun.source)).tuples().all())
    # A record's newest version was first seen when the change arrived (a new version, or a tombstone).
    newest = dict(db.execute(select(SourceRecord.source, func.max(SourceRecord.first_seen)).group_by(SourceRecord.source)).tuples().all())
    withdrawn = dict(
        db.execute(
            select(EntryDependency.source, func.count(func.distinct(KbEntry.id)))
            .join(KbEntry, KbEntry.id == EntryDependency.entry_id)
            .where(KbEntry.status == "withdrawn")
            .group_by(EntryDependency.source)
        ).tuples().all()
    )
    served_at = datetime.fromisoformat(release["activated_at"]) if release and release["activated_at"] else None
    out = []
    for source in sources:
        change = _aware(newest.get(source))
        if change is None:
            lag = None
        elif served_at is not None and served_at >= change:
            lag = 0.0  # the serving release was built after the change
        else:
            lag = round((now - change).total_seconds(), 1)  # the change waits for a publish
        ok, failed = _aware(last_ok.get(source)), _aware(last_failed.get(source))
        out.append({
            "source": source,
            "last_sync": ok.isoformat() if ok else None,
            "last_sync_age_s": round((now - ok).total_seconds(), 1) if ok else None,
            "failing": bool(failed and (ok is None or failed > ok)),
            "newest_change": change.isoformat() if change else None,
            "lag_s": lag,
            "withdrawn_unreplaced": int(withdrawn.get(source, 0)),
        })
    return out


def _synced_sources(db: Session) -> set[str]:
    """Every source the run ledger has a sync run for."""
    return {s for s in db.scalars(select(PipelineRun.source).where(PipelineRun.step == "sync", PipelineRun.source.is_not(None))) if s}


def _aware(value: Any) -> datetime | None:
    """An aggregate's timestamp, timezone-aware (``max()`` bypasses the column type on SQLite)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5 - 1e-9)))
    return sorted_values[rank - 1]


def review_queue(db: Session, now: datetime, since: datetime) -> dict[str, Any]:
    """Open items and their ages (seconds: p50, p90, oldest), and decisions applied per reviewer since ``since``."""
    created = [_aware(c) for c in db.scalars(select(ReviewItem.created_at).where(ReviewItem.state == "open"))]
    ages = sorted(round((now - c).total_seconds(), 1) for c in created if c is not None)
    throughput = dict(
        db.execute(
            select(ReviewItem.decided_by, func.count())
            .where(ReviewItem.state == "applied", ReviewItem.applied_at >= since, ReviewItem.decided_by.is_not(None))
            .group_by(ReviewItem.decided_by)
        ).tuples().all()
    )
    return {
        "size": len(ages),
        "age_p50_s": _percentile(ages, 50),
        "age_p90_s": _percentile(ages, 90),
        "oldest_s": ages[-1] if ages else None,
        "decided_by": {str(k): int(v) for k, v in sorted(throughput.items(), key=lambda kv: (-kv[1], str(kv[0])))},
    }


def handoffs(db: Session, since: datetime, now: datetime) -> dict[str, Any]:
    """Questions and handoffs per UTC day since ``since`` (every day present, oldest first), and totals by reason."""
    days: dict[str, dict[str, Any]] = {}
    day = since.date()
    while day <= now.date():
        days[day.isoformat()] = {"day": day.isoformat(), "questions": 0, "handoffs": 0, "reasons": Counter()}
        day += timedelta(days=1)
    reasons: Counter[str] = Counter()
    for at, handoff, reason in db.execute(select(QueryLogEntry.at, QueryLogEntry.handoff, QueryLogEntry.reason).where(QueryLogEntry.at >= since)):
        bucket = days.setdefault(at.date().isoformat(), {"day": at.date().isoformat(), "questions": 0, "handoffs": 0, "reasons": Counter()})
        bucket["questions"] += 1
        if handoff:
            bucket["handoffs"] += 1
            bucket["reasons"][reason or "unknown"] += 1
            reasons[reason or "unknown"] += 1
    series = []
    for key in sorted(days):
        b = days[key]
        series.append({**b, "reasons": dict(b["reasons"]), "rate": round(b["handoffs"] / b["questions"], 4) if b["questions"] else None})
    questions = sum(b["questions"] for b in series)
    total = sum(b["handoffs"] for b in series)
    return {"questions": questions, "handoffs": total, "rate": round(total / questions, 4) if questions else None, "by_reason": dict(reasons.most_common()), "by_day": series}


def pipeline_figures(db: Session, now: datetime) -> dict[str, Any]:
    """The run ledger's figures: each source's last sync, candidates by state, queue size and oldest age, last publish."""
    per_source = []
    for source in sorted(_synced_sources(db)):
        run = db.scalar(select(PipelineRun).where(PipelineRun.step == "sync", PipelineRun.source == source).order_by(PipelineRun.id.desc()).limit(1))
        if run is None:
            continue
        s = run.stats or {}
        per_source.append({
            "source": source, "status": run.status, "at": run.finished_at.isoformat() if run.finished_at else None,
            "read": s.get("read", 0), "new": s.get("new", 0), "changed": s.get("changed", 0), "deleted": s.get("deleted", 0),
            "quarantined": s.get("quarantined", 0), "withdrawn": s.get("withdrawn", 0), "seconds": s.get("seconds"), "error": run.error,
        })
    by_state = dict(db.execute(select(Candidate.status, func.count()).group_by(Candidate.status)).tuples().all())
    oldest = _aware(db.scalar(select(func.min(ReviewItem.created_at)).where(ReviewItem.state == "open")))
    build = db.scalar(select(PipelineRun).where(PipelineRun.step == "build_release").order_by(PipelineRun.id.desc()).limit(1))
    return {
        "sync": per_source,
        "candidates": {str(k): int(v) for k, v in sorted(by_state.items())},
        "queue_size": int(db.scalar(select(func.count()).select_from(ReviewItem).where(ReviewItem.state == "open")) or 0),
        "queue_oldest_s": round((now - oldest).total_seconds(), 1) if oldest else None,
        "last_publish": None if build is None else {
            "at": build.finished_at.isoformat() if build.finished_at else None,
            "release_id": (build.stats or {}).get("release_id"),
            "status": (build.stats or {}).get("status"),
            "seconds": (build.stats or {}).get("seconds"),
        },
    }


def _gap_dict(gap: Any, rank: float) -> dict[str, Any]:
    return {
        "id": gap.id, "topic_key": gap.topic_key, "origin": gap.origin, "lang": gap.lang, "question": gap.question,
        "support": gap.support, "rank": round(rank, 3), "kb_score": gap.kb_score, "status": gap.status,
        "last_seen": gap.last_seen.isoformat() if gap.last_seen else None, "reasons": gap.reasons,
    }
