"""The Chinese paraphrase set: a large written help-desk FAQ and customer-style paraphrases of its questions.

    .venv/bin/python bench/bench_zh_paraphrase.py          # summary of both sets, zh and en (checks every label)
    .venv/bin/python bench/bench_confidence.py --sets zh-para   # the figures (recall, answered precision) per split

The held-out Chinese test of issue 11 is a payments app's help desk: thousands of FAQ
questions, many of them near neighbours that differ in one key word, and paraphrases as
customers type them. ``bench/labels/zh_retrieval.tsv`` (real JDDC turns against 56 entries)
has nothing of that shape, so this set was written for it (bench/labels/README.md, section
"zh_paraphrases.tsv"): ``bench/labels/zh_paraphrase_faq.jsonl`` (the KB, ``kbops import`` format)
and ``bench/labels/zh_paraphrases.tsv`` (query, label, split).

Use (from a script in bench/)::

    from bench_zh_paraphrase import FAQ, load_paraphrases
    for q in load_paraphrases():      # Paraphrase(text, keys, split); keys empty: out of the KB

``split`` is recomputed here from the fixed rule (test when ``int(sha256(key)[:8], 16)`` is odd,
else tune; key = the first labelled entry id, or the query text for ``none``) and must match the file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from zh_labels import faq_ids, split_of  # the sibling Chinese set's reader and split rule (bench/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "bench" / "labels" / "zh_paraphrases.tsv"
FAQ = ROOT / "bench" / "labels" / "zh_paraphrase_faq.jsonl"
#: The same help desk in English, with English paraphrases (same entry ids, same split rule): bench/labels/README.md.
EN_LABELS = ROOT / "bench" / "labels" / "en_paraphrases.tsv"
EN_FAQ = ROOT / "bench" / "labels" / "en_paraphrase_faq.jsonl"


@dataclass(frozen=True)
class Paraphrase:
    text: str
    keys: frozenset[str]  # entry ids of zh_paraphrase_faq.jsonl that answer it; empty: hand off
    split: str  # tune | test
    first: str | None  # the entry it was written for (None for out-of-KB queries)


def load_paraphrases(labels: Path = LABELS, faq: Path = FAQ) -> list[Paraphrase]:
    """Every labelled query; raises on an unknown entry id or a split that disagrees with the rule."""
    known = faq_ids(faq)  # the JDDC set's reader: same format
    out: list[Paraphrase] = []
    problems: list[str] = []
    for n, line in enumerate(labels.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#") or line.startswith("query\t"):
            continue
        text, label, split = line.split("\t")
        ids = [] if label == "none" else label.split("|")
        if unknown := set(ids) - known:
            problems.append(f"{labels.name}:{n}: unknown entry id(s) {sorted(unknown)}")
        rule = split_of(ids[0] if ids else text)  # the JDDC set's rule, keyed by entry here so an entry's paraphrases stay on one side
        if split != rule:
            problems.append(f"{labels.name}:{n}: split {split} disagrees with the rule ({rule})")
        out.append(Paraphrase(text, frozenset(ids), split, ids[0] if ids else None))
    if problems:
        raise ValueError(f"{len(problems)} bad label(s): " + "; ".join(problems[:5]))
    return out


def main() -> None:
    for faq, labels in ((FAQ, LABELS), (EN_FAQ, EN_LABELS)):
        queries = load_paraphrases(labels, faq)
        entries = faq_ids(faq)
        print(f"{len(queries)} queries against {len(entries)} entries of {faq.name}")
        for split in ("tune", "test"):
            part = [q for q in queries if q.split == split]
            none = sum(1 for q in part if not q.keys)
            print(f"  {split}: {len(part)} queries, {none} none ({none / len(part):.0%}), {len({q.first for q in part if q.first})} entries")
        print("  queries with several acceptable entries:", sum(1 for q in queries if len(q.keys) > 1))
        print("  entries without a paraphrase:", sorted(entries - {q.first for q in queries if q.first}) or "none")
        print("  paraphrases per entry:", dict(sorted(Counter(Counter(q.first for q in queries if q.first).values()).items())))

if __name__ == "__main__":
    main()
