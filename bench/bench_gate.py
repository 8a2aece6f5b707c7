"""The validation gate: what it catches on the bad-input corpus, and how fast it runs.

    .venv/bin/python bench/bench_gate.py [--rows 2000] [--repeat 3]

1. Catch rate: builds a real KB from the bundled sample store (synced,
   extracted, every candidate approved), then runs the bad-input corpus
   (tests/validate/corpus/bad.jsonl: hostile or broken candidates, four of
   them 1 MB answers; run by bench/gate_corpus.py) and the hand-written good set through
   ``validate_candidates`` — the same path the pipeline uses (facts, exact
   and near-duplicates against the KB, the GX suite, the stored report).
   Reports caught / should-be-caught (and caught for the expected reason)
   and good rows blocked.
2. Throughput, rows/s, medians of ``--repeat`` runs on ``--rows`` realistic
   rows (Bitext instruction/response pairs when $KBOPS_DATASETS is set,
   otherwise the good set repeated):
   * ``gx``: the GX suite alone (``check_rows``, no DB);
   * ``plain``: the obvious alternative — the same rules as a Python loop of
     ``re.search`` calls, no GX — on the same rows;
   * ``full``: ``validate_candidates`` end to end (DB read/write, facts,
     near-duplicate embeddings against the active KB, GX, report) on the
     same rows inserted as candidates; embeddings are cached after the
     first run, as in a steady pipeline, and the first (cold) run is shown too.
3. Near-duplicate threshold (with $KBOPS_DATASETS): one Bitext phrasing per
   intent as the KB, 600 held-out phrasings as new questions; for each
   threshold, how many are proposed as an alternate question and how many of
   those proposals point at the entry of their own intent (precision).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import gate_corpus  # noqa: E402

from kbops.config import Settings  # noqa: E402
from kbops.db import init_db  # noqa: E402
from kbops.index.embedder import Embedder  # noqa: E402
from kbops.pii import PLACEHOLDER  # noqa: E402
from kbops.pipeline import validate_candidates  # noqa: E402
from kbops.text import detect_lang, fingerprint  # noqa: E402
from kbops.validate.gate import BROKEN, LENGTH_BOUNDS, MARKUP, NON_ANSWER, answers_in, check_rows, length_units, private_patterns  # noqa: E402
from kbops.validate.similar import find_near_duplicates  # noqa: E402


def settings_for(root: Path) -> Settings:
    store = root / "store"
    shutil.copytree(ROOT / "examples" / "sample_store", store)
    s = Settings.load(env={"KBOPS_HOME": str(root / "home"), "KBOPS_SOURCES": str(store / "sources.toml"), "KBOPS_EMBED_CACHE": str(root / "embeddings.sqlite")}, config_file=None)
    init_db(s)
    return s


def realistic_rows(n: int) -> list[dict]:
    datasets = os.environ.get("KBOPS_DATASETS") or str(ROOT.parent / "shared" / "datasets")
    path = Path(datasets) / "bitext" / "bitext_customer_support_4514.csv"
    rows = []
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                rows.append({"lang": "en", "question": r["instruction"], "answer": r["response"]})
        source = "Bitext"
    else:
        rows = [{"lang": r["lang"], "question": r["question"], "answer": r["answer"], "evidence": r.get("evidence", {})} for r in gate_corpus.load("good")]
        source = "good set"
    out = [{**rows[i % len(rows)], "id": f"r{i}"} for i in range(n)]
    for i, r in enumerate(out):
        if i >= len(rows):  # repeats get a distinct question so they are not all duplicates
            r["question"] = f"{r['question']} ({i})"
    print(f"throughput rows: {n} from {source}")
    return out


PRIVATE = [re.compile(p) for p in private_patterns()]
NON_ANSWER_RE = re.compile(f"(?i){NON_ANSWER}")
MARKUP_RE = re.compile(f"(?i){MARKUP}")
BROKEN_RE = re.compile(BROKEN)


def plain_check(rows: list[dict]) -> list[list[str]]:
    """The same row rules without GX: a loop of regex searches (the obvious alternative)."""
    seen: dict[str, str] = {}
    out = []
    for row in rows:
        q, a, lang = (row.get("question") or "").strip(), (row.get("answer") or "").strip(), row["lang"]
        reasons = []
        if not q:
            reasons.append("empty_question")
        if not a:
            reasons.append("empty_answer")
        for col, text in (("question", q), ("answer", a)):
            lo, hi = LENGTH_BOUNDS[(col, lang)]
            if not lo <= length_units(text, lang) <= hi:
                reasons.append(f"{col}_length")
        if not (detect_lang(a) in (lang, "und") if a else True) or not answers_in(lang, a):
            reasons.append("language_mismatch")
        both = f"{q}\n{a}"
        if any(p.search(both) for p in PRIVATE):
            reasons.append("private_data")
        if PLACEHOLDER.search(a):
            reasons.append("placeholder")
        if NON_ANSWER_RE.search(a):
            reasons.append("non_answer")
        if MARKUP_RE.search(both):
            reasons.append("markup")
        if BROKEN_RE.search(both):
            reasons.append("broken_text")
        if q:
            fp = fingerprint(q)
            if seen.setdefault(fp, row["id"]) != row["id"]:
                reasons.append("duplicate")
        out.append(reasons)
    return out


def gate_rows(rows: list[dict]) -> list[dict]:
    return [{"candidate_id": i, "entry_key": r["id"], "lang": r["lang"], "question": r["question"], "answer": r["answer"]} for i, r in enumerate(rows)]


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        s = settings_for(root)
        t = time.perf_counter()
        gate_corpus.build_kb(s)
        print(f"sample KB built in {time.perf_counter() - t:.1f} s")

        # 1. catch rate -------------------------------------------------------------
        for name in ("bad", "good"):
            rows = gate_corpus.load(name)
            ids = gate_corpus.insert(s, rows, name)
            t = time.perf_counter()
            result = validate_candidates(s)
            seconds = time.perf_counter() - t
            score = gate_corpus.score(rows, gate_corpus.outcomes(s, ids))
            mb = sum(len(r["answer"].encode("utf-8")) for r in rows) / 1e6
            print(f"\n[{name}] {len(rows)} rows ({mb:.1f} MB of text) validated in {seconds:.1f} s (report {result.report_id})")
            if score["should_catch"]:
                print(f"  caught {score['caught']}/{score['should_catch']} (for the expected reason: {score['caught_for_expected_reason']}); missed: {score['missed'] or 'none'}")
                print(f"  by category: {score['by_category']}")
            print(f"  must pass: {score['must_pass']}, blocked: {len(score['blocked'])} {score['blocked'] or ''}")
            print(f"  near-duplicate proposals: {len(score['flagged_near_duplicate'])}")

        # 2. throughput -------------------------------------------------------------
        rows = realistic_rows(args.rows)
        check_rows(gate_rows(rows[:10]))  # build the GX context once (not timed)
        gx = timed(lambda: check_rows(gate_rows(rows)), args.repeat)
        plain = timed(lambda: plain_check(rows), args.repeat)
        blocked_gx = sum(1 for v in check_rows(gate_rows(rows)) if not v.ok)
        blocked_plain = sum(1 for r in plain_check(rows) if r)
        full = []
        for run in range(args.repeat + 1):
            ids = gate_corpus.insert(s, rows, f"tp{run}")
            t = time.perf_counter()
            validate_candidates(s, candidate_ids=list(ids.values()))
            full.append(time.perf_counter() - t)
        n = len(rows)

        def rate(xs: list[float]) -> float:
            return n / statistics.median(xs)

        print(f"\nthroughput on {n} rows (median of {args.repeat}):")
        print(f"  gx     {rate(gx):8.0f} rows/s  ({statistics.median(gx):.2f} s)  blocked {blocked_gx}")
        print(f"  plain  {rate(plain):8.0f} rows/s  ({statistics.median(plain):.2f} s)  blocked {blocked_plain}  (same rules, no GX)")
        print(f"  full   {rate(full[1:]):8.0f} rows/s  ({statistics.median(full[1:]):.2f} s)  validate_candidates with DB, facts, near-duplicates, report; cold first run {n / full[0]:.0f} rows/s")
        print(f"  ratio gx/plain time: {statistics.median(gx) / statistics.median(plain):.1f}x")
        calibrate_near_duplicates(s)


def calibrate_near_duplicates(settings: Settings) -> None:
    datasets = os.environ.get("KBOPS_DATASETS") or str(ROOT.parent / "shared" / "datasets")
    path = Path(datasets) / "bitext" / "bitext_customer_support_4514.csv"
    if not path.is_file():
        print("\nnear-duplicate calibration skipped: set KBOPS_DATASETS to the shared datasets")
        return
    with path.open(encoding="utf-8") as fh:
        data = list(csv.DictReader(fh))
    random.Random(1).shuffle(data)
    kb: dict[str, str] = {}
    held: list[dict] = []
    for r in data:
        if r["intent"] not in kb:
            kb[r["intent"]] = r["instruction"]
        elif len(held) < 600:
            held.append(r)
    entries = [{"entry_key": intent, "lang": "en", "question": q, "alt_questions": []} for intent, q in kb.items()]
    rows = [{"candidate_id": i, "entry_key": f"new:{i}", "lang": "en", "question": r["instruction"]} for i, r in enumerate(held)]
    print(f"\nnear-duplicate threshold on Bitext: {len(entries)} entries (one phrasing per intent), {len(rows)} held-out phrasings")
    embedder = Embedder.from_settings(settings)
    for threshold in (0.70, 0.75, 0.80, 0.85, 0.90):
        found = find_near_duplicates(rows, entries, embedder, threshold)
        right = sum(1 for cid, near in found.items() if near.entry_key == held[cid]["intent"])
        print(f"  {threshold:.2f}: proposed {len(found):4d} ({len(found) / len(rows):5.1%}), same intent {right / max(1, len(found)):6.1%}")


if __name__ == "__main__":
    main()
