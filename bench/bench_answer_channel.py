"""Is an entry's answer evidence for ranking? A probe of a query–answer term, not yet the bot's (issue 11).

    HF_HUB_OFFLINE=1 KBOPS_DATASETS=… .venv/bin/python bench/bench_answer_channel.py [--sets en-para,en-webapps,zh-para,zh-jddc,zh-para-large,en]

The bot ranks by the customer's question against the KB's *questions* only
(kbops/index/search.py). Where an entry has one question (a FAQ imported
without alternates: the shape of issue 11's held-out tests), its answer is the
only other text that says what it is about. This probe publishes each bench KB
as bench/bench_confidence.py does (with and without alternates), ranks every
query as the bot does, and re-orders the bot's candidates by

    score + mu · cosine(query, the entry's answer)

(the same embedder: MiniLM for English, the Chinese reader for Chinese), for a
few ``mu``. It reports recall@1 on the tune and test parts of each set. It
changes nothing in the product: the term would change the scale of the fused
score, so the public defaults' confidence mappings (kbops/index/confidence.py)
would have to be fitted again before the bot could use it, and the answers'
vectors would have to be stored in a release.

Bitext's answers are this bench's placeholders ("This is the answer about
cancel order."), which name the intent: its figures are not evidence and it
runs only when asked. zh-para-large's 1,207 distractor entries have
placeholder answers too: it shows whether the term hurts when answers say
little.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_confidence as bc  # noqa: E402
from zh_labels import split_of  # noqa: E402

from kbops.index import search  # noqa: E402
from kbops.index.confidence import model_for  # noqa: E402

MUS = (0.0, 0.1, 0.2, 0.3, 0.5)


def load(name: str, datasets: Path) -> tuple[list[dict], list[tuple[bc.Query, str]]]:
    """One bench set of bench/bench_confidence.py: its FAQ and its queries with their split."""
    if name == "en":
        faq, queries = bc.bitext(datasets)
        return faq, [(q, split_of(q.text)) for q in queries]
    if name == "en-para":
        return bc.paraphrases("en")
    if name == "en-webapps":
        return bc.paraphrases("en", bc.WEBAPPS_FAQ, bc.WEBAPPS_LABELS)
    if name == "zh-jddc":
        return bc.jddc("all")
    if name == "zh-para":
        return bc.paraphrases()
    if name == "zh-para-large":
        faq, para = bc.paraphrases()
        faq = bc.bare(faq)
        return faq + bc.jddc_questions(faq, datasets / "jddc" / "chat_0.1per.txt"), para
    raise SystemExit(f"unknown set {name!r}")


def recall_by_mu(kb: bc.Published, queries: list[tuple[bc.Query, str]], dense_weight: float) -> dict[tuple[str, float], float]:
    """Recall@1 per (split, mu) of the bot's candidates re-ordered with the query–answer term."""
    ids = list(kb.loaded.entries)
    answers = dict(zip(ids, kb.embedder.encode([kb.loaded.entries[i]["answer"] for i in ids])))
    vectors = kb.embedder.encode_queries([q.text for q, _ in queries])
    now = datetime.now(UTC)
    hits: dict[tuple[str, float], list[bool]] = {}
    for (q, split), qv in zip(queries, vectors):
        if not q.keys:
            continue
        ranked = search.rank(kb.loaded, search.channel_scores(kb.loaded, kb.embedder, q.text), q.text, dense_weight, now=now)
        for mu in MUS:
            best = max(ranked.hits, key=lambda h: h.score + mu * float(answers[h.entry_id] @ qv), default=None)
            hits.setdefault((split, mu), []).append(best is not None and best.entry_key in q.keys)
    return {key: sum(v) / len(v) for key, v in hits.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=os.environ.get("KBOPS_DATASETS", "../shared/datasets"))
    parser.add_argument("--sets", default="en-para,en-webapps,zh-para,zh-jddc,zh-para-large")
    args = parser.parse_args()
    cache = Path("var/bench/embeddings.sqlite").resolve()
    cache.parent.mkdir(parents=True, exist_ok=True)
    print(f"recall@1, tune / test, per mu; the bot's ranking at mu 0 ({datetime.now(UTC):%Y-%m-%d})")
    for name in args.sets.split(","):
        faq, queries = load(name, Path(args.datasets))
        variants = [("as imported", faq)] if name == "zh-para-large" else [("without alternates", bc.bare(faq)), ("with alternates", faq)]
        with tempfile.TemporaryDirectory() as tmp:
            for label, rows in variants:
                kb = bc.publish(rows, Path(tmp) / label.replace(" ", "-"), cache)
                lang = rows[0].get("lang", "en")
                weight = model_for(kb.loaded.manifest, lang, kb.settings).dense_weight
                got = recall_by_mu(kb, queries, weight)
                cells = "  ".join(f"mu {mu}: {got.get(('tune', mu), float('nan')):.3f} / {got.get(('test', mu), float('nan')):.3f}" for mu in MUS)
                print(f"{name:<14} {label:<19} (w={weight})  {cells}", flush=True)


if __name__ == "__main__":
    main()
