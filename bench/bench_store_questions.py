"""The sample store asked 810 questions: how often the bot is right, wrong or hands off.

    .venv/bin/python bench/bench_store_questions.py [--show all|wrong|handoff] [--labels FILE] [--catalogue sample|abcd]

``tests/index/test_store_questions.py`` holds the sample store to 147 questions,
each with one expected outcome. This set is the wider check behind it:
``bench/labels/store_questions.tsv`` (bench/labels/README.md says how it was
written) asks the bundled store, fully approved and published, about its
products by name, SKU and nickname, its policies in customers' words, other
brands' products, products and facts it does not have, and things no store
KB answers (an order's status, a password). Each row expects an answer from an
entry (key prefixes, ``|`` between the acceptable ones), a clarifying question
with exactly those products, or a handoff.

``--catalogue abcd`` asks a second store, built from data nobody here wrote: the sample store's
policies, no chats, and as its products the sixteen of ABCD's clothing shop
(``$KBOPS_DATASETS/abcd/ontology.json``: four brands — Calvin Klein, Guess,
Michael Kors, Tommy Hilfiger — each selling boots, a jacket, jeans and a shirt;
prices and stock made up), asked ``bench/labels/abcd_store_questions.tsv``:
one brand's product among four, a type of product several brands sell (a
clarifying question), brands and products it does not sell.

Per language it prints, for the questions the KB can answer: answered right,
**answered wrong**, asked back (clarify) and handed off; and for those it cannot:
handed off, or answered (wrong). Answered precision counts every answer; a
clarifying question is not an answer. Trust first: a wrong answer is the figure
to keep at zero; a handoff of an answerable question is the price of that.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from kbops.config import Settings
from kbops.serve.retriever import Retriever

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import SAMPLE, prepare  # noqa: E402  (the sample store, approved and published, as the API bench serves it)

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "bench" / "labels" / "store_questions.tsv"
ABCD_LABELS = ROOT / "bench" / "labels" / "abcd_store_questions.tsv"
#: ABCD's product types in Chinese, as a Chinese listing would name them ("Guess 牛仔裤").
_ZH_TYPES = {"boots": "靴子", "jacket": "夹克", "jeans": "牛仔裤", "shirt": "衬衫"}


def abcd_store(root: Path, datasets: Path) -> Path:
    """A store laid out as examples/sample_store: its policies, no chats, ABCD's sixteen products (SKUs AB-2001…,
    in ontology order), with made-up prices and stock."""
    ontology = datasets / "abcd" / "ontology.json"
    if not ontology.is_file():
        raise SystemExit(f"--catalogue abcd reads {ontology}: not found (set KBOPS_DATASETS or --datasets to the shared datasets)")
    names = json.loads(ontology.read_text(encoding="utf-8"))["values"]["enumerable"]["product"]
    store = root / "abcd_store"
    shutil.copytree(SAMPLE, store)
    shutil.rmtree(store / "chats")
    (store / "chats").mkdir()
    with (store / "products.csv").open("w", newline="", encoding="utf-8") as products, (store / "prices.csv").open("w", newline="", encoding="utf-8") as prices:
        p = csv.writer(products)
        q = csv.writer(prices)
        p.writerow(["sku", "name_zh", "name_en", "category", "stock", "shipping_class", "warranty_months"])
        q.writerow(["sku", "price", "currency", "valid_from", "valid_to"])
        for i, name in enumerate(names):
            brand, kind = name.rsplit(" ", 1)
            sku, en = f"AB-{2001 + i}", name.title()
            p.writerow([sku, f"{brand.title()} {_ZH_TYPES.get(kind, kind)}", en, "apparel", (i * 37) % 90, "standard", 3])
            q.writerow([sku, f"{(i * 53) % 900 + 199}.00", "CNY", "", ""])
    return store


def load(path: Path = LABELS) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return [(row["question"], row["expected"]) for row in csv.DictReader(fh, delimiter="\t")]


def store(root: Path, sample: Path = SAMPLE) -> Settings:
    """The sample store (or another laid out like it), every candidate approved (a reviewer who agrees with the whole
    queue), published."""
    return Settings.load(env=prepare(root, sample), config_file=None)


def outcome(answer) -> str:
    """``answer <entry key>``, ``clarify <sku> …`` (sorted) or ``handoff``."""
    if not answer.handoff:
        return f"answer {answer.top.entry_key}"
    if answer.reason == "clarify":
        return "clarify " + " ".join(sorted(o.entry_key.split(":")[1] for o in answer.options))
    return "handoff"


def judge(expected: str, got: str) -> str:
    """An answerable question: right (the expected answer), asked back (the expected clarifying question), wrong
    (another entry's answer), clarify (asked back where an answer, or other options, were expected) or handoff.
    One the KB cannot answer: handed off, offered (asked back with products that are not what it asks about: a
    handoff all the same, but a needless question) or answered."""
    kind, _, rest = expected.partition(" ")
    if kind == "handoff":
        return "handed off" if got == "handoff" else ("offered" if got.startswith("clarify") else "answered")
    if got == "handoff":
        return "handoff"
    if kind == "clarify":
        return "asked back" if got == expected else ("clarify" if got.startswith("clarify") else "wrong")
    if got.startswith("clarify"):
        return "clarify"
    key = got.split(" ", 1)[1]
    return "right" if any(key.startswith(prefix) for prefix in rest.split("|")) else "wrong"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", choices=("all", "wrong", "handoff", "none"), default="wrong",
                        help="which questions to list with what the bot did (default: the wrong answers)")
    parser.add_argument("--labels", type=Path, help=f"a TSV of the same columns (default: {LABELS.name}, with --catalogue abcd {ABCD_LABELS.name})")
    parser.add_argument("--catalogue", choices=("sample", "abcd"), default="sample",
                        help="the bundled sample store, or the store of ABCD's clothing catalogue (see above)")
    parser.add_argument("--datasets", type=Path, default=Path(os.environ.get("KBOPS_DATASETS", "../shared/datasets")),
                        help="the shared datasets (default: $KBOPS_DATASETS, else ../shared/datasets)")
    args = parser.parse_args()
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    labels = args.labels or (ABCD_LABELS if args.catalogue == "abcd" else LABELS)
    rows = load(labels)
    with tempfile.TemporaryDirectory() as tmp:
        sample = abcd_store(Path(tmp), args.datasets) if args.catalogue == "abcd" else SAMPLE
        retriever = Retriever(store(Path(tmp), sample))
        results = []
        for question, expected in rows:
            answer = retriever.search(question, top_k=3)
            got = outcome(answer)
            results.append((question, expected, got, judge(expected, got), answer.lang, answer.confidence))
        retriever.close()
    print(f"\n{len(rows)} questions, {labels}\n")
    print(f"{'':4} {'answerable':>10} {'right':>6} {'asked back':>11} {'wrong':>6} {'clarify':>8} {'handoff':>8} │ "
          f"{'not':>4} {'handed off':>11} {'offered':>8} {'answered':>9} │ {'answered precision':>19}")
    for lang in ("en", "zh", "all"):
        mine = [r for r in results if lang in ("all", "zh" if r[4] != "en" else "en")]
        c = Counter(r[3] for r in mine)
        answerable = c["right"] + c["asked back"] + c["wrong"] + c["clarify"] + c["handoff"]
        answered = c["right"] + c["wrong"] + c["answered"]
        precision = f"{c['right'] / answered:.3f} ({c['right']}/{answered})" if answered else "—"
        print(f"{lang:4} {answerable:>10} {c['right']:>6} {c['asked back']:>11} {c['wrong']:>6} {c['clarify']:>8} {c['handoff']:>8} │ "
              f"{len(mine) - answerable:>4} {c['handed off']:>11} {c['offered']:>8} {c['answered']:>9} │ {precision:>19}")
    shown = {"all": None, "wrong": ("wrong", "answered", "offered"), "handoff": ("handoff",), "none": ()}[args.show]
    listed = [r for r in results if shown is None or r[3] in shown]
    if listed:
        print()
    for question, expected, got, verdict, _, confidence in listed:
        print(f"{verdict:>10}  {question}  → {got} (confidence {confidence}); expected {expected}")


if __name__ == "__main__":
    main()
