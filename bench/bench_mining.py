"""Chat-mining throughput and incremental mining on real JDDC chats (issue 4).

    .venv/bin/python bench/bench_mining.py --copies 10 --repeat 3

1. Throughput without embedding: the JDDC sample copied ``--copies`` times
   (session ids suffixed, so ~12,000 turns × copies) is read, normalised and
   scrubbed (kbops.sources.chats), exchanges are found (mine_session), grouped
   (sparse pair search) and proposed. Turns per second, median of ``--repeat``.
   The same run times the previous grouping (greedy leader clustering comparing
   each exchange with every group, O(N·G)) on the same exchanges.
2. Embedding, separately: question texts through the shared embedder
   (unk_share + encode of the readable ones), cold cache and warm cache.
3. Incremental mining in a real KB (SQLite, kbops sync + extract, warm
   embedding cache): day 1 = 80 % of the sessions, day 2 adds the other 20 %;
   day 2 mines only the new sessions; a re-run with nothing new mines none.
   Compared with syncing and mining all sessions into an empty KB.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from kbops.config import Settings  # noqa: E402
from kbops.db import init_db  # noqa: E402
from kbops.extract.chats import group_exchanges, group_proposal, mine_session  # noqa: E402
from kbops.extract.mining_eval import split_sessions  # noqa: E402
from kbops.index.embedder import Embedder  # noqa: E402
from kbops.index.similarity import dense_view  # noqa: E402
from kbops.pipeline import extract_candidates, sync_sources  # noqa: E402
from kbops.sources.chats import Session, read_chats  # noqa: E402
from kbops.sources.config import SourceConfig  # noqa: E402
from kbops.text import tokens  # noqa: E402


def datasets() -> Path:
    for c in (os.environ.get("KBOPS_DATASETS"), str(ROOT.parent / "shared" / "datasets")):
        if c and Path(c).is_dir():
            return Path(c)
    sys.exit("error: datasets not found; set KBOPS_DATASETS to the folder holding jddc/")


def copies_file(src: Path, dest: Path, copies: int) -> int:
    lines = src.read_text(encoding="utf-8").splitlines()
    with dest.open("w", encoding="utf-8") as f:
        for c in range(copies):
            for line in lines:
                sid, rest = line.split("\t", 1)
                f.write(f"{sid}-{c}\t{rest}\n")
    return len(lines) * copies


def old_grouping(exchanges):
    """The previous grouping: every exchange compared with every group leader (dict cosines)."""

    def vectors(texts):
        sets = [set(tokens(t)) for t in texts]
        df = defaultdict(int)
        for s in sets:
            for tok in s:
                df[tok] += 1
        n = len(sets)
        out = []
        for s in sets:
            w = {tok: math.log((n + 1) / (df[tok] + 0.5)) for tok in s}
            norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
            out.append({tok: v / norm for tok, v in w.items()})
        return out

    def cos(a, b):
        if len(a) > len(b):
            a, b = b, a
        return sum(w * b.get(t, 0.0) for t, w in a.items())

    groups = defaultdict(list)
    qv, av = vectors([e.question for e in exchanges]), vectors([e.answer for e in exchanges])
    out = []
    for ex, q, a in zip(exchanges, qv, av):
        best, best_sim = None, 0.0
        for g in groups[ex.lang]:
            qs, as_ = cos(q, g[0]), cos(a, g[1])
            sim = max(qs if qs >= 0.5 else 0.0, as_ if as_ >= 0.8 else 0.0)
            if sim > best_sim:
                best, best_sim = g, sim
        if best is None:
            best = (q, a, [])
            groups[ex.lang].append(best)
            out.append(best)
        best[2].append(ex)
    return [g[2] for g in out]


def throughput(path: Path, turns: int, repeat: int, old_limit: int) -> dict:
    runs = []
    exchanges = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sessions = [s for s in read_chats(SourceConfig(name="jddc", type="chats", path=path, format="jddc")) if isinstance(s, Session)]
        t1 = time.perf_counter()
        exchanges = sorted((e for s in sessions for e in mine_session(s.key, s.turns, s.sku).exchanges), key=lambda e: (e.session, e.turn))
        t2 = time.perf_counter()
        groups = group_exchanges(exchanges)
        proposals = [p for p in (group_proposal(g, 2) for g in groups) if p]
        t3 = time.perf_counter()
        runs.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0, len(sessions), len(exchanges), len(proposals)))
    med = lambda i: statistics.median(r[i] for r in runs)  # noqa: E731
    subset = exchanges[:old_limit]
    t0 = time.perf_counter()
    group_exchanges(subset)
    new_subset = time.perf_counter() - t0
    t0 = time.perf_counter()
    old_grouping(subset)
    old_subset = time.perf_counter() - t0
    return {
        "turns": turns,
        "sessions": runs[0][4],
        "exchanges": runs[0][5],
        "proposals": runs[0][6],
        "seconds": {"read_normalise_scrub": round(med(0), 3), "exchanges": round(med(1), 3), "group_propose": round(med(2), 3), "total": round(med(3), 3)},
        "turns_per_second": round(turns / med(3)),
        "grouping_vs_previous": {"exchanges": len(subset), "sparse_pairs_s": round(new_subset, 3), "previous_greedy_s": round(old_subset, 3), "ratio": round(old_subset / max(new_subset, 1e-9), 1)},
    }, exchanges


def embedding(settings: Settings, questions: list[str], tmp: Path) -> dict:
    embedder = Embedder(settings.embedding_model, tmp / "emb-bench.sqlite", zh_reader=settings.embed_model_zh)
    _ = embedder.dim  # model load is not part of the figure
    t0 = time.perf_counter()
    view = dense_view(embedder, questions, settings.dense_weight)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    dense_view(embedder, questions, settings.dense_weight)
    warm = time.perf_counter() - t0
    readable = int((view.unk < 1.0).sum())
    return {
        "questions": len(questions),
        "embedded (readable at all)": readable,
        "mean_unk_share": round(float(view.unk.mean()), 3),
        "cold_s": round(cold, 2),
        "cold_questions_per_s": round(len(questions) / cold),
        "warm_s": round(warm, 2),
        "warm_questions_per_s": round(len(questions) / warm),
    }


def incremental(data: Path, tmp: Path, cache: Path) -> dict:
    lines = data.read_text(encoding="utf-8").splitlines()
    keys = sorted({line.split("\t", 1)[0] for line in lines})
    sessions = [Session(k, "zh", None, None) for k in keys]
    day1, _ = split_sessions(sessions)
    day1_keys = {s.key for s in day1}

    def kb(name: str) -> tuple[Settings, Path]:
        home = tmp / name
        chats = home / "chats"
        chats.mkdir(parents=True)
        (home / "sources.toml").write_text('[[sources]]\nname = "jddc"\ntype = "chats"\nformat = "jddc"\npath = "chats"\nglob = "*.txt"\n', encoding="utf-8")
        s = Settings.load(env={"KBOPS_HOME": str(home), "KBOPS_SOURCES": str(home / "sources.toml"), "KBOPS_EMBED_CACHE": str(cache)}, config_file=None)
        init_db(s)
        return s, chats

    def cycle(settings: Settings) -> tuple[float, int]:
        t0 = time.perf_counter()
        sync_sources(settings)
        result = extract_candidates(settings)
        return time.perf_counter() - t0, result.sessions

    # From scratch first: it also warms the embedding cache, so the incremental
    # days below are compared with it on equal terms (model load included in each).
    full, full_chats = kb("full")
    (full_chats / "all.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cycle(full)  # warm-up
    full2, full2_chats = kb("full2")
    (full2_chats / "all.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    full_s, full_n = cycle(full2)
    settings, chats = kb("incremental")
    (chats / "day1.txt").write_text("\n".join(line for line in lines if line.split("\t", 1)[0] in day1_keys) + "\n", encoding="utf-8")
    day1_s, day1_n = cycle(settings)
    (chats / "day2.txt").write_text("\n".join(line for line in lines if line.split("\t", 1)[0] not in day1_keys) + "\n", encoding="utf-8")
    day2_s, day2_n = cycle(settings)
    again_s, again_n = cycle(settings)
    return {
        "day1": {"sessions_mined": day1_n, "seconds": round(day1_s, 2)},
        "day2_incremental": {"sessions_mined": day2_n, "seconds": round(day2_s, 2)},
        "rerun_nothing_new": {"sessions_mined": again_n, "seconds": round(again_s, 2)},
        "all_from_scratch": {"sessions_mined": full_n, "seconds": round(full_s, 2)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=10, help="copies of the JDDC sample (≈12,000 turns each)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--old-limit", type=int, default=3000, help="exchanges for the previous-grouping comparison")
    args = ap.parse_args()
    import json

    data = datasets() / "jddc" / "chat_0.1per.txt"
    settings = Settings.load()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        big = tmp / "jddc_copies.txt"
        turns = copies_file(data, big, args.copies)
        result = {"throughput": None}
        result["throughput"], exchanges = throughput(big, turns, args.repeat, args.old_limit)
        one_copy = [e.question for e in exchanges if e.session.endswith("-0")]
        result["embedding"] = embedding(settings, one_copy, tmp)
        result["incremental"] = incremental(data, tmp, tmp / "emb-incr.sqlite")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
