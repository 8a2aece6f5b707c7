"""Exact vs IVF (vs HNSW) search by index size: where the release switches index type.

    .venv/bin/python bench/bench_ann.py [--datasets ../shared/datasets] [--sizes 5000,10000,20000,30000,50000,100000]

Vectors are real: the bundled model's embeddings of JDDC customer turns and
Bitext utterances (through the embedding cache in var/bench/). Sizes beyond
the real texts are filled with jittered copies of them (v + 0.3·noise,
renormalised), which keeps the real data's neighbourhood structure; queries
are held-out real texts. For each size: single-query k=50 search latency on
one thread (what the bot does: p50/p99), build time, and recall@10 of IVF /
HNSW against the exact result. The release uses IVF from ``ivf_threshold``
vectors on (kbops/index/release.py); this is the measurement behind it.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import time
from pathlib import Path

import faiss
import numpy as np

from kbops.config import Settings
from kbops.index.embedder import Embedder
from kbops.index.release import flat_index, ivf_index


def texts(datasets: Path, limit: int) -> list[str]:
    out: list[str] = []
    jddc = datasets / "jddc" / "chat_0.1per.txt"
    if jddc.is_file():
        for line in jddc.open(encoding="utf-8", errors="replace"):
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 7 and parts[2] == "0" and len(parts[6]) >= 6:
                out.append(parts[6][:200])
    bitext = datasets / "bitext" / "bitext_customer_support_4514.csv"
    if bitext.is_file():
        out += [r["instruction"] for r in csv.DictReader(bitext.open(encoding="utf-8"))]
    out = list(dict.fromkeys(out))
    random.Random(3).shuffle(out)
    return out[:limit]


def timed(index, queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    times, found = [], []
    for q in queries:
        started = time.perf_counter()
        _, ids = index.search(q.reshape(1, -1), 50)
        times.append((time.perf_counter() - started) * 1000)
        found.append(ids[0])
    return times, np.array(found)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f[:10]) & set(e[:10])) / 10 for f, e in zip(found, exact)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=os.environ.get("KBOPS_DATASETS", "../shared/datasets"))
    parser.add_argument("--sizes", default="5000,10000,20000,30000,50000,100000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--nprobe", type=int, default=Settings.ivf_nprobe)
    parser.add_argument("--hnsw", action="store_true", help="also measure HNSW (M=32, efSearch=128)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    settings = Settings.load(env={"KBOPS_EMBED_CACHE": str(Path("var/bench/embeddings.sqlite").resolve())})
    embedder = Embedder.from_settings(settings)
    corpus = texts(Path(args.datasets), 20000)
    if len(corpus) < args.queries * 2:
        raise SystemExit(f"found only {len(corpus)} texts under {args.datasets}; pass --datasets")
    started = time.perf_counter()
    vectors = embedder.encode(corpus)
    print(f"{len(corpus):,} real texts embedded in {time.perf_counter() - started:.0f}s (cache hits {embedder.stats.hits:,})")
    queries, base = vectors[: args.queries], vectors[args.queries :]
    rng = np.random.default_rng(0)
    faiss.omp_set_num_threads(1)  # the bot's setting (kbops/serve/retriever.py)
    print(f"\n{'vectors':>8}  {'exact p50/p99 ms':>17}  {'IVF p50/p99 ms':>15}  {'IVF R@10':>8}  {'IVF build s':>11}" + ("  HNSW p50/p99 ms  HNSW R@10  HNSW build s" if args.hnsw else ""))
    for n in sizes:
        reps = [base]
        while sum(len(r) for r in reps) < n:
            jitter = base + 0.3 * rng.standard_normal(base.shape).astype(np.float32) / np.sqrt(base.shape[1])
            reps.append(jitter / np.linalg.norm(jitter, axis=1, keepdims=True))
        data = np.ascontiguousarray(np.concatenate(reps)[:n], dtype=np.float32)
        ids = np.arange(n, dtype=np.int64)
        flat = flat_index(data.shape[1], data, ids)
        t_flat, exact = timed(flat, queries)
        faiss.omp_set_num_threads(2)
        t0 = time.perf_counter()
        ivf = ivf_index(data.shape[1], data, ids, args.nprobe)
        ivf_build = time.perf_counter() - t0
        faiss.omp_set_num_threads(1)
        t_ivf, found = timed(ivf, queries)
        line = (f"{n:>8,}  {statistics.median(t_flat):7.2f} / {pct(t_flat, .99):6.2f}  {statistics.median(t_ivf):6.2f} / {pct(t_ivf, .99):5.2f}"
                f"  {recall(found, exact):8.3f}  {ivf_build:11.1f}")
        if args.hnsw:
            faiss.omp_set_num_threads(2)
            t0 = time.perf_counter()
            hnsw = faiss.IndexHNSWFlat(data.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
            hnsw.add(data)
            hnsw_build = time.perf_counter() - t0
            hnsw.hnsw.efSearch = 128
            faiss.omp_set_num_threads(1)
            t_h, found_h = timed(hnsw, queries)
            line += f"  {statistics.median(t_h):6.2f} / {pct(t_h, .99):5.2f}  {recall(found_h, exact):9.3f}  {hnsw_build:12.1f}"
        print(line, flush=True)
    print(f"\nIVF: 2·√n lists, nprobe={args.nprobe}; one search thread; k=50")


if __name__ == "__main__":
    main()
