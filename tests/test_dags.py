"""DAG integrity: the DagBag imports cleanly and the DAGs have their tasks; DAG files stay thin."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from kbops.db import session_scope
from kbops.schema import PipelineRun, SourceRecord
from tests.airflow_helpers import ROOT, airflow_db, airflow_env, parse_dags


def test_dagbag_imports_without_errors(tmp_path):
    parsed = parse_dags(tmp_path / "airflow")
    assert parsed["errors"] == {}
    assert parsed["dags"]["kb_ingest"] == [
        "all_sources_synced", "announce_changes", "extract_candidates", "route_candidates", "source_names", "sync_source", "validate_candidates",
    ]
    assert parsed["dags"]["kb_publish"] == ["activate_release", "apply_decisions", "build_release"]


def test_dag_files_import_nothing_heavy_at_top_level():
    """The scheduler parses DAG files constantly: no kbops logic, DB or model imports at module level."""
    for path in Path(ROOT / "dags").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_imports = {
            node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module
        } | {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
        assert top_imports <= {"__future__", "pendulum", "airflow.sdk", "kbops.airflow_adapter", "airflow.timetables.assets", "airflow.timetables.trigger"}, path


def test_kbops_never_imports_airflow_outside_its_adapter():
    for path in (ROOT / "kbops").rglob("*.py"):
        if path.name == "airflow_adapter.py":
            continue
        source = path.read_text(encoding="utf-8")
        assert "import airflow" not in source and "from airflow" not in source, path


_TASK_STATES = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
run = DagBag(dag_folder=sys.argv[1]).dags["kb_ingest"].test()
tasks = {}
for ti in run.get_task_instances():
    name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.rendered_map_index or ti.map_index}]"
    tasks[name] = str(getattr(ti.state, "value", ti.state))
print(json.dumps({"run": str(getattr(run.state, "value", run.state)), "tasks": tasks}))
"""


@pytest.mark.slow
def test_one_failing_source_fails_only_its_own_task(settings, store, tmp_path):
    """kb_ingest syncs each source in its own mapped task: a missing file fails that task (and the run),
    the other sources sync, and extraction still runs on what they brought."""
    home = tmp_path / "airflow"
    airflow_db(home)
    (store / "prices.csv").unlink()
    proc = subprocess.run([sys.executable, "-c", _TASK_STATES, str(ROOT / "dags")], env=airflow_env(home, settings), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    states = json.loads(proc.stdout.strip().splitlines()[-1])
    assert states["run"] == "failed"
    tasks = states["tasks"]
    assert tasks["sync_source[prices]"] == "failed"
    assert {tasks[f"sync_source[{name}]"] for name in ("products", "policies", "chats")} == {"success"}
    assert tasks["extract_candidates"] == tasks["validate_candidates"] == tasks["route_candidates"] == "success"
    assert tasks["all_sources_synced"] == "upstream_failed"
    with session_scope(settings) as db:
        assert db.scalar(select(PipelineRun.status).where(PipelineRun.source == "prices")) == "failed"
        assert db.scalar(select(PipelineRun.status).where(PipelineRun.step == "extract")) == "ok"
        assert len(db.scalars(select(SourceRecord.id).where(SourceRecord.source == "products")).all()) == 20


_TWICE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
dag = DagBag(dag_folder=sys.argv[1]).dags["kb_ingest"]
out = []
for _ in range(2):
    run = dag.test()
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances() if ti.map_index < 0}
    with create_session() as session:
        events = session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).filter(AssetModel.uri == "kbops://kb/candidates").count()
    out.append({"run": str(getattr(run.state, "value", run.state)), "tasks": states, "events": events})
print(json.dumps(out))
"""


@pytest.mark.slow
def test_kb_ingest_emits_its_asset_only_when_something_changed(settings, tmp_path):
    """Issue 13: kb_ingest emitted kbops://kb/candidates on every run, so kb_publish ran (and published)
    after runs that changed nothing. The first run (everything new) emits; a second run over the
    unchanged store skips `announce_changes` and emits no asset event; both runs succeed."""
    home = tmp_path / "airflow"
    airflow_db(home)
    proc = subprocess.run([sys.executable, "-c", _TWICE, str(ROOT / "dags")], env=airflow_env(home, settings), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    first, second = json.loads(proc.stdout.strip().splitlines()[-1])
    assert first["run"] == second["run"] == "success", (first, second)
    assert first["events"] == 1, first
    assert second["events"] == 1, f"a run that changed nothing emitted kbops://kb/candidates: {second}"
    assert second["tasks"]["route_candidates"] == "success"
    assert first["tasks"]["announce_changes"] == "success" and second["tasks"]["announce_changes"] == "skipped", (first, second)
