"""
### kb_ingest — pull store changes and chat logs, propose knowledge

`source_names` → `sync_source` (one mapped task per configured source) → `extract_candidates` → `validate_candidates` → `route_candidates` → `announce_changes`

Each source is synced in its own mapped task (named by the source), so one
source's failure — a missing export, an unreachable store database — fails
that task alone, visibly, while the other sources sync. `extract_candidates`
runs once every sync task is done, whatever their states (`trigger_rule
all_done`): it works from the KB database, so the sources that did sync get
their changes extracted (and withdrawn entries their replacements) without
waiting for the broken one. `all_sources_synced` is a no-op leaf that needs
every sync to succeed, so the DAG run ends *failed* while any source failed.

Structured facts covered by an auto-approval rule go straight into the KB;
everything else waits in the review table (`kbops review list`). A changed
fact withdraws the entries resting on it at once. `announce_changes` emits the
`kbops://kb/candidates` asset, which schedules **kb_publish**, only when the run
changed something (candidates queued or auto-approved, entries withdrawn or
retired); otherwise it ends *skipped* and emits nothing.

**When it runs.** On a change event, within seconds: `kbops notify SOURCE`
publishes a message on Redis (channel `KBOPS_EVENTS_CHANNEL`, default
`kbops.source_changed`); the `airflow triggerer` watches that channel
(AssetWatcher on `kbops://sources/changed`, common.messaging's
`MessageQueueTrigger`, scheme `redis+pubsub`, Airflow Connection `kbops_events`)
and the run syncs **only the sources the events name**. And every hour, as the
fallback (a message published while no triggerer listened is lost): then
every source is synced.

Every task reads its work from the KB database, so re-running the DAG for the
same interval does only what is left. Settings come from `KBOPS_*` variables,
which must reach the scheduler, the triggerer and every worker. Each task logs
its counts, quarantined rows and warnings (loggers `kbops.*`) in its task log; a
failure is POSTed to `KBOPS_ALERT_WEBHOOK` when set.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from kbops.airflow_adapter import (
    KB_CANDIDATES,
    alert_on_failure,
    announce_if_changed,
    run_source_step,
    run_step,
    source_changed_asset,
    sources_to_sync,
    sync_changes,
)


@dag(
    dag_id="kb_ingest",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=[source_changed_asset()]),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    # retry_delay: Airflow's [core] default_task_retry_delay (30 s in the repo's airflow.cfg).
    default_args={"retries": 2, "on_failure_callback": alert_on_failure},
    on_failure_callback=alert_on_failure,
    tags=["kbops"],
    doc_md=__doc__,
)
def kb_ingest():
    @task
    def source_names(triggering_asset_events=None) -> list:
        """The sources to sync: those named by the change events that triggered this run, else all of them."""
        return run_step(sources_to_sync, triggering_asset_events)

    @task(map_index_template="{{ task.op_kwargs['name'] }}")
    def sync_source(name: str) -> dict:
        """Mirror one source; detect new / changed / deleted records; quarantine bad rows."""
        from kbops.pipeline import sync_source as step

        return run_source_step(step, name)

    @task(trigger_rule="all_done")
    def extract_candidates(synced: list) -> dict:
        """Propose Q&A candidates from changed records, policy sections and new chat sessions."""
        from kbops.pipeline import extract_candidates as step

        return {**run_step(step), "synced": sync_changes(synced)}

    @task
    def validate_candidates(_extracted: dict) -> dict:
        """Run the great-expectations gate; failing rows are kept with their reasons."""
        from kbops.pipeline import validate_candidates as step

        return run_step(step)

    @task
    def route_candidates(_validated: dict) -> dict:
        """Auto-approve by rule or enqueue for human review."""
        from kbops.pipeline import route_candidates as step

        return run_step(step)

    @task(outlets=[KB_CANDIDATES])
    def announce_changes(extracted: dict, routed: dict) -> dict:
        """Emit kbops://kb/candidates (schedules kb_publish) when this run changed something; else skipped."""
        return announce_if_changed(extracted, routed)

    @task
    def all_sources_synced() -> None:
        """Fails the run (upstream_failed) when a source's sync failed; the other tasks still ran."""

    synced = sync_source.expand(name=source_names())
    extracted = extract_candidates(synced)
    synced >> all_sources_synced()
    announce_changes(extracted, route_candidates(validate_candidates(extracted)))


kb_ingest()
