"""Retrieval quality on Bitext (real customer-support phrasings with intents).

    .venv/bin/python bench/bench_retrieval.py [--datasets ../shared/datasets] [--per-intent 5]

Each intent is one FAQ entry whose question and alternate questions are 5
phrasings of it (imported through `kbops import --approve`); the other
phrasings of the intent are queries. Five intents are left out of the KB
entirely: their queries have no right answer and should be handed off. For
dense only, lexical only and the hybrid (each lexical variant: BM25 and
TF-IDF), reports recall@1 / recall@5 on the in-KB queries and, per handoff
threshold, the share of queries answered and the precision of those answers
(an answered out-of-KB query counts as wrong). Calibration: for each row, the
lowest threshold whose answered precision reaches --target-precision, i.e.
the most questions answered at that precision (the rest are handed off).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import random
import tempfile
from collections import defaultdict
from pathlib import Path

from kbops.config import Settings
from kbops.db import init_db
from kbops.index.embedder import Embedder
from kbops.pii import find_private
from kbops.pipeline import activate_release, build_release, import_faq
from kbops.serve.retriever import Retriever

THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
FINE = [round(0.2 + 0.01 * i, 2) for i in range(71)]


def answered_at(scored: list[tuple[float, bool]], t: float) -> tuple[float, float]:
    """(share of queries answered, precision of those answers) at handoff threshold ``t``."""
    answered = [ok for score, ok in scored if score >= t]
    return len(answered) / len(scored), (sum(answered) / len(answered)) if answered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=os.environ.get("KBOPS_DATASETS", "../shared/datasets"))
    parser.add_argument("--per-intent", type=int, default=5)
    parser.add_argument("--queries-per-intent", type=int, default=40)
    parser.add_argument("--held-out-intents", type=int, default=5)
    parser.add_argument("--target-precision", type=float, default=0.9)
    args = parser.parse_args()
    path = Path(args.datasets) / "bitext" / "bitext_customer_support_4514.csv"
    if not path.is_file():
        raise SystemExit(f"Bitext not found at {path}; pass --datasets or set KBOPS_DATASETS")
    rng = random.Random(7)
    by_intent: dict[str, list[str]] = defaultdict(list)
    for row in csv.DictReader(path.open(encoding="utf-8")):
        by_intent[row["intent"]].append(row["instruction"].strip())
    intents = sorted(by_intent)
    outside = set(rng.sample(intents, args.held_out_intents))
    faq, queries = [], []
    for intent in intents:
        phrasings = list(dict.fromkeys(by_intent[intent]))
        rng.shuffle(phrasings)
        if intent not in outside:
            # A curator writes KB questions without a customer's order number; queries keep theirs.
            clean = [p for p in phrasings if not find_private(p)]
            kb = clean[: args.per_intent]
            rest = [p for p in phrasings if p not in kb]
            kb.sort(key=len, reverse=True)  # a curator would make the fullest phrasing the main question
            faq.append({"id": intent, "question": kb[0], "alt_questions": kb[1:], "answer": f"This is the answer about {intent.replace('_', ' ')}."})
        else:
            rest = phrasings
        queries += [(q, None if intent in outside else intent) for q in rest[: args.queries_per_intent]]

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "faq.jsonl").write_text("\n".join(json.dumps(r) for r in faq), encoding="utf-8")
        settings = Settings.load(env={"KBOPS_HOME": str(root / "home"), "KBOPS_EMBED_CACHE": str(Path("var/bench/embeddings.sqlite").resolve())})
        init_db(settings)
        imported = import_faq(settings, root / "faq.jsonl", approve=True, by="bench")
        for error in imported.errors:
            print(f"  not imported: {error}")
        embedder = Embedder.from_settings(settings)
        activate_release(settings, build_release(settings, embedder=embedder).release_id)
        key_to_intent = {f"import:{r['id']}": r["id"] for r in faq}
        print(f"KB: {imported.approved} entries ({len(faq)} intents × {args.per_intent} phrasings); "
              f"queries: {sum(1 for _, i in queries if i)} in-KB, {sum(1 for _, i in queries if not i)} from {len(outside)} intents not in the KB\n")
        print(f"{'channel':<15} {'R@1':>6} {'R@5':>6}   " + "  ".join(f"t={t:<4}" for t in THRESHOLDS))
        calibrated = []
        rows = [("dense", 1.0, "bm25"), ("lexical", 0.0, "tfidf"), ("lexical", 0.0, "bm25"),
                ("hybrid", settings.dense_weight, "tfidf"), ("hybrid", settings.dense_weight, "bm25")]
        for name, weight, scorer in rows:
            label = name if name == "dense" else f"{name}/{scorer}"
            bot = Retriever(dataclasses.replace(settings, dense_weight=weight, lexical_scorer=scorer), embedder=embedder)
            r1 = r5 = n_in = 0
            scored = []
            for text, intent in queries:
                hits = bot.search(text, top_k=5).hits
                top = key_to_intent.get(hits[0].entry_key) if hits else None
                if intent:
                    n_in += 1
                    r1 += top == intent
                    r5 += intent in [key_to_intent.get(h.entry_key) for h in hits]
                scored.append((hits[0].score if hits else 0.0, top == intent and intent is not None))

            cells = [f"{answered_at(scored, t)[0]:.0%}/{answered_at(scored, t)[1]:.0%}" for t in THRESHOLDS]
            print(f"{label:<15} {r1 / n_in:6.1%} {r5 / n_in:6.1%}   " + "  ".join(f"{c:<6}" for c in cells))
            best = next((t for t in FINE if answered_at(scored, t)[1] >= args.target_precision), None)
            calibrated.append((label, best, *(answered_at(scored, best) if best is not None else (0.0, 0.0))))
        print(f"\ncalibrated handoff threshold (lowest t with answered precision >= {args.target_precision:.0%}):")
        for label, t, share, precision in calibrated:
            shown = f"t={t:.2f}: answers {share:.1%} (hands off {1 - share:.1%}) at {precision:.1%} precision" if t is not None else "not reachable"
            print(f"  {label:<15} {shown}")
        print("\ncells: answered share / precision of answered, at each handoff threshold t")


if __name__ == "__main__":
    main()
