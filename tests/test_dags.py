"""DAG integrity: the DagBag imports cleanly and the DAGs have their tasks; DAG files stay thin."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.airflow_helpers import ROOT, parse_dags


def test_dagbag_imports_without_errors(tmp_path):
    parsed = parse_dags(tmp_path / "airflow")
    assert parsed["errors"] == {}
    assert parsed["dags"]["kb_ingest"] == ["extract_candidates", "route_candidates", "sync_sources", "validate_candidates"]
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
