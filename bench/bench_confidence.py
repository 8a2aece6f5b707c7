"""Fusion and calibrated confidence, English and Chinese, in one run (issue 11).

    .venv/bin/python bench/bench_confidence.py [--datasets ../shared/datasets] [--split test]

Two KBs built as a store would: imported with ``kbops import --approve`` and
published (the publish calibrates each language on the KB's *own* questions —
leave-one-out alternates and left-out entries, never on the queries below):

* **en — Bitext**: one entry per intent with 5 phrasings (as bench/bench_retrieval.py),
  40 held-out phrasings per intent as queries, 5 intents left out of the KB
  (their queries should be handed off);
* **zh — JDDC**: bench/labels/zh_faq.jsonl (56 general customer-service entries)
  and the real JDDC customer turns labelled against it
  (bench/labels/zh_retrieval.tsv; ``--split test`` by default; ``none`` turns
  should be handed off).

For each channel — dense only, lexical only, the old fixed blend (dense weight
0.6) and the calibrated fusion (the weight the publish chose for the language)
— on the same channel scores: recall@1/@5 over queries with an answer, and
precision at fixed coverage (the best-scored 50 % / 75 % of all queries
answered; an answered query without an answer is wrong). Then the bot's own
decision with the calibrated threshold: the share answered and its precision,
and the share asked back (clarify).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from kbops.config import Settings
from kbops.db import init_db
from kbops.index import calibration, search
from kbops.index import release as rel
from kbops.index.confidence import LanguageModel, model_for, threshold_for
from kbops.index.embedder import Embedder
from kbops.pii import find_private
from kbops.pipeline import activate_release, build_release, import_faq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zh_labels import FAQ, load_labels  # noqa: E402

OLD_BLEND = 0.6


@dataclass
class Query:
    text: str
    keys: frozenset[str]  # entry keys that answer it; empty: it should be handed off


def bitext(datasets: Path, per_intent: int = 5, queries_per_intent: int = 40, held_out: int = 5) -> tuple[list[dict], list[Query]]:
    """Bitext as an FAQ KB (bench/bench_retrieval.py's construction) and its held-out queries."""
    rng = random.Random(7)
    by_intent: dict[str, list[str]] = defaultdict(list)
    for row in csv.DictReader((datasets / "bitext" / "bitext_customer_support_4514.csv").open(encoding="utf-8")):
        by_intent[row["intent"]].append(row["instruction"].strip())
    intents = sorted(by_intent)
    outside = set(rng.sample(intents, held_out))
    faq, queries = [], []
    for intent in intents:
        phrasings = list(dict.fromkeys(by_intent[intent]))
        rng.shuffle(phrasings)
        rest = phrasings
        if intent not in outside:
            kb = [p for p in phrasings if not find_private(p)][:per_intent]
            rest = [p for p in phrasings if p not in kb]
            kb.sort(key=len, reverse=True)
            faq.append({"id": intent, "question": kb[0], "alt_questions": kb[1:], "answer": f"This is the answer about {intent.replace('_', ' ')}.", "lang": "en"})
        queries += [Query(q, frozenset() if intent in outside else frozenset({f"import:{intent}"})) for q in rest[:queries_per_intent]]
    return faq, queries


def jddc(split: str) -> tuple[list[dict], list[Query]]:
    faq = [json.loads(line) for line in FAQ.read_text(encoding="utf-8").splitlines() if line.strip()]
    turns = [t for t in load_labels() if split in ("all", t.split)]
    return faq, [Query(t.text, frozenset(f"import:{k}" for k in t.keys)) for t in turns]


def precision_at(scored: list[tuple[float, bool]], coverage: float) -> float:
    """Precision of the best-scored ``coverage`` share of all queries."""
    ranked = sorted(scored, key=lambda s: -s[0])[: max(1, round(coverage * len(scored)))]
    return sum(ok for _, ok in ranked) / len(ranked)


def run(name: str, faq: list[dict], queries: list[Query], cache: Path, fit_default: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "faq.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in faq), encoding="utf-8")
        settings = Settings.load(env={"KBOPS_HOME": str(root / "home"), "KBOPS_EMBED_CACHE": str(cache)}, config_file=None)
        init_db(settings)
        imported = import_faq(settings, root / "faq.jsonl", approve=True, by="bench")
        embedder = Embedder.from_settings(settings)
        activate_release(settings, build_release(settings, embedder=embedder).release_id)
        loaded = rel.load_release(settings.index_dir, rel.active_release_id(settings.index_dir))
        lang = faq[0].get("lang", "en")
        model = model_for(loaded.manifest, lang, settings)
        stored = loaded.manifest["calibration"]["languages"][lang]
        answerable = sum(1 for q in queries if q.keys)
        print(f"\n## {name}: {imported.approved} entries; {len(queries)} queries ({answerable} with an answer, {len(queries) - answerable} to hand off)")
        print(f"calibration ({stored['source']}, from the KB's own {stored['in_kb']} leave-one-out + {stored['out_of_kb']} left-out questions): "
              f"dense weight {model.dense_weight}, threshold {model.threshold}" + (f" — {stored['note']}" if stored.get("note") else ""))
        now = datetime.now(UTC)
        channels = [search.channel_scores(loaded, embedder, q.text) for q in queries]
        print(f"{'channel':<22} {'R@1':>6} {'R@5':>6} {'P@50%':>7} {'P@75%':>7}")
        for label, weight in (("dense only", 1.0), ("lexical only", 0.0), (f"fixed blend w={OLD_BLEND}", OLD_BLEND), (f"calibrated w={model.dense_weight}", model.dense_weight)):
            r1 = r5 = 0
            scored = []
            for q, ch in zip(queries, channels):
                hits = search.rank(loaded, ch, q.text, weight, now=now).hits
                keys = [h.entry_key for h in hits[:5]]
                if q.keys:
                    r1 += bool(keys) and keys[0] in q.keys
                    r5 += any(k in q.keys for k in keys)
                scored.append((hits[0].score if hits else 0.0, bool(keys) and keys[0] in q.keys))
            print(f"{label:<22} {r1 / answerable:6.3f} {r5 / answerable:6.3f} {precision_at(scored, 0.5):7.3f} {precision_at(scored, 0.75):7.3f}")
        if fit_default:
            # The public default for small KBs (kbops/index/confidence.py DEFAULTS): fitted on these queries'
            # outcomes at the weight the calibration chose (run on the tune split for Chinese).
            results = []
            for q, ch in zip(queries, channels):
                hits = search.rank(loaded, ch, q.text, model.dense_weight, now=now).hits
                if hits:
                    results.append(calibration.Outcome(hits[0].score, hits[0].score - search.runner_up(hits), hits[0].entry_key in q.keys))
            coef = calibration.fit_logistic(np.array([[r.score, r.margin] for r in results]), np.array([r.right for r in results], dtype=float))
            probe = LanguageModel(model.dense_weight, coef, 0.5)
            curve = calibration.curve_of([probe.probability(r.score, r.margin) for r in results], [r.right for r in results], len(queries))
            print(f"public default fitted on these queries: LanguageModel({model.dense_weight}, {tuple(round(c, 2) for c in coef)}, "
                  f"{threshold_for(curve, settings.target_precision)})  curve: {curve}")
        answered = right = clarified = 0
        for q, ch in zip(queries, channels):
            ranked = search.rank(loaded, ch, q.text, model.dense_weight, now=now)
            handoff, reason, _, _ = search.decide(loaded, ranked, q.text, model, settings)
            clarified += reason == "clarify"
            if not handoff:
                answered += 1
                right += ranked.hits[0].entry_key in q.keys
        print(f"the bot (calibrated threshold {model.threshold}): answers {answered / len(queries):.1%} of all queries "
              f"(hands off {1 - answered / len(queries):.1%}, {clarified} asked back), precision {right / max(answered, 1):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=os.environ.get("KBOPS_DATASETS", "../shared/datasets"))
    parser.add_argument("--split", choices=("tune", "test", "all"), default="test", help="which part of the Chinese labels to ask (default test)")
    parser.add_argument("--fit-defaults", action="store_true", help="also fit the public defaults on the queries (use with --split tune)")
    args = parser.parse_args()
    cache = Path("var/bench/embeddings.sqlite").resolve()
    cache.parent.mkdir(parents=True, exist_ok=True)
    run("en — Bitext", *bitext(Path(args.datasets)), cache, args.fit_defaults)
    run(f"zh — JDDC customer turns ({args.split})", *jddc(args.split), cache, args.fit_defaults)


if __name__ == "__main__":
    main()
