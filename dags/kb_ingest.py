"""
### kb_ingest — pull store changes and chat logs, propose knowledge

`sync_sources` → `extract_candidates` → `validate_candidates` → `route_candidates`

Structured facts covered by an auto-approval rule go straight into the KB;
everything else waits in the review table (`kbops review list`). A changed
fact withdraws the entries resting on it at once. Emits the
`kbops://kb/candidates` asset, which schedules **kb_publish**.

Every task reads its work from the KB database, so re-running the DAG for the
same interval does only what is left. Settings come from `KBOPS_*` variables.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from kbops.airflow_adapter import KB_CANDIDATES, run_step


@dag(
    dag_id="kb_ingest",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    tags=["kbops"],
    doc_md=__doc__,
)
def kb_ingest():
    @task
    def sync_sources() -> list:
        """Mirror every configured source; detect new / changed / deleted records; quarantine bad rows."""
        from kbops.pipeline import sync_sources as step

        return run_step(step)

    @task
    def extract_candidates(_synced: list) -> dict:
        """Propose Q&A candidates from changed records, policy sections and new chat sessions."""
        from kbops.pipeline import extract_candidates as step

        return run_step(step)

    @task
    def validate_candidates(_extracted: dict) -> dict:
        """Run the great-expectations gate; failing rows are kept with their reasons."""
        from kbops.pipeline import validate_candidates as step

        return run_step(step)

    @task(outlets=[KB_CANDIDATES])
    def route_candidates(_validated: dict) -> dict:
        """Auto-approve by rule or enqueue for human review."""
        from kbops.pipeline import route_candidates as step

        return run_step(step)

    route_candidates(validate_candidates(extract_candidates(sync_sources())))


kb_ingest()
