"""Validate: run the gate over every new candidate and record each row's verdict."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from kbops.config import Settings
from kbops.db import session_scope
from kbops.schema import Candidate, KbEntry, PipelineRun, utcnow
from kbops.validate.gate import check_rows


@dataclass
class ValidateResult:
    run_id: int = 0
    checked: int = 0
    valid: int = 0
    invalid: int = 0
    seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_candidates(settings: Settings) -> ValidateResult:
    """Move candidates from ``new`` to ``valid`` or ``invalid`` (with reasons)."""
    started = time.perf_counter()
    result = ValidateResult()
    with session_scope(settings) as db:
        run = PipelineRun(step="validate")
        db.add(run)
        db.flush()
        result.run_id = run.id
        batch = list(db.scalars(select(Candidate).where(Candidate.status == "new").order_by(Candidate.id)))
        known = dict(db.execute(select(KbEntry.fingerprint, KbEntry.entry_key).where(KbEntry.status == "active")).all())
        verdicts = check_rows(
            [
                {"candidate_id": c.id, "entry_key": c.entry_key, "lang": c.lang, "question": c.question, "answer": c.answer}
                for c in batch
            ],
            known,
        )
        by_id = {c.id: c for c in batch}
        for verdict in verdicts:
            candidate = by_id[verdict.candidate_id]
            candidate.reasons = verdict.reasons
            candidate.status = "valid" if verdict.ok else "invalid"
            if verdict.ok:
                result.valid += 1
            else:
                result.invalid += 1
                for reason in verdict.reasons:
                    code = reason.split(":", 1)[0]
                    result.failures[code] = result.failures.get(code, 0) + 1
        result.checked = len(batch)
        result.seconds = round(time.perf_counter() - started, 3)
        run.finished_at, run.status, run.stats = utcnow(), "ok", result.as_dict()
    return result
