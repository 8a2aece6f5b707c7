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

With a shared release store (`KBOPS_RELEASE_STORE`, e.g. `s3://bucket/prefix`) the
release's files and manifest are uploaded first, then the overlay, then the
`ACTIVE` pointer; every bot replica polls the pointer and pulls the release.
`announce_release` emits the `kbops://kb/release` asset only when a new release
went live; a run that changed nothing ends with it *skipped*.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from kbops.airflow_adapter import KB_CANDIDATES, KB_RELEASE, alert_on_failure, publish_step, run_step
from kbops.airflow_adapter import announce_release as announce


@dag(
    dag_id="kb_publish",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("*/15 * * * *", timezone="UTC"), assets=[KB_CANDIDATES]
    ),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    # retry_delay: Airflow's [core] default_task_retry_delay (30 s in the repo's airflow.cfg).
    default_args={"retries": 2, "on_failure_callback": alert_on_failure},
    on_failure_callback=alert_on_failure,
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

        return publish_step(step)

    @task
    def activate_release(built: dict) -> dict:
        """Move the active pointer to the new release (atomic rename; with a shared store: files, overlay, pointer)."""
        from kbops.pipeline import activate_release as step

        if not built.get("release_id"):
            return {"changed": False}
        return publish_step(step, built["release_id"])

    @task(outlets=[KB_RELEASE])
    def announce_release(activated: dict) -> dict:
        """Emit kbops://kb/release when a new release went live; else skipped (no asset event)."""
        return announce(activated)

    announce_release(activate_release(build_release(apply_decisions())))


kb_publish()
