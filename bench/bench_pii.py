"""kbops.pii against Microsoft Presidio's pattern recognizers, on the same planted and benign sets.

    .venv/bin/python bench/bench_pii.py                      # kbops.pii only
    PYTHONPATH=. /path/to/venv-with-presidio/bin/python bench/bench_pii.py   # both

Planted: tests/data/planted_private.jsonl (each value with its class; a value is *found* when
neither it nor any listed fragment survives, raw or after NFKC, in the scrubbed text, and in the
agent's reply where the class has one). Benign: tests/data/benign_texts.jsonl plus every line of
the sample store's policies and product/price files; a *false positive* is a benign text changed.
Speed: characters per second over both sets, repeated.

Presidio is run without any NLP model (spaCy models cannot be downloaded here, and the bot must
not depend on one): its predefined pattern recognizers relevant to the planted classes, phone
regions widened to CN and the European countries, every result counted whatever its score
(the most generous reading of its recall; false positives are counted the same way).
"""

from __future__ import annotations

import json
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kbops.pii import scrub_session  # noqa: E402

PLANTED = [json.loads(line) for line in (ROOT / "tests/data/planted_private.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
BENIGN = [json.loads(line)["text"] for line in (ROOT / "tests/data/benign_texts.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
STORE = ROOT / "examples/sample_store"
for doc in sorted((STORE / "policies").glob("*.md")):
    BENIGN += [line for line in doc.read_text(encoding="utf-8").splitlines() if line.strip()]
for table in ("products.csv", "prices.csv"):
    BENIGN += (STORE / table).read_text(encoding="utf-8").splitlines()


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def evaluate(name: str, session_scrub: Callable[[list[str]], list[str]]) -> dict:
    missed: Counter[str] = Counter()
    for p in PLANTED:
        texts = [p["text"]] + ([p["reply"]] if p.get("reply") else [])
        out = " || ".join(session_scrub(texts))
        if any(n in out or nfkc(n) in nfkc(out) for n in [p["value"], *p.get("fragments", [])]):
            missed[p["class"]] += 1
    false_pos = [t for t in BENIGN if session_scrub([t])[0] != t]
    texts = [p["text"] for p in PLANTED] + BENIGN
    chars = sum(len(t) for t in texts)
    start = time.perf_counter()
    repeat = 20
    for _ in range(repeat):
        for t in texts:
            session_scrub([t])
    seconds = time.perf_counter() - start
    found = len(PLANTED) - sum(missed.values())
    print(f"{name}: planted found {found}/{len(PLANTED)}; false positives {len(false_pos)}/{len(BENIGN)} benign texts; {chars * repeat / seconds:,.0f} chars/s")
    print(f"  missed by class: {dict(sorted(missed.items()))}")
    for t in false_pos[:10]:
        print(f"  false positive: {t[:80]!r} -> {session_scrub([t])[0][:80]!r}")
    return {"found": found, "planted": len(PLANTED), "false_positives": len(false_pos), "benign": len(BENIGN), "chars_per_s": chars * repeat / seconds}


def presidio_scrubber() -> Callable[[list[str]], list[str]] | None:
    try:
        from presidio_analyzer import predefined_recognizers as pr
    except ImportError:
        return None
    recognizers = [
        pr.EmailRecognizer(),
        pr.PhoneRecognizer(supported_regions=("CN", "US", "GB", "FR", "DE", "IT", "ES", "NL", "CA")),
        pr.CreditCardRecognizer(),
        pr.IbanRecognizer(),
        pr.IpRecognizer(),
        pr.UsSsnRecognizer(),
        pr.UsPassportRecognizer(),
        pr.UkPassportRecognizer(),
        pr.DePassportRecognizer(),
        pr.EsPassportRecognizer(),
        pr.ItPassportRecognizer(),
        pr.UkPostcodeRecognizer(),
    ]

    def scrub_one(text: str) -> str:
        spans = []
        for rec in recognizers:
            spans += [(r.start, r.end) for r in rec.analyze(text, rec.supported_entities, None) or []]
        for start, end in sorted(spans, reverse=True):
            text = text[:start] + "[PII]" + text[end:]
        return text

    return lambda texts: [scrub_one(t) for t in texts]


if __name__ == "__main__":
    evaluate("kbops.pii", scrub_session)
    presidio = presidio_scrubber()
    if presidio is None:
        print("presidio-analyzer is not installed in this environment; run it with one that has it (see the docstring)")
    else:
        import importlib.metadata

        evaluate(f"presidio-analyzer {importlib.metadata.version('presidio-analyzer')} (pattern recognizers, no NLP model)", presidio)
