"""The run ledger: one ``pipeline_runs`` row per step run, written one way.

``with step_run(db, "validate", result) as run:`` adds the row (so the run has
an id while it works), and on a clean exit stamps it ``ok`` with the finish
time, the elapsed seconds and the result's ``as_dict()`` as its stats. On an
error nothing is stamped: the door's session rolls the row back with the rest
of the step's writes, so the ledger never claims work that did not land.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from sqlalchemy.orm import Session

from kbops.schema import PipelineRun, utcnow


class StepResult(Protocol):
    """What a step returns: counts, ``run_id`` and ``seconds`` filled in by :func:`step_run`."""

    run_id: int
    seconds: float

    def as_dict(self) -> dict[str, Any]: ...


@contextmanager
def step_run(db: Session, step: str, result: StepResult | None = None, *, source: str | None = None) -> Iterator[PipelineRun]:
    """Record one run of ``step``; ``result`` (if given) gets the run id and the seconds taken."""
    started = time.perf_counter()
    run = PipelineRun(step=step, source=source)
    db.add(run)
    db.flush()
    if result is not None:
        result.run_id = run.id
    yield run
    run.finished_at, run.status = utcnow(), "ok"
    if result is not None:
        result.seconds = round(time.perf_counter() - started, 3)
        run.stats = result.as_dict()


def record_run(db: Session, step: str, stats: dict[str, Any], *, source: str | None = None) -> PipelineRun:
    """A finished run recorded after the fact (a step whose work happened outside the database)."""
    run = PipelineRun(step=step, source=source, finished_at=utcnow(), status="ok", stats=stats)
    db.add(run)
    return run
