"""Packaging: the core library and the bot's door work without Airflow.

A bot-API-only host installs ``kbops[serve]`` and no Airflow; an Airflow worker
installs ``kbops[airflow]`` and may skip the HTTP extra. These tests run kbops in
a child interpreter whose import system refuses the missing extra (a meta-path
finder that raises ``ModuleNotFoundError`` as if the package were not
installed), so they prove it on this machine, where everything is installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The child puts the finder first on sys.meta_path, then runs BODY and prints one JSON line.
# `blocked_attempts` records every import of a refused package, caught or not.
_PRELUDE = r"""
import importlib.abc, io, json, sys, contextlib

BLOCKED = tuple(json.loads(sys.argv[1]))
blocked_attempts = []

class RefuseExtra(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in BLOCKED:
            blocked_attempts.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (refused by tests/test_packaging.py)", name=name)
        return None

assert not any(m.split(".")[0] in BLOCKED for m in sys.modules), "a refused package was imported before the finder"
sys.meta_path.insert(0, RefuseExtra())
result = {}

def run_cli(argv):
    from kbops.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse's --help exits 0
            status = exc.code
    return {"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}
"""


def _run_without(blocked: list[str], body: str, tmp_path: Path) -> dict:
    """Run ``body`` in a fresh interpreter where importing any of ``blocked`` fails; return its ``result``."""
    script = _PRELUDE + body + "\nresult['blocked_attempts'] = blocked_attempts\nprint('RESULT ' + json.dumps(result))\n"
    env = dict(os.environ)
    env.update({"KBOPS_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false"})
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow")  # importing Airflow (the serve-less test) writes its config here
    env.pop("KBOPS_CONFIG", None)
    env.pop("KBOPS_DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(blocked)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"child failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    line = next(line for line in reversed(proc.stdout.splitlines()) if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_package_root_and_config_never_touch_airflow(tmp_path):
    result = _run_without(
        ["airflow"],
        "import kbops, kbops.config\nresult['loaded'] = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n",
        tmp_path,
    )
    assert result["blocked_attempts"] == [], "kbops/__init__ or kbops.config tried to import Airflow"
    assert result["loaded"] == []


def test_bot_door_and_cli_work_without_airflow(tmp_path):
    """kbops.serve (bot API, retriever), kbops.pipeline and the CLI's bot commands import and run with Airflow absent."""
    body = r"""
import importlib
for name in ("kbops.serve.api", "kbops.serve.retriever", "kbops.pipeline", "kbops.cli"):
    importlib.import_module(name)
from kbops.serve.api import create_app
result["create_app"] = callable(create_app)
result["help"] = {cmd: run_cli([cmd, "--help"]) for cmd in ("ask", "serve", "releases")}
# Not only the help: create a KB and list its (no) releases, as a bot host would.
result["init"] = run_cli(["init"])
result["releases"] = run_cli(["releases", "--json"])
"""
    result = _run_without(["airflow"], body, tmp_path)
    assert result["create_app"] is True
    for cmd, run in result["help"].items():
        assert run["status"] == 0, (cmd, run["stderr"])
        assert f"usage: kbops {cmd}" in run["stdout"], (cmd, run["stdout"])
    assert result["init"]["status"] == 0, result["init"]["stderr"]
    assert result["releases"]["status"] == 0, result["releases"]["stderr"]
    assert json.loads(result["releases"]["stdout"]) == []
    # Nothing on the bot's path even tried Airflow (an optional `try: import airflow` would hide a dependency).
    assert result["blocked_attempts"] == []


def test_pipeline_works_without_the_serve_extra(tmp_path):
    """An Airflow worker installs kbops[airflow]: the pipeline steps and the CLI import without FastAPI/uvicorn.

    (Jinja is not refused: great-expectations, a core dependency, requires it.)"""
    body = r"""
import importlib
for name in ("kbops.pipeline", "kbops.cli", "kbops.airflow_adapter"):
    importlib.import_module(name)
result["help"] = run_cli(["sync", "--help"])
result["serve"] = run_cli(["serve"]) if run_cli(["init"])["status"] == 0 else None
"""
    result = _run_without(["fastapi", "starlette", "uvicorn", "multipart", "python_multipart"], body, tmp_path)
    assert result["help"]["status"] == 0
    assert len(result["blocked_attempts"]) == 1 and result["blocked_attempts"][0] in ("uvicorn", "fastapi"), "only `kbops serve` may reach for the serve extra"
    # `kbops serve` without the extra says what to install, as a one-line error (exit 2).
    assert result["serve"]["status"] == 2
    assert "kbops[serve]" in result["serve"]["stderr"]


def _names(requirements: list[str]) -> set[str]:
    """Normalised distribution names of PEP 508 requirement strings."""
    return {re.split(r"[\s\[<>=!~;@]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_core_dependencies_leave_out_airflow_and_the_http_server():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = _names(project["dependencies"])
    extras = project["optional-dependencies"]
    assert not {n for n in core if n.startswith("apache-airflow")}, core
    assert not core & {"fastapi", "uvicorn", "jinja2", "python-multipart"}, core
    assert "apache-airflow[postgres,celery]==3.3.2" in extras["airflow"]
    assert {"fastapi", "uvicorn", "jinja2", "python-multipart", "prometheus-client"} <= _names(extras["serve"])
    assert not {n for n in _names(extras["serve"]) if n.startswith("apache-airflow")}
    assert extras["all"] == ["kbops[airflow,serve,s3]"]
    assert {"pytest", "ruff", "mypy", "moto"} <= _names(extras["dev"])
    assert {"psycopg", "beautifulsoup4", "redis", "tqdm", "opencc"} <= core and "matplotlib" not in core
    # torch stays pinned (the Makefile installs exactly this CPU build first).
    assert "torch==2.13.0" in project["dependencies"]


def test_airflow_extra_pins_a_working_celery_and_postgres_set():
    """Issue 13: the Celery provider 3.26.0 breaks on celery 5.7.0 (`cannot import name 'retry' from
    'celery.backends.database'`); asyncpg is Airflow 3's async metadata driver on PostgreSQL; the redis
    provider implements the `redis+pubsub` MessageQueueTrigger; s3fs backs the shared release store."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    airflow = extras["airflow"]
    assert "apache-airflow-providers-celery==3.26.0" in airflow
    assert "celery>=5.6.3,<5.7" in airflow and "kombu>=5.6.2,<5.7" in airflow
    assert {"asyncpg", "apache-airflow-providers-redis", "apache-airflow-providers-common-messaging", "apache-airflow-providers-postgres"} <= _names(airflow)
    assert {"fsspec", "s3fs"} <= _names(extras["s3"])


def test_installed_set_works_together():
    """What `pip install -e '.[all,dev]'` installed: celery/kombu 5.6, the Celery executor and the redis+pubsub
    trigger import, the PostgreSQL drivers (psycopg 3 for plain postgresql:// URIs, asyncpg for Airflow) are there,
    and `pip check` finds no broken requirement."""
    code = r"""
import json, importlib.metadata as md
import celery, kombu, psycopg, asyncpg, s3fs
from airflow.providers.celery.executors.celery_executor import CeleryExecutor
from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
trigger = MessageQueueTrigger(scheme="redis+pubsub", channels=["kbops.source_changed"], redis_conn_id="kbops_events", poll_interval=1.0)
print(json.dumps({"celery": celery.__version__, "kombu": kombu.__version__, "trigger": trigger.serialize()[0]}))
"""
    env = {**os.environ, "AIRFLOW_HOME": str(ROOT / "var" / "airflow-packaging-test"), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["celery"].startswith("5.6.") and info["kombu"].startswith("5.6."), info
    assert info["trigger"] == "airflow.providers.redis.triggers.redis_await_message.AwaitMessageTrigger"
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
