"""`make smoke-cluster`: a whole kbops cluster on one machine, with real processes, end to end.

What it starts (and stops again, whatever happens):

* PostgreSQL databases of its own on the running server (``KBOPS_SMOKE_PG``, default
  ``postgresql+psycopg2://postgres@127.0.0.1:5432``): one for Airflow's metadata, one for the KB;
* a Redis server of its own on a free port: the Celery broker and the change-event channel;
* an S3-compatible server (moto's server mode) on a free port: the shared release store;
* Airflow 3: api-server, scheduler, dag-processor, triggerer, CeleryExecutor, two Celery workers;
* two ``kbops serve`` replicas, each with its own release cache, reading the S3 store.

What it checks:

1. a first release (sample store, published with the CLI) is served by both replicas;
2. **freshness**: a price change announced with ``kbops notify prices`` (Redis pub/sub →
   triggerer → kb_ingest for that source → kb_publish → S3 → replicas) is served by both
   replicas; the latency from the event to the new answer on both is measured and printed;
3. **worker loss**: a second price change; one Celery worker is killed (SIGKILL, its whole
   process group) while it runs a task of that pipeline; Airflow marks the task failed by
   heartbeat timeout and retries it on the surviving worker; the new price is served on both
   replicas and no run is left failed (nothing lost).

It uses only the installed tools (``airflow``, ``kbops``, ``redis-server``, ``psql``-free
SQL through SQLAlchemy) and prints one JSON summary line last (``SMOKE {...}``). Exit status 0
when every check passed; 2 when a prerequisite is missing (PostgreSQL or redis-server), with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG = os.environ.get("KBOPS_SMOKE_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
QUESTION = "How much is the Lumi Smart Rice Cooker 3L?"
SKU = "LM-1001"
TOKEN = "smoke-token"


class Missing(Exception):
    """A prerequisite (PostgreSQL, redis-server) is absent: the smoke test cannot run here."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log(message: str) -> None:
    print(f"[smoke {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Cluster:
    """Everything the smoke test starts, so that everything is stopped again."""

    def __init__(self, work: Path):
        self.work = work
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.databases: list[str] = []
        suffix = f"{os.getpid()}_{int(time.time()) % 100000}"
        self.af_db, self.kb_db = f"kbops_smoke_af_{suffix}", f"kbops_smoke_kb_{suffix}"
        self.redis_port, self.s3_port, self.api_port = free_port(), free_port(), free_port()
        self.replica_ports = [free_port(), free_port()]
        self.store = work / "store"
        self.env = self._env()

    # -- setup -------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KBOPS_", "AIRFLOW_", "AIRFLOW__"))}
        redis = f"redis://127.0.0.1:{self.redis_port}"
        home = self.work / "airflow"
        env.update({
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false",
            # Airflow: PostgreSQL metadata, CeleryExecutor on Redis, DAGs unpaused, fast loops for a test.
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(ROOT / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": "kbops-smoke-cluster-secret-not-for-production",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG}/{self.af_db}",
            "AIRFLOW__CELERY__BROKER_URL": f"{redis}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{PG.replace('+psycopg2', '')}/{self.af_db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW_CONN_KBOPS_EVENTS": f"{redis}/1",
            # kbops: KB on PostgreSQL, releases on S3, events on Redis; shared between workers and replicas.
            "KBOPS_HOME": str(self.work / "kbops"),
            "KBOPS_DATABASE_URL": f"{PG}/{self.kb_db}",
            "KBOPS_SOURCES": str(self.store / "sources.toml"),
            "KBOPS_INDEX_DIR": str(self.work / "kbops" / "index"),
            "KBOPS_EMBED_CACHE": str(self.work / "kbops" / "embeddings.sqlite"),
            "KBOPS_MODELS_DIR": os.environ.get("KBOPS_MODELS_DIR", str(ROOT / "var" / "models")),
            "KBOPS_RELEASE_STORE": "s3://kb-releases/smoke",
            "KBOPS_RELEASE_STORE_ENDPOINT": f"http://127.0.0.1:{self.s3_port}",
            "KBOPS_EVENTS_URL": f"{redis}/1",
            "KBOPS_API_TOKEN": TOKEN,
            "AWS_ACCESS_KEY_ID": "smoke", "AWS_SECRET_ACCESS_KEY": "smoke", "AWS_DEFAULT_REGION": "us-east-1",
        })
        return env

    def check_prerequisites(self) -> None:
        if not shutil.which("redis-server"):
            raise Missing("redis-server is not installed (apt-get install redis-server)")
        try:
            self.sql("postgres", "SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure means: no usable PostgreSQL here
            raise Missing(f"PostgreSQL is not reachable at {PG} ({type(exc).__name__}); set KBOPS_SMOKE_PG") from None

    def sql(self, database: str, statement: str, params: dict[str, Any] | None = None, autocommit: bool = False) -> list[Any]:
        from sqlalchemy import create_engine, text

        engine = create_engine(f"{PG}/{database}", isolation_level="AUTOCOMMIT" if autocommit else None)
        try:
            with engine.begin() as conn:
                result = conn.execute(text(statement), params or {})
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a process in its own session (so it and its children can be killed together); output to a log file."""
        out = open(self.work / f"{name}.log", "wb")  # noqa: SIM115 - closed when the process is reaped
        proc = subprocess.Popen(args, env=env or self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.work)
        self.procs[name] = proc
        return proc

    def run(self, args: list[str], timeout: float = 600, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(args, env=env or self.env, capture_output=True, text=True, timeout=timeout, cwd=self.work)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:3])} failed ({proc.returncode}): {proc.stderr[-3000:]}")
        return proc.stdout

    def setup(self) -> None:
        shutil.copytree(ROOT / "examples" / "sample_store", self.store)
        for db in (self.af_db, self.kb_db):
            self.sql("postgres", f'CREATE DATABASE "{db}"', autocommit=True)
            self.databases.append(db)
        self.start("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        self.start("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)])
        wait_for(lambda: port_open(self.redis_port) and port_open(self.s3_port), 30, "redis and the S3 server")
        import boto3

        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.s3_port}", region_name="us-east-1",
                     aws_access_key_id="smoke", aws_secret_access_key="smoke").create_bucket(Bucket="kb-releases")

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for db in self.databases:
            with suppress(Exception):
                self.sql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)', autocommit=True)

    # -- what the checks read ----------------------------------------------------------------

    def answers(self, port: int) -> tuple[str, list[str]]:
        """(serving release id, the answers of the top hits) of one replica for the price question."""
        body = json.dumps({"query": QUESTION, "top_k": 3}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/search", data=body, method="POST",
                                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            data = json.loads(response.read())
        return data.get("release_id", ""), [h["answer"] for h in data.get("hits", [])]

    def serves(self, price: str) -> bool:
        """Whether every replica's best hit states ``price`` (and no hit another price of the SKU)."""
        for port in self.replica_ports:
            try:
                _, answers = self.answers(port)
            except OSError:
                return False
            if not answers or price not in answers[0]:
                return False
        return True

    def ti_rows(self, since: float) -> list[Any]:
        return self.sql(self.af_db, "SELECT dag_id, task_id, map_index, state, try_number, pid, hostname FROM task_instance "
                        "WHERE start_date >= to_timestamp(:t) OR queued_dttm >= to_timestamp(:t)", {"t": since})

    def breakdown(self, since: float) -> dict[str, float]:
        """Seconds from the event to each DAG run's start and end (where the latency goes)."""
        rows = self.sql(self.af_db, "SELECT dag_id, extract(epoch from start_date) AS s, extract(epoch from end_date) AS e FROM dag_run "
                        "WHERE run_type = 'asset_triggered' AND queued_at >= to_timestamp(:t) ORDER BY queued_at", {"t": since - 1})
        out: dict[str, float] = {}
        for r in rows:
            if r.s is not None:
                out.setdefault(f"{r.dag_id}_started", round(float(r.s) - since, 1))
            if r.e is not None:
                out.setdefault(f"{r.dag_id}_finished", round(float(r.e) - since, 1))
        return out

    def runs_since(self, since: float) -> list[Any]:
        return self.sql(self.af_db, "SELECT dag_id, run_id, state, run_type FROM dag_run WHERE queued_at >= to_timestamp(:t) ORDER BY queued_at", {"t": since})


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.25) -> float:
    """Poll ``check()`` until true; return the seconds waited; TimeoutError naming ``what``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - a service still starting answers with errors
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def set_price(store: Path, sku: str, price: str) -> None:
    path = store / "prices.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(f"{sku},{price},CNY,," if ln.startswith(f"{sku},") else ln for ln in lines) + "\n", encoding="utf-8")


def session_of(pid: int) -> int | None:
    """The session id of process ``pid`` (= the pid of the Celery worker that started it, in its own session)."""
    try:
        return os.getsid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def main() -> int:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="kbops-smoke-"))
    cluster = Cluster(work)
    summary: dict[str, Any] = {"work": str(work)}
    try:
        try:
            cluster.check_prerequisites()
        except Missing as exc:
            print(f"SKIP smoke-cluster: {exc}", flush=True)
            return 2
        cluster.setup()
        kbops, airflow = str(BIN / "kbops"), str(BIN / "airflow")
        log("metadata DB: airflow db migrate (PostgreSQL); KB: kbops init + first publish (S3 store)")
        migrate = subprocess.Popen([airflow, "db", "migrate"], env=cluster.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=work)
        cluster.run([kbops, "init"])
        cluster.run([kbops, "sync"], timeout=600)
        cluster.run([kbops, "publish", "--by", "smoke"], timeout=600)
        _, err = migrate.communicate(timeout=600)
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed: {err.decode()[-3000:]}")
        log("starting Airflow (api-server, scheduler, dag-processor, triggerer, 2 Celery workers) and 2 bot replicas")
        cluster.start("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(cluster.api_port)])
        # Workers call the api-server's execution API for every task: start them once it answers.
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{cluster.api_port}/api/v2/monitor/health", timeout=5).status == 200, 180, "the api-server", interval=1)
        cluster.start("scheduler", [airflow, "scheduler"])
        cluster.start("dag-processor", [airflow, "dag-processor"])
        cluster.start("triggerer", [airflow, "triggerer"])
        for n in (1, 2):
            cluster.start(f"worker{n}", [airflow, "celery", "worker", "--concurrency", "2", "--celery-hostname", f"worker{n}@%h", "--without-mingle", "--without-gossip", "--skip-serve-logs"])
        for n, port in enumerate(cluster.replica_ports, start=1):
            env = {**cluster.env, "KBOPS_RELEASE_CACHE": str(work / f"replica{n}-cache"), "KBOPS_INDEX_DIR": str(work / f"replica{n}-no-index")}
            cluster.start(f"replica{n}", [kbops, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env)
        wait_for(lambda: cluster.serves("299.00"), 180, "both replicas serving the first release (299.00)")
        log("both replicas serve the first release")
        wait_for(lambda: "1" in cluster.run([str(BIN / "python"), "-c", _NUMSUB, cluster.env["KBOPS_EVENTS_URL"]], timeout=30), 240,
                 "the triggerer listening on the events channel (kb_ingest's AssetWatcher)", interval=1)
        # Unpausing starts one scheduled run of each DAG: let them finish, so the event's run is not queued behind them.
        wait_for(lambda: cluster.runs_since(0) and not [r for r in cluster.runs_since(0) if r.state in ("queued", "running")], 300,
                 "the first scheduled runs to finish", interval=1)
        summary["cluster_ready_s"] = round(time.monotonic() - started, 1)
        log("triggerer is listening, startup runs done; changing the price and sending the event")

        # 1. Freshness: event -> new answer on both replicas.
        t_event_wall = time.time()
        set_price(cluster.store, SKU, "259.00")
        t0 = time.monotonic()
        cluster.run([kbops, "notify", "prices", "--reason", "smoke: price 299.00 -> 259.00"])
        wait_for(lambda: cluster.serves("259.00"), 240, "both replicas serving the new price (259.00)")
        summary["freshness_s"] = round(time.monotonic() - t0, 1)
        log(f"freshness: event -> 259.00 served on both replicas in {summary['freshness_s']} s")
        summary["freshness_breakdown_s"] = cluster.breakdown(t_event_wall)
        runs = cluster.runs_since(t_event_wall - 1)
        summary["event_runs"] = [[r.dag_id, r.run_type, r.state] for r in runs]
        if not any(r.dag_id == "kb_ingest" and r.run_type == "asset_triggered" for r in runs):
            raise AssertionError(f"no asset-triggered kb_ingest run after the event: {summary['event_runs']}")

        # 2. Worker loss mid-task: the task is retried on the other worker, nothing is lost.
        t_kill_wall = time.time()
        set_price(cluster.store, SKU, "249.00")
        cluster.run([kbops, "notify", "prices", "--reason", "smoke: price 259.00 -> 249.00 (a worker dies)"])
        workers = {cluster.procs[f"worker{n}"].pid: f"worker{n}" for n in (1, 2)}
        victim: dict[str, Any] = {}

        def running_on_a_worker() -> bool:
            for row in cluster.ti_rows(t_kill_wall - 1):
                if row.state == "running" and row.pid and session_of(row.pid) in workers:
                    victim.update(task=f"{row.dag_id}.{row.task_id}", map_index=row.map_index, worker=workers[session_of(row.pid)], pid=row.pid)
                    return True
            return False

        wait_for(running_on_a_worker, 180, "a kbops task running on a Celery worker", interval=0.1)
        worker_pid = next(pid for pid, name in workers.items() if name == victim["worker"])
        os.killpg(worker_pid, signal.SIGKILL)
        log(f"killed {victim['worker']} (SIGKILL, whole process group) while it ran {victim['task']}")
        summary["killed"] = victim
        wait_for(lambda: cluster.serves("249.00"), 300, "both replicas serving 249.00 after the worker was killed")
        dag_id, task_id = victim["task"].split(".", 1)
        rows = [r for r in cluster.ti_rows(t_kill_wall - 1) if r.dag_id == dag_id and r.task_id == task_id and r.map_index == victim["map_index"]]
        summary["killed_task_after"] = [[r.state, r.try_number] for r in rows]
        if not rows or rows[0].state != "success" or rows[0].try_number < 2:
            raise AssertionError(f"the killed task was not retried to success: {summary['killed_task_after']}")
        wait_for(lambda: all(r.state in ("success", "skipped") for r in cluster.runs_since(t_kill_wall - 1)), 120, "every run after the kill finished")
        summary["runs_after_kill"] = [[r.dag_id, r.run_type, r.state] for r in cluster.runs_since(t_kill_wall - 1)]
        # 3. Visibility: kbops' result summaries are in the Airflow task logs (loggers kbops.*).
        logs = [p for p in (work / "airflow" / "logs").rglob("*.log") if "task_id=sync_source" in str(p)]
        summary["task_log_summary"] = next((ln.strip()[:200] for p in logs for ln in p.read_text(errors="replace").splitlines() if "sync_source: source=prices" in ln), None)
        if summary["task_log_summary"] is None:
            raise AssertionError(f"no kbops result summary in the sync_source task logs ({len(logs)} files)")
        summary["ok"] = True
        return 0
    except Exception as exc:
        summary["ok"] = False
        summary["error"] = f"{type(exc).__name__}: {exc}"
        for name in ("scheduler", "triggerer", "worker1", "worker2", "replica1"):
            path = work / f"{name}.log"
            if path.exists():
                print(f"--- last lines of {name}.log ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]), flush=True)
        return 1
    finally:
        cluster.stop()
        summary["total_s"] = round(time.monotonic() - started, 1)
        print("SMOKE " + json.dumps(summary), flush=True)
        if summary.get("ok"):
            print(f"freshness latency (event -> new answer on both replicas): {summary.get('freshness_s')} s", flush=True)
            shutil.rmtree(work, ignore_errors=True)


_NUMSUB = r"""
import sys, redis
r = redis.Redis.from_url(sys.argv[1])
print(dict(r.pubsub_numsub("kbops.source_changed")).get(b"kbops.source_changed", 0) and 1 or 0)
"""


if __name__ == "__main__":
    sys.exit(main())
