"""`make smoke-cluster` as a test: a whole cluster of real processes on this machine (deploy/smoke_cluster.py).

PostgreSQL (Airflow metadata + KB), Redis (Celery broker + change events), an S3 server
(moto) as the release store, Airflow api-server/scheduler/dag-processor/triggerer on
CeleryExecutor with two workers, two `kbops serve` replicas: a price change announced by
an event reaches both replicas; a worker killed mid-task loses nothing. Skipped, with the
reason, only where PostgreSQL or redis-server is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.airflow_helpers import ROOT

pytest.importorskip("moto.server", reason="moto[server] (the dev extra) is not installed")


@pytest.mark.slow
def test_smoke_cluster_event_to_both_replicas_and_a_killed_worker_loses_nothing():
    env = {k: v for k, v in os.environ.items() if k != "KBOPS_TEST_DATABASE_URL"}
    proc = subprocess.run([sys.executable, str(ROOT / "deploy" / "smoke_cluster.py")], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode == 2 and "SKIP smoke-cluster" in proc.stdout:
        pytest.skip(proc.stdout.strip().splitlines()[-1])
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("SMOKE ")), None)
    assert line is not None, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads(line[len("SMOKE "):])
    assert proc.returncode == 0 and summary["ok"], proc.stdout[-6000:]
    assert summary["freshness_s"] > 0
    assert summary["killed_task_after"][0][0] == "success" and summary["killed_task_after"][0][1] >= 2
    print(line)
