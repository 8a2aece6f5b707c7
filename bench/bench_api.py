"""Bot API throughput and latency: one `kbops serve` replica, 1 worker vs N workers, in the same run.

    .venv/bin/python bench/bench_api.py [--workers 1,2] [--query-cache 10000,0] [--query-batch 16] [--query-helpers auto,0] [--clients 16] [--seconds 15] [--repeat 3] [--rate 200]

Builds the sample store's KB the way the tests do (ingest, approve everything queued, publish;
the embedding cache is kept in var/bench/), then for each repeat starts a real
``kbops serve --workers W`` for every W in ``--workers`` (interleaved, so a noisy
neighbour hits every configuration alike) and drives ``POST /search`` from
``--clients`` threads, each on its own keep-alive connection, with questions
about the store's products and policies in English and Chinese plus questions
the KB cannot answer (handoffs), all distinct within a client's cycle — so
every question is asked many times over a run. ``--query-cache`` compares the
server's query-vector memory (``KBOPS_QUERY_CACHE``, kbops/serve/retriever.py)
on, its best case (every repeat skips the model), with it off (``0``: every
question costs a model run, as if each were new), in the same run; ``--query-batch
16,1`` compares encoding the questions that arrive together in one model run
(``KBOPS_QUERY_BATCH``) with encoding each alone:

* **closed loop** (the default): every client sends its next question as soon as
  the previous answer arrived — the replica's ceiling; with C clients,
  throughput = C / mean latency (Little's law);
* **open loop** (``--rate R``): the clients together send R requests/s on a fixed
  schedule; a request's latency counts from when it was *due*, so a stalled
  server cannot hide its queue (no coordinated omission).

Reports, per configuration, the medians over the repeats of requests/s, p50 and
p99 latency (ms), errors, and the CPU seconds the server (all its processes)
and the load generator itself used per 1,000 requests — the load generator
shares the machine's cores with the server, so its own cost is shown, not
hidden. ``--json`` prints every run as JSON as well. The server runs with ``--no-access-log``
(the query log keeps every query). ``--query-log`` only times, in-process, what
logging a query costs the request: a commit per query (``log_answer``) vs the
server's queued writer (``QueryLogWriter.submit``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sample_store"
KBOPS = Path(sys.executable).parent / "kbops"


def prepare(root: Path, sample: Path = SAMPLE) -> dict[str, str]:
    """The sample store's KB (or another store laid out as ``examples/sample_store``) under ``root``, every candidate
    approved, published and active; the environment that names it."""
    from kbops.config import Settings
    from kbops.db import init_db, session_scope
    from kbops.pipeline import activate_release, build_release, decide, ingest
    from kbops.review import queue

    store = root / "store"
    shutil.copytree(sample, store)
    env = {
        "KBOPS_HOME": str(root / "home"),
        "KBOPS_SOURCES": str(store / "sources.toml"),
        "KBOPS_EMBED_CACHE": str(ROOT / "var" / "bench" / "embeddings.sqlite"),
        "KBOPS_MODELS_DIR": os.environ.get("KBOPS_MODELS_DIR", str(ROOT / "var" / "models")),
        # The embedder the servers will run (they inherit this environment): the release must be built with it.
        **{k: v for k, v in os.environ.items() if k.startswith(("KBOPS_EMBED_BACKEND", "KBOPS_EMBEDDING_MODEL"))},
    }
    settings = Settings.load(env=env, config_file=None)
    init_db(settings)
    ingest(settings)
    with session_scope(settings) as db:
        waiting = [item.id for item in queue.list_items(db, "open", 10_000)]
    if waiting:
        decide(settings, waiting, "approve", by="bench")
    activate_release(settings, build_release(settings).release_id)
    return env


def questions() -> list[str]:
    """What customers ask the sample store: prices, stock, shipping, warranty, policies, and things it cannot answer."""
    import csv

    with (SAMPLE / "products.csv").open(encoding="utf-8") as fh:
        products = list(csv.DictReader(fh))
    out = []
    for p in products:
        en, zh = p["name_en"], p["name_zh"]
        out += [
            f"How much is the {en}?", f"Is the {en} in stock?", f"What is the warranty on the {en}?", f"How is the {en} shipped?",
            f"{zh}多少钱", f"{zh}有货吗", f"{zh}保修多久", f"{zh}怎么发货",
        ]
    out += [
        "How long does a refund take?", "Can I return an opened item?", "Do you issue invoices?", "How do I become a member?",
        "退款多久能到账", "拆封了还能退货吗", "可以开发票吗", "怎么成为会员", "降价了能补差价吗", "运费怎么算",
        "Do you sell spaceships?", "Can I pay with seashells?", "你们卖火箭吗", "今天天气怎么样",
    ]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += (int(stats[p][11]) + int(stats[p][12])) / tick
        todo += children.get(p, [])
    return total


class Server:
    """``kbops serve --workers W`` on a free port, as a subprocess (its own process group)."""

    def __init__(self, env: dict[str, str], workers: int, token: str | None, query_cache: int | None = None, query_batch: int | None = None,
                 query_helpers: str = "auto"):
        self.port = _free_port()
        full_env = {**os.environ, **env, "HF_HUB_OFFLINE": "1"}
        if query_cache is not None:
            full_env["KBOPS_QUERY_CACHE"] = str(query_cache)
        if query_batch is not None:
            full_env["KBOPS_QUERY_BATCH"] = str(query_batch)
        if query_helpers != "auto":
            full_env["KBOPS_QUERY_HELPERS"] = query_helpers
        if token:
            full_env["KBOPS_API_TOKEN"] = token
        cmd = [str(KBOPS), "serve", "--port", str(self.port), "--workers", str(workers), "--no-access-log"]
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self.headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"kbops serve exited {self.proc.returncode}: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("kbops serve did not become ready")

    def stop(self) -> None:
        """SIGTERM (a clean shutdown: the query log is flushed), SIGKILL after 30 s."""
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _client(port: int, headers: dict[str, str], bodies: list[bytes], start: float, stop: float, interval: float | None,
            offset: float, latencies: list[float], errors: list[int]) -> None:
    """One client: a keep-alive connection sending ``bodies`` in turn until ``stop``.

    Closed loop (``interval`` None): the next request right after an answer. Open loop: one
    request every ``interval`` seconds from ``start + offset``; latency counts from when it was due."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = 0
    due = start + offset
    while True:
        if interval is not None:
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            sent = due
            due += interval
        else:
            sent = time.perf_counter()
        if sent >= stop:
            break
        try:
            conn.request("POST", "/search", body=bodies[i % len(bodies)], headers=headers)
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        done = time.perf_counter()
        latencies.append((done - sent) * 1000)
        if not ok:
            errors.append(1)
        i += 1
    conn.close()


def load(server: Server, clients: int, seconds: float, rate: float | None, warmup: float = 2.0) -> dict[str, float]:
    """Drive the server for ``seconds`` (after ``warmup``); throughput, latency percentiles, errors, CPU per 1,000 requests."""
    qs = questions()
    per_client = [[json.dumps({"query": qs[(c * 7 + k) % len(qs)]}, ensure_ascii=False).encode() for k in range(len(qs))] for c in range(clients)]
    interval = clients / rate if rate else None
    # Warm-up: every worker loads its model and release on its first requests; not measured.
    threads = [threading.Thread(target=_client, args=(server.port, server.headers, per_client[c], time.perf_counter(), time.perf_counter() + warmup, None, 0, [], [])) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat: list[list[float]] = [[] for _ in range(clients)]
    errs: list[list[int]] = [[] for _ in range(clients)]
    cpu_server0, cpu_self0 = _tree_cpu(server.proc.pid), _self_cpu()
    start = time.perf_counter() + 0.05
    stop = start + seconds
    threads = [
        threading.Thread(target=_client, args=(server.port, server.headers, per_client[c], start, stop, interval, (c / clients) * (interval or 0), lat[c], errs[c]))
        for c in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = max(time.perf_counter() - start, 1e-9)
    cpu_server, cpu_self = _tree_cpu(server.proc.pid) - cpu_server0, _self_cpu() - cpu_self0
    all_lat = sorted(x for one in lat for x in one)
    n = len(all_lat)
    return {
        "requests": n,
        "rps": n / elapsed,
        "p50_ms": _pct(all_lat, 0.50),
        "p99_ms": _pct(all_lat, 0.99),
        "errors": sum(len(e) for e in errs),
        "server_cpu_ms_per_req": 1000 * cpu_server / max(n, 1),
        "loadgen_cpu_ms_per_req": 1000 * cpu_self / max(n, 1),
        "server_cpu_s": cpu_server,
        "loadgen_cpu_s": cpu_self,
    }


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def query_log_cost(env: dict[str, str], n: int = 300) -> None:
    """In-process: what logging a query costs the request, written at once (``log_answer``) vs queued (``QueryLogWriter``)."""
    from kbops.config import Settings
    from kbops.serve.query_log import QueryLogWriter, log_answer
    from kbops.serve.retriever import Retriever

    settings = Settings.load(env=env, config_file=None)
    answer = Retriever(settings).search("退款多久能到账")

    def timed(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        out = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            out.append((time.perf_counter() - started) * 1000)
        out.sort()
        return statistics.median(out), _pct(out, 0.99)

    sync = timed(lambda: log_answer(settings, answer, latency_ms=1.0, request_id="bench"))
    writer = QueryLogWriter(settings)
    writer.start()
    queued = timed(lambda: writer.submit(answer, latency_ms=1.0, request_id="bench"))
    started = time.perf_counter()
    writer.close()
    print(f"query log per request, {n} rows: log_answer (a commit each) p50 {sync[0]:.3f} ms, p99 {sync[1]:.3f} ms; "
          f"QueryLogWriter.submit p50 {queued[0]:.3f} ms, p99 {queued[1]:.3f} ms; close with the queue written {time.perf_counter() - started:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to compare (default 1,2)")
    parser.add_argument("--query-cache", default="10000,0", help="comma-separated KBOPS_QUERY_CACHE sizes to compare (default 10000,0: on, off)")
    parser.add_argument("--query-batch", default="16", help="comma-separated KBOPS_QUERY_BATCH sizes to compare (default 16; 1: each question alone)")
    parser.add_argument("--query-helpers", default="auto", help="comma-separated KBOPS_QUERY_HELPERS to compare (default auto: one fewer than the cores; 0: none)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per run (default 15)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration; medians are reported (default 3)")
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests/s offered by all clients together (default: closed loop)")
    parser.add_argument("--token", default="bench-token", help="KBOPS_API_TOKEN for the server ('' for none)")
    parser.add_argument("--json", action="store_true", help="also print every run as JSON")
    parser.add_argument("--query-log", action="store_true", help="only time the query-log write per request (in-process), no server")
    args = parser.parse_args()
    if args.query_log:
        with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
            query_log_cost(prepare(Path(tmp)))
        return
    counts = [int(w) for w in args.workers.split(",")]
    caches = [int(c) for c in args.query_cache.split(",")]
    batches = [int(b) for b in args.query_batch.split(",")]
    helpers = args.query_helpers.split(",")
    modes: list[float | None] = [None] + ([args.rate] if args.rate else [])
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        env = prepare(Path(tmp))
        runs: dict[tuple[int, int, int, str, float | None], list[dict[str, float]]] = {}
        for r in range(args.repeat):
            for workers, cache, batch, helper in [(w, c, b, h) for w in counts for c in caches for b in batches for h in helpers]:
                server = Server(env, workers, args.token or None, cache, batch, helper)
                try:
                    server.wait_ready()
                    for mode in modes:
                        result = load(server, args.clients, args.seconds, mode)
                        runs.setdefault((workers, cache, batch, helper, mode), []).append(result)
                        print(f"  run {r + 1}: workers={workers} query cache={cache} batch={batch} helpers={helper} {'closed loop' if mode is None else f'open loop {mode:g}/s'}: "
                              f"{result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, errors {result['errors']}", flush=True)
                finally:
                    server.stop()
        print(f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {args.clients} clients, {args.seconds:g} s per run, "
              f"median of {args.repeat} runs\n")
        header = f"{'workers':>7} {'query cache':>11} {'batch':>5} {'helpers':>7} {'load':>14}"
        header += f" {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'server CPU ms/req':>17} {'loadgen CPU ms/req':>18}"
        print(header)
        for (workers, cache, batch, helper, mode), results in runs.items():
            med = {k: statistics.median(x[k] for x in results) for k in results[0]}
            load_name = "closed loop" if mode is None else f"open {mode:g}/s"
            print(f"{workers:>7} {cache:>11} {batch:>5} {helper:>7} {load_name:>14} {med['rps']:7.0f} {med['p50_ms']:7.1f} {med['p99_ms']:7.1f} {med['errors']:6.0f} "
                  f"{med['server_cpu_ms_per_req']:17.2f} {med['loadgen_cpu_ms_per_req']:18.2f}")
        if args.json:
            print(json.dumps([{"workers": w, "query_cache": c, "query_batch": b, "query_helpers": h, "rate": m, "runs": rs}
                              for (w, c, b, h, m), rs in runs.items()], indent=2))


if __name__ == "__main__":
    main()
