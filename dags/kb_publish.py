"""
### kb_publish — apply review decisions and publish a new index release

`apply_decisions` → `build_release` → `activate_release`

Runs when **kb_ingest** updates the `kbops://kb/candidates` asset, and every
15 minutes so decisions made in the review table (web, CLI or SQL) and
validity windows take effect without a new ingest. The release is built
completely in a new directory before the active pointer moves (atomic
rename); the bot never sees half a release. A no-change run builds nothing.
An empty release, or one that drops more than `KBOPS_MAX_RELEASE_DROP_SHARE`
(default 50%) of the serving release's entries, is refused: `activate_release`
fails without retries (`ReleaseRefused`) and the previous release keeps serving;
`kbops publish --force --by NAME` activates it anyway (audited). Each activation
writes the revocation overlay the bot replicas apply until they have loaded it.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from kbops.airflow_adapter import KB_CANDIDATES, KB_RELEASE, run_step


@dag(
    dag_id="kb_publish",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("*/15 * * * *", timezone="UTC"), assets=[KB_CANDIDATES]
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    tags=["kbops"],
    doc_md=__doc__,
)
def kb_publish():
    @task
    def apply_decisions() -> dict:
        """Apply reviewer decisions from the review table; invalid ones stay open with a reason."""
        from kbops.pipeline import apply_decisions as step

        return run_step(step)

    @task
    def build_release(_applied: dict) -> dict:
        """Embed (cached) and write a complete release directory, unless nothing changed."""
        from kbops.pipeline import build_release as step

        return run_step(step)

    @task(outlets=[KB_RELEASE])
    def activate_release(built: dict) -> dict:
        """Move the active pointer to the new release (atomic rename)."""
        from kbops.pipeline import activate_release as step

        if not built.get("release_id"):
            return {"changed": False}
        return run_step(step, built["release_id"])

    activate_release(build_release(apply_decisions()))


kb_publish()
