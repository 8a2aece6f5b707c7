"""Run the real DAGs with ``dag.test()`` in a child process with a temporary AIRFLOW_HOME.

Airflow reads its configuration at import time, so each run gets a fresh
interpreter with the environment set up front (and the test process never
imports Airflow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kbops.config import Settings

ROOT = Path(__file__).resolve().parent.parent

_SCRIPT = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
if sys.argv[2] == "--parse":
    print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                      "dags": {d: sorted(t.task_id for t in dag.tasks) for d, dag in bag.dags.items()}}))
    sys.exit(0)
states = {}
for dag_id in sys.argv[2:]:
    run = bag.dags[dag_id].test()
    states[dag_id] = str(getattr(run.state, "value", run.state))
print(json.dumps(states))
"""


def airflow_env(airflow_home: Path, settings: Settings | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
            "PYTHONWARNINGS": "ignore",
        }
    )
    if settings is not None:
        env.update(
            {
                "KBOPS_HOME": str(settings.home),
                "KBOPS_DATABASE_URL": settings.database_url,
                "KBOPS_SOURCES": str(settings.sources_file),
                "KBOPS_EMBED_CACHE": str(settings.embed_cache),
                "KBOPS_INDEX_DIR": str(settings.index_dir),
            }
        )
    return env


def airflow_db(airflow_home: Path) -> dict[str, str]:
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = airflow_env(airflow_home)
    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
    return env


def run_dags(airflow_home: Path, settings: Settings, *dag_ids: str) -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(ROOT / "dags"), *dag_ids],
        env=airflow_env(airflow_home, settings),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_dags(airflow_home: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(ROOT / "dags"), "--parse"],
        env=airflow_env(airflow_home),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


_EXPORT = r"""
import json, os, sys
from kbops.airflow_adapter import export_connections
from kbops.config import Settings
export_connections(Settings.load())
print(json.dumps({"url": os.environ.get(sys.argv[1])}))
"""


def exported_url(airflow_home: Path, settings: Settings, url_env: str, extra_env: dict[str, str]) -> str | None:
    """Run the adapter's connection export in a fresh interpreter; the URL it put in ``url_env``."""
    env = airflow_env(airflow_home, settings)
    env.pop(url_env, None)
    env.update(extra_env)
    proc = subprocess.run([sys.executable, "-c", _EXPORT, url_env], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["url"]
