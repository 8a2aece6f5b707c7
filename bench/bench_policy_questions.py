"""Generic policy questions on the sample store: does the right policy section answer, before/after
the title-generated phrasings (issue 11, item 5)?

    .venv/bin/python bench/bench_policy_questions.py [--json out.json]

Builds the sample store's KB twice, exactly as a store would (sync, a reviewer approves every queued
item, publish): once with the policy extractor's generated phrasings switched off (``before``: the
documents' own headings and ``也问``/``Also asked`` lines only) and once with them (``after``). Then asks
each question below through the bot (``Retriever.search``, top 3) and reports, per language:

- ``section@1``: the top hit is one of the sections that answer the question (listed by heading);
- ``document@1``: the top hit is a section of the right document;
- ``answered``: not handed off; ``answered_right``: answered and section@1.

The questions are what customers type generically ("What is your return policy?", "价保多少天"), not
the documents' headings: written for this bench before measuring, 25 per language.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from kbops.config import Settings
from kbops.db import init_db, session_scope
from kbops.extract import policies
from kbops.index.embedder import Embedder
from kbops.pipeline import activate_release, build_release, decide, ingest
from kbops.review.queue import list_items
from kbops.serve.retriever import Retriever

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sample_store"

# Section headings (the ``##`` lines) of examples/sample_store/policies, by short name.
EN = {
    "R1": "I don't want the item I received anymore. Can I return it?",
    "R2": "What should I do if the item has a quality problem?",
    "R3": "How long does it take to get my refund?",
    "R4": "When is a no-reason return not possible?",
    "S1": "How much do I need to spend for free shipping?",
    "S2": "How long will it take to receive my order?",
    "S4": "Can I still change my delivery address after ordering?",
    "P1": "The price dropped right after I bought it. Can I get the difference back?",
    "P2": "How do I apply for price protection?",
    "P4": "Can I still apply after 7 days?",
    "I1": "Can I get an invoice?",
    "I3": "Can I still request an invoice long after delivery?",
    "M1": "How do I become a member?",
    "M2": "How do I earn points?",
    "M3": "How do I use points as cash?",
    "M4": "What are the benefits of silver and gold membership?",
}
ZH = {
    "R1": "收到的商品不想要了，可以退货吗？",
    "R2": "商品有质量问题怎么办？",
    "R3": "退款多久能到账？",
    "R4": "哪些情况不支持无理由退货？",
    "S1": "买多少钱包邮？",
    "S2": "下单后多久能收到？",
    "P1": "刚买完就降价了，可以退差价吗？",
    "P2": "价保怎么申请？",
    "P4": "超过7天还能申请价保吗？",
    "I1": "可以开发票吗？",
    "I3": "收货很久了还能补开发票吗？",
    "M1": "怎么成为会员？",
    "M2": "积分是怎么获得的？",
    "M3": "积分怎么抵现？",
    "M4": "银卡和金卡会员有什么权益？",
}
# (question, the sections that answer it). Document = the first letter of the section names.
QUESTIONS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "en": [
        ("What is your return policy?", ("R1", "R4")),
        ("What's your returns policy?", ("R1", "R4")),
        ("How do returns work?", ("R1",)),
        ("Can I return an item?", ("R1",)),
        ("How many days do I have to return something?", ("R1",)),
        ("How long is the return window?", ("R1",)),
        ("What is your refund policy?", ("R1", "R3")),
        ("How long do refunds take?", ("R3",)),
        ("What is your exchange policy?", ("R2",)),
        ("What is your shipping policy?", ("S1", "S2")),
        ("How long does delivery take?", ("S2",)),
        ("Do you offer free shipping?", ("S1",)),
        ("How much is shipping?", ("S1",)),
        ("Can I change my shipping address?", ("S4",)),
        ("Do you have price protection?", ("P1",)),
        ("What is your price protection policy?", ("P1", "P4")),
        ("How many days of price protection do I get?", ("P1", "P4")),
        ("What is your price adjustment policy?", ("P1",)),
        ("I need an invoice", ("I1",)),
        ("What is your invoice policy?", ("I1",)),
        ("How long after delivery can I ask for an invoice?", ("I3",)),
        ("Tell me about your membership program", ("M1", "M4")),
        ("How do points work?", ("M2", "M3")),
        ("What are the member benefits?", ("M4",)),
        ("How can I use my points?", ("M3",)),
    ],
    "zh": [
        ("退货政策是什么", ("R1", "R4")),
        ("你们的退换货政策是怎样的", ("R1", "R4", "R2")),
        ("可以退货吗", ("R1",)),
        ("我想退货", ("R1",)),
        ("几天内可以退货", ("R1",)),
        ("支持七天无理由吗", ("R1",)),
        ("换货政策", ("R2",)),
        ("退款政策是什么", ("R3", "R1")),
        ("退款要多久", ("R3",)),
        ("价保多少天", ("P1", "P4")),
        ("有价保吗", ("P1",)),
        ("价格保护政策", ("P1", "P4")),
        ("降价了怎么办", ("P1",)),
        ("保价怎么申请", ("P2",)),
        ("我想开发票", ("I1",)),
        ("发票怎么开", ("I1",)),
        ("开票政策", ("I1",)),
        ("发票多久内可以开", ("I3",)),
        ("配送政策是什么", ("S1", "S2")),
        ("多久能到货", ("S2",)),
        ("运费怎么算", ("S1",)),
        ("包邮吗", ("S1",)),
        ("会员有什么权益", ("M4", "M1")),
        ("积分怎么用", ("M3",)),
        ("积分规则", ("M2", "M3")),
    ],
}


def build(workdir: Path, embedder: Embedder, generated: bool) -> Retriever:
    """A fresh sample-store KB, every queued item approved, published (the demo's first three steps)."""
    shutil.copytree(SAMPLE, workdir / "store")
    settings = Settings.load(
        env={
            "KBOPS_HOME": str(workdir / "home"),
            "KBOPS_DATABASE_URL": f"sqlite:///{workdir / 'kb.sqlite'}",
            "KBOPS_SOURCES": str(workdir / "store" / "sources.toml"),
        },
        config_file=None,
    )
    init_db(settings)
    policies.GENERATED_PHRASINGS = generated
    try:
        ingest(settings)
    finally:
        policies.GENERATED_PHRASINGS = True
    while True:
        with session_scope(settings) as db:
            waiting = [i.id for i in list_items(db, "open", 500)]
        if not waiting:
            break
        decide(settings, waiting, "approve", by="bench")
    activate_release(settings, build_release(settings, embedder=embedder).release_id)
    return Retriever(settings, embedder=embedder)


def measure(retriever: Retriever) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lang, questions in QUESTIONS.items():
        headings = EN if lang == "en" else ZH
        rows = []
        for question, good in questions:
            answer = retriever.search(question, top_k=3)
            top = answer.top
            wanted = {headings[g] for g in good}
            docs = {g[0] for g in good}
            section = next((k for k, h in headings.items() if top is not None and top.question == h), None)
            rows.append(
                {
                    "question": question,
                    "expected": list(good),
                    "top": top.question if top else None,
                    "top_key": top.entry_key if top else None,
                    "score": top.score if top else 0.0,
                    "handoff": answer.handoff,
                    "section_ok": top is not None and top.question in wanted,
                    "document_ok": section is not None and section[0] in docs,
                }
            )
        n = len(rows)
        out[lang] = {
            "questions": n,
            "section@1": round(sum(r["section_ok"] for r in rows) / n, 3),
            "document@1": round(sum(r["document_ok"] for r in rows) / n, 3),
            "answered": round(sum(not r["handoff"] for r in rows) / n, 3),
            "answered_right": round(sum(r["section_ok"] and not r["handoff"] for r in rows) / n, 3),
            "median_score_right": round(statistics.median([r["score"] for r in rows if r["section_ok"]] or [0.0]), 3),
            "rows": rows,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write every question's outcome here")
    args = parser.parse_args()
    embedder = Embedder.from_settings(Settings.load(config_file=None))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, generated in (("before", False), ("after", True)):
            work = Path(tmp) / name
            work.mkdir()
            results[name] = measure(build(work, embedder, generated))
    print(f"{'':8}{'lang':5}{'section@1':>11}{'document@1':>12}{'answered':>10}{'answered right':>16}")
    for name, by_lang in results.items():
        for lang, r in by_lang.items():
            print(f"{name:8}{lang:5}{r['section@1']:>11.3f}{r['document@1']:>12.3f}{r['answered']:>10.3f}{r['answered_right']:>16.3f}")
    for lang in QUESTIONS:
        print(f"\n{lang}: question → top section (before → after)")
        for before, after in zip(results["before"][lang]["rows"], results["after"][lang]["rows"]):
            mark = lambda r: ("ok " if r["section_ok"] else "-- ") + ("H" if r["handoff"] else "A") + f" {r['score']:.2f}"  # noqa: E731
            print(f"  {before['question'][:40]:42} {mark(before)} → {mark(after)}   {str(after['top'])[:50]}")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
