"""Embedding throughput and agreement: sentence-transformers' plain encode() vs kbops' backends.

    .venv/bin/python bench/bench_embed.py [--per-language 1500] [--repeat 3] [--queries 200]

Texts are real: Bitext customer utterances (English) and JDDC customer turns
(Chinese) from $KBOPS_DATASETS (default ../shared/datasets). In one run, on the
same texts, it times sentence-transformers' ``encode()`` with its defaults
(the reference) and ``Embedder.encode`` for each backend (no cache), repeating
each measurement ``--repeat`` times interleaved and quoting medians; reports
texts/s, the speed ratio to the reference, the cosine of every vector to its
reference vector (min, 1st percentile and median, per language), and the
latency of one query (``encode_query``; the reference: ``encode([q])``) as
p50/p99. ONNX models are built into a temporary directory, so their one-off
build time is reported too.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

from kbops.config import Settings  # noqa: E402
from kbops.index.embedder import Embedder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def datasets() -> Path:
    for c in (os.environ.get("KBOPS_DATASETS"), str(ROOT.parent / "shared" / "datasets")):
        if c and Path(c).is_dir():
            return Path(c)
    raise SystemExit("error: no datasets directory; set KBOPS_DATASETS to the shared datasets folder")


def load_texts(per_language: int) -> tuple[list[str], list[str]]:
    """Distinct Bitext utterances and JDDC customer turns, ``per_language`` of each (spread evenly)."""
    d = datasets()
    with (d / "bitext" / "bitext_customer_support_4514.csv").open(encoding="utf-8") as fh:
        en = list(dict.fromkeys(r["instruction"].strip() for r in csv.DictReader(fh) if r["instruction"].strip()))
    zh: list[str] = []
    with (d / "jddc" / "chat_0.1per.txt").open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 7 and parts[2] == "0" and parts[6].strip():
                zh.append(parts[6].strip())
    zh = list(dict.fromkeys(zh))

    def spread(xs: list[str]) -> list[str]:
        step = max(1, len(xs) // per_language)
        return xs[::step][:per_language]

    return spread(en), spread(zh)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-language", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backends", default="onnx,onnx-int8,torch")
    parser.add_argument("--batch-sizes", default="", help="comma list: also time the ONNX backends at these batch sizes")
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    en, zh = load_texts(args.per_language)
    texts = en + zh
    model_dir = Settings.load(env={}, config_file=None).embedding_model
    reference_model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    plain = lambda xs: reference_model.encode(xs, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)  # noqa: E731
    plain(texts[:64])
    print(f"{len(en)} English + {len(zh)} Chinese texts; torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}")

    with tempfile.TemporaryDirectory() as tmp:
        embedders: dict[str, Embedder] = {}
        for backend in args.backends.split(","):
            started = time.perf_counter()
            e = Embedder(model_dir, None, backend=backend, models_dir=Path(tmp) / "models")
            e.encode(texts[:64])  # builds (ONNX) / loads the model and warms it
            what = "loaded" if backend == "torch" else "exported from the local model, built and loaded"
            print(f"  {backend}: {what} in {time.perf_counter() - started:.1f}s")
            embedders[backend] = e
        runs: dict[str, list[float]] = {"plain encode()": []}
        vectors: dict[str, np.ndarray] = {}
        sweep = [int(b) for b in args.batch_sizes.split(",") if b]
        for _ in range(args.repeat):
            started = time.perf_counter()
            vectors["plain encode()"] = plain(texts)
            runs["plain encode()"].append(time.perf_counter() - started)
            for backend, e in embedders.items():
                for bs in [e.batch_size] + ([b for b in sweep if b != e.batch_size] if backend != "torch" else []):
                    name = backend if bs == e.batch_size else f"{backend} (batch {bs})"
                    e.batch_size, default = bs, e.batch_size
                    started = time.perf_counter()
                    vectors[name] = e.encode(texts)
                    runs.setdefault(name, []).append(time.perf_counter() - started)
                    e.batch_size = default
        ref = vectors["plain encode()"]
        base = statistics.median(runs["plain encode()"])
        n_en = len(en)
        print(f"\nthroughput, {len(texts)} texts, median of {args.repeat} interleaved runs")
        print(f"{'':28} {'texts/s':>8} {'×plain':>7} {'en cos min':>10} {'p1':>7} {'median':>7} {'zh cos min':>10} {'p1':>7} {'median':>7}")
        for name, times in runs.items():
            t = statistics.median(times)
            cos = (vectors[name] * ref).sum(axis=1)
            c_en, c_zh = cos[:n_en], cos[n_en:]
            print(
                f"{name:28} {len(texts) / t:8.0f} {base / t:7.2f} {c_en.min():10.4f} {np.percentile(c_en, 1):7.4f} {np.median(c_en):7.4f}"
                f" {c_zh.min():10.4f} {np.percentile(c_zh, 1):7.4f} {np.median(c_zh):7.4f}"
            )

        queries = [q for pair in zip(en, zh) for q in pair][: args.queries]
        lat: dict[str, list[float]] = {"plain encode([q])": []}
        for q in queries:  # interleaved, so load on the shared machine hits every backend alike
            started = time.perf_counter()
            plain([q])
            lat["plain encode([q])"].append((time.perf_counter() - started) * 1000)
            for backend, e in embedders.items():
                started = time.perf_counter()
                e.encode_query(q)
                lat.setdefault(f"{backend} encode_query", []).append((time.perf_counter() - started) * 1000)
        print(f"\nsingle query, {len(queries)} queries (en and zh alternating)")
        print(f"{'':28} {'p50 ms':>8} {'p99 ms':>8}")
        for name, values in lat.items():
            print(f"{name:28} {statistics.median(values):8.2f} {pct(values, 0.99):8.2f}")


if __name__ == "__main__":
    main()
