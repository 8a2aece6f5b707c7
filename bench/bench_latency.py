"""Query latency on a large KB: end to end (embedding included), FAISS alone, lexical alone, HTTP.

    .venv/bin/python bench/bench_latency.py [--products 50000] [--queries 300]

Builds (or reuses, via the embedding cache in var/bench/) a KB of 2 × P
price entries (zh + en) from a generated store, publishes it, then times
`Retriever.search` for English and Chinese questions after 200 untimed ones
(each embedded on a helper thread while its lexical channel scores it,
interleaved with the same question about the next product embedded in the
request's thread, as before the helper), the FAISS search and the lexical
scoring separately, and `POST /search` through
a real uvicorn server on 127.0.0.1. Reports p50 / p99 in milliseconds, the release size on
disk, the index type the release chose, and the memory the loaded release
takes in the serving process (resident set growth while loading it).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_cycle import SOURCES, write  # noqa: E402

from kbops.config import Settings  # noqa: E402
from kbops.db import init_db  # noqa: E402
from kbops.index import release as rel  # noqa: E402
from kbops.index.confidence import model_for  # noqa: E402
from kbops.pipeline import ingest, publish  # noqa: E402
from kbops.serve.retriever import Retriever  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(fn, items) -> list[float]:
    out = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=50000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "sources.toml").write_text(SOURCES, encoding="utf-8")
        write(root, args.products, set())
        settings = Settings.load(env={"KBOPS_HOME": str(root / "home"), "KBOPS_SOURCES": str(root / "sources.toml"), "KBOPS_EMBED_CACHE": str(Path("var/bench/embeddings.sqlite").resolve())})
        init_db(settings)
        ingest(settings)
        built = publish(settings)["build"]
        release_dir = rel.releases_dir(settings.index_dir) / built["release_id"]
        size = sum(p.stat().st_size for p in release_dir.iterdir())
        bot = Retriever(settings)
        _ = bot.embedder.dim  # load the model first: its memory is not the release's
        rss_before = _rss_mb()
        started = time.perf_counter()
        loaded = bot.release()
        load_s = time.perf_counter() - started
        rss_release = _rss_mb() - rss_before
        picks = [i * 7919 % args.products for i in range(args.queries)]
        en = [f"How much does the Lumi product {i:06d} cost?" for i in picks]
        zh = [f"鹿米{i:06d}号商品多少钱" for i in picks]
        # The calibrated dense weight decides whether a query is embedded at all (0: the lexical channel alone).
        weights = {lang: model_for(loaded.manifest, lang, settings).dense_weight for lang in ("en", "zh")}
        bot.search(en[0])  # warm the model
        vecs = bot.embedder.encode(en)  # the queries' vectors for the FAISS-alone row (not timed)
        bot.search(zh[0])  # and the Chinese reader
        # Warm-up, untimed: questions about other products (the first queries fill what a serving process keeps:
        # the hit entries' token sets, the allocator's and CPU caches).
        warm = [(i + 2) % args.products for i in picks[:100]]
        for i in warm:
            bot.search(f"How much does the Lumi product {i:06d} cost?")
            bot.search(f"鹿米{i:06d}号商品多少钱")
        # Each question alternately embedded on a helper thread (QueryVectors.encode_query_soon) and, for the
        # same question about the next product, in the request's thread: the two in one interleaved run, so
        # neither gets the other's warm-up. Fresh texts: no vector is remembered.
        helpers = bot.queries.helpers

        def both(questions: list[str], others: list[str]) -> tuple[list[float], list[float]]:
            helped, inline = [], []
            for q, other in zip(questions, others):
                helped += timed(bot.search, [q])
                bot.queries.helpers = 0
                try:
                    inline += timed(bot.search, [other])
                finally:
                    bot.queries.helpers = helpers
            return helped, inline

        others = [(i + 1) % args.products for i in picks]
        en_helped, en_inline = both(en, [f"How much does the Lumi product {i:06d} cost?" for i in others])
        zh_helped, zh_inline = both(zh, [f"鹿米{i:06d}号商品多少钱" for i in others])
        rows = {
            f"end to end, English ({_path(weights['en'])})": en_helped,
            f"end to end, Chinese ({_path(weights['zh'])})": zh_helped,
            "  the same, embedded in the request's thread, English": en_inline,
            "  the same, embedded in the request's thread, Chinese": zh_inline,
            f"FAISS search alone ({loaded.manifest['index_type']}, k=50)": timed(lambda v: loaded.index.search(v.reshape(1, -1), 50), vecs),
            "lexical scoring alone (English query)": timed(lambda q: loaded.lexical.scores(q), en),
            "lexical scoring alone (Chinese query)": timed(lambda q: loaded.lexical.scores(q), zh),
            "query embedding alone, English (MiniLM)": timed(bot.embedder.encode_query, en[:100]),
            "query embedding alone, Chinese (the Chinese reader)": timed(bot.embedder.encode_query, zh[:100]),
        }
        print(f"KB: {built['entries']:,} entries, {built['vectors']:,} vectors, index {loaded.manifest['index_type']}; "
              f"release on disk {size / 1e6:.0f} MB; load + verify {load_s:.1f}s; memory of the loaded release {rss_release:.0f} MB\n")
        print(f"calibrated dense weight: English {weights['en']}, Chinese {weights['zh']} (0: the query is not embedded); "
              f"query-vector helper threads: {helpers} (embedding while the lexical channel scores)\n")
        print(f"{'':56} {'p50 ms':>8} {'p99 ms':>8}")
        for name, values in rows.items():
            print(f"{name:56} {statistics.median(values):8.2f} {pct(values, 0.99):8.2f}", flush=True)
        # Last, and after the in-process rows are printed: a server that fails to start loses nothing measured.
        bot.close()
        values = _http(settings, en[:100])
        print(f"{'HTTP POST /search (uvicorn, loopback), English':56} {statistics.median(values):8.2f} {pct(values, 0.99):8.2f}")


def _path(dense_weight: float) -> str:
    """What an end-to-end query does at this calibrated dense weight."""
    return f"embed + FAISS + lexical + fuse, dense weight {dense_weight}" if dense_weight > 0 else "lexical only: dense weight 0"


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _http(settings: Settings, queries: list[str]) -> list[float]:
    import httpx
    import uvicorn

    from kbops.serve.api import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        # The server listens once its startup has loaded and verified the release (seconds at 100k entries).
        deadline = time.monotonic() + 300
        while True:
            try:
                if client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the HTTP server did not answer /healthz within 300 s")
            time.sleep(0.2)
        client.post("/search", json={"query": queries[0]})
        out = timed(lambda q: client.post("/search", json={"query": q}).raise_for_status(), queries)
    server.should_exit = True
    thread.join(timeout=10)
    return out


if __name__ == "__main__":
    main()
