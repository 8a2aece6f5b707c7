"""Validate: run the gate over every new candidate and record each row's verdict.

Each run stores a :class:`~kbops.schema.ValidationReport` (what was checked,
every refused or flagged row with its reasons, the GX run's statistics)
linked from its ``pipeline_runs`` row (``stats["report_id"]``). Refused rows
stay in ``candidates`` as ``invalid`` with their reasons;
:func:`kbops.review.resubmit.resubmit` fixes one and runs it through the gate
again. Nothing is dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.index.embedder import Embedder
from kbops.kb.entries import active_fingerprints
from kbops.kb.runs import step_run
from kbops.schema import Candidate, KbEntry, ValidationReport
from kbops.validate.facts import linked_skus, load_factbook
from kbops.validate.gate import SUITE_NAME, RowVerdict, check_rows
from kbops.validate.similar import find_near_duplicates


@dataclass
class ValidateResult:
    run_id: int = 0
    report_id: int = 0
    checked: int = 0
    valid: int = 0
    invalid: int = 0
    near_duplicates: int = 0
    seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidate_row(c: Candidate) -> dict[str, Any]:
    """The gate's view of a candidate."""
    return {
        "candidate_id": c.id,
        "entry_key": c.entry_key,
        "origin": c.origin,
        "lang": c.lang,
        "question": c.question,
        "answer": c.answer,
        "alt_questions": list(c.alt_questions or []),
        "depends_on": list(c.depends_on or []),
        "evidence": dict(c.evidence or {}),
    }


def _active_entries(db: Session) -> list[dict[str, Any]]:
    return [
        {"entry_key": k, "lang": lang, "question": q, "alt_questions": list(alts or []), "skus": linked_skus({"depends_on": deps})}
        for k, lang, q, alts, deps in db.execute(
            select(KbEntry.entry_key, KbEntry.lang, KbEntry.question, KbEntry.alt_questions, KbEntry.depends_on)
            .where(KbEntry.status == "active")
            .order_by(KbEntry.id)
        )
    ]


def gate_rows(db: Session, settings: Settings, embedder: Embedder, rows: list[dict[str, Any]], stats: dict[str, Any] | None = None) -> list[RowVerdict]:
    """Run every rule over ``rows`` against the KB as it is now (facts, active entries)."""
    if not rows:
        return []
    facts = load_factbook(db, {sku for row in rows for sku in linked_skus(row)})
    # Records are templated per product (identity = key); an over-long question fails its length bound anyway.
    eligible = [r for r in rows if r.get("origin") != "record" and 0 < len((r.get("question") or "").strip()) <= 1000]
    near = {}
    if eligible:
        entries = _active_entries(db)
        if entries:
            near = find_near_duplicates(
                [{**r, "skus": linked_skus(r)} for r in eligible], entries, embedder, settings.near_duplicate_threshold
            )
    return check_rows(
        rows,
        active_fingerprints(db),
        facts=facts,
        near_duplicates=near,
        template_slots=settings.template_slots,
        stats=stats,
    )


def validate_candidates(db: Session, settings: Settings, embedder: Embedder, candidate_ids: list[int] | None = None) -> ValidateResult:
    """Move candidates from ``new`` to ``valid`` or ``invalid`` (with reasons); store the run's report.

    ``embedder`` compares questions with the active entries (near-duplicates);
    it loads its model only when there is something to compare.
    """
    result = ValidateResult()
    with step_run(db, "validate", result) as run:
        stmt = select(Candidate).where(Candidate.status == "new")
        if candidate_ids is not None:
            stmt = stmt.where(Candidate.id.in_(candidate_ids))
        batch = list(db.scalars(stmt.order_by(Candidate.id)))
        stats: dict[str, Any] = {}
        verdicts = gate_rows(db, settings, embedder, [candidate_row(c) for c in batch], stats)
        by_id = {c.id: c for c in batch}
        report_rows = []
        for verdict in verdicts:
            candidate = by_id[verdict.candidate_id]
            candidate.reasons = verdict.reasons + verdict.flags
            candidate.status = "valid" if verdict.ok else "invalid"
            evidence = dict(candidate.evidence or {})
            evidence.pop("near_duplicate", None)
            if verdict.ok and verdict.near_duplicate is not None:
                evidence["near_duplicate"] = verdict.near_duplicate.as_dict()
                result.near_duplicates += 1
            candidate.evidence = evidence
            if verdict.ok:
                result.valid += 1
            else:
                result.invalid += 1
                for reason in verdict.reasons:
                    code = reason.split(":", 1)[0]
                    result.failures[code] = result.failures.get(code, 0) + 1
            if verdict.reasons or verdict.flags:
                report_rows.append(
                    {"candidate_id": candidate.id, "entry_key": candidate.entry_key, "status": candidate.status, "reasons": verdict.reasons, "flags": verdict.flags}
                )
        result.checked = len(batch)
        report = ValidationReport(
            run_id=run.id,
            suite=SUITE_NAME,
            checked=result.checked,
            valid=result.valid,
            invalid=result.invalid,
            near_duplicates=result.near_duplicates,
            failures=dict(result.failures),
            rows=report_rows,
            statistics=stats,
        )
        db.add(report)
        db.flush()
        result.report_id = report.id
    return result


def get_report(db: Session, report_id: int | None = None) -> ValidationReport | None:
    """A stored validation report (the latest when no id is given)."""
    stmt = select(ValidationReport).order_by(ValidationReport.id.desc()).limit(1)
    if report_id is not None:
        stmt = select(ValidationReport).where(ValidationReport.id == report_id)
    return db.scalar(stmt)
