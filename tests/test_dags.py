"""DAG integrity: the DagBag imports cleanly and the DAGs have their tasks; DAG files stay thin."""

from __future__ import annotations

import ast
import http.server
import json
import os
import subprocess
import sys
import threading
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
    assert parsed["dags"]["kb_publish"] == ["activate_release", "announce_release", "apply_decisions", "build_release"]


def test_task_docs_render_and_failures_alert(tmp_path):
    """Each DAG has Markdown docs (doc_md) and every task a docstring the UI shows; DAG and task failures call the alert callback;
    kb_ingest is scheduled by the change-event asset (watched by the triggerer) or the hourly fallback."""
    proc = subprocess.run([sys.executable, "-c", _DOCS, str(ROOT / "dags")], env=airflow_env(tmp_path / "airflow"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    for dag_id in ("kb_ingest", "kb_publish"):
        assert info[dag_id]["doc_md"].startswith(f"\n### {dag_id}"), dag_id
        assert info[dag_id]["undocumented_tasks"] == [], dag_id
        assert info[dag_id]["dag_callback"] == info[dag_id]["task_callback"] == "alert_on_failure"
    # MessageQueueTrigger(scheme="redis+pubsub") serializes as the redis provider's trigger: the one the triggerer runs.
    assert info["kb_ingest"]["watchers"] == [["kbops://sources/changed", "kbops_source_changed", "airflow.providers.redis.triggers.redis_await_message.AwaitMessageTrigger", ["kbops.source_changed"]]]
    assert "kbops notify" in info["kb_ingest"]["doc_md"]


_DOCS = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
out = {}
for dag_id, dag in DagBag(dag_folder=sys.argv[1]).dags.items():
    cb = dag.on_failure_callback
    tcb = dag.default_args.get("on_failure_callback")
    watchers = []
    for _, asset in (dag.timetable.asset_condition.iter_assets() if hasattr(dag.timetable, "asset_condition") else []):
        for w in getattr(asset, "watchers", None) or []:
            trigger = w.trigger if isinstance(w.trigger, dict) else {"classpath": type(w.trigger).__name__}
            watchers.append([asset.uri, w.name, trigger.get("classpath"), trigger.get("kwargs", {}).get("channels")])
    out[dag_id] = {
        "doc_md": dag.doc_md or "",
        "undocumented_tasks": sorted(t.task_id for t in dag.tasks if not (t.doc_md or t.doc or getattr(t, "python_callable", None) and t.python_callable.__doc__)),
        "dag_callback": getattr(cb[0] if isinstance(cb, list) else cb, "__name__", None),
        "task_callback": getattr(tcb[0] if isinstance(tcb, list) else tcb, "__name__", None),
        "watchers": watchers,
    }
print(json.dumps(out))
"""


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
    with AlertReceiver() as alerts:
        env = {**airflow_env(home, settings), "KBOPS_ALERT_WEBHOOK": alerts.url}
        proc = subprocess.run([sys.executable, "-c", _TASK_STATES, str(ROOT / "dags")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # The failed task POSTed an alert to KBOPS_ALERT_WEBHOOK (a real HTTP server on 127.0.0.1).
    failed = [a for a in alerts.received if a.get("task_id") == "sync_source"]
    assert failed and failed[0]["dag_id"] == "kb_ingest" and "prices.csv" in failed[0]["reason"], alerts.received
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


class AlertReceiver:
    """A real local HTTP server that records the JSON bodies POSTed to it (the alert webhook)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def __enter__(self) -> AlertReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_alert_callback_posts_to_the_webhook_and_never_raises(monkeypatch):
    """alert_on_failure POSTs what failed; an unset or unreachable webhook sends nothing and raises nothing."""
    if "airflow" not in sys.modules:  # Airflow reads AIRFLOW_HOME once, at import: keep it out of ~/airflow
        os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "var" / "airflow-tests"))
    adapter = pytest.importorskip("kbops.airflow_adapter")
    context = {"exception": ValueError("boom"), "run_id": "manual__1", "dag": type("D", (), {"dag_id": "kb_publish"})()}
    with AlertReceiver() as alerts:
        monkeypatch.setenv("KBOPS_ALERT_WEBHOOK", alerts.url)
        adapter.alert_on_failure(context)
    assert alerts.received == [{**alerts.received[0], "dag_id": "kb_publish", "run_id": "manual__1", "reason": "boom", "kind": "kbops_failure"}]
    monkeypatch.setenv("KBOPS_ALERT_WEBHOOK", alerts.url)  # the server is gone now
    adapter.alert_on_failure(context)
    monkeypatch.delenv("KBOPS_ALERT_WEBHOOK")
    adapter.alert_on_failure(context)


_PUBLISH_TWICE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
bag = DagBag(dag_folder=sys.argv[1])
bag.dags["kb_ingest"].test()
out = []
for _ in range(2):
    run = bag.dags["kb_publish"].test()
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    with create_session() as session:
        events = session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).filter(AssetModel.uri == "kbops://kb/release").count()
    out.append({"run": str(getattr(run.state, "value", run.state)), "tasks": states, "events": events})
print(json.dumps(out))
"""


@pytest.mark.slow
def test_kb_publish_emits_its_release_asset_only_for_a_new_release(settings, tmp_path):
    """The first kb_publish after an ingest activates a release and emits kbops://kb/release; a second run,
    with nothing changed, skips `announce_release` and emits no event (nothing downstream is woken for nothing)."""
    home = tmp_path / "airflow"
    airflow_db(home)
    proc = subprocess.run([sys.executable, "-c", _PUBLISH_TWICE, str(ROOT / "dags")], env=airflow_env(home, settings), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    first, second = json.loads(proc.stdout.strip().splitlines()[-1])
    assert first["run"] == second["run"] == "success", (first, second)
    assert first["tasks"]["announce_release"] == "success" and first["events"] == 1, first
    assert second["tasks"]["announce_release"] == "skipped" and second["events"] == 1, second


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
