"""`make demo`: the whole loop on the bundled sample store, ending in a self-check.

1. sync the sample store (products, prices, policies, chats) with the real
   ``kb_ingest`` DAG (``airflow dags test``);
2. structured facts are auto-approved by rule, everything else waits for review;
3. approve the waiting items through the same code path as ``kbops review approve``,
   then publish with the real ``kb_publish`` DAG;
4. ask the bot in Chinese and English;
5. change one price in the source, run both DAGs again, and check the bot now
   quotes the new price and no served entry still carries the old one;
6. check that an unanswerable question is handed off.

Exits non-zero if step 5 or 6 does not hold. The demo's KB lives under
KBOPS_HOME (default ./var) and is started from scratch on every run; the
embedding cache and Airflow's metadata DB are kept, so re-runs are quick.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from kbops.config import Settings
from kbops.db import init_db, session_scope
from kbops.index import release as rel
from kbops.index.golden import add_golden
from kbops.pipeline import check_golden, decide
from kbops.review.queue import list_items
from kbops.schema import PipelineRun
from kbops.serve.query_log import log_answer
from kbops.serve.retriever import Retriever

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sample_store"
SKU, OLD_PRICE, NEW_PRICE = "LM-1001", "299.00", "259.00"


def say(text: str = "") -> None:
    print(text, flush=True)


def step(n: int, title: str) -> None:
    say(f"\n\033[1m[{n}] {title}\033[0m")


def run_dag(dag_id: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", dag_id],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    took = time.perf_counter() - started
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).splitlines()
        cause = next((ln for ln in reversed(output) if "kbops.errors." in ln or "Error:" in ln), "see var/airflow/logs")
        raise SystemExit(f"demo: `airflow dags test {dag_id}` failed (exit {proc.returncode}): {cause.strip()}")
    say(f"    airflow dags test {dag_id}: ok in {took:.1f}s")
    return took


def runs_since(settings: Settings, run_id: int) -> list[PipelineRun]:
    with session_scope(settings) as db:
        return list(db.scalars(select(PipelineRun).where(PipelineRun.id > run_id).order_by(PipelineRun.id)))


def last_run_id(settings: Settings) -> int:
    with session_scope(settings) as db:
        return db.scalar(select(PipelineRun.id).order_by(PipelineRun.id.desc()).limit(1)) or 0


def show_ingest(settings: Settings, since: int) -> None:
    for run in runs_since(settings, since):
        s = run.stats
        if run.step == "sync":
            say(
                f"    sync {run.source:<9} read {s['read']:>3}  new {s['new']:>3}  changed {s['changed']:>2}  "
                f"unchanged {s['unchanged']:>3}  quarantined {s['quarantined']}  withdrawn {s['withdrawn']}"
                + ("  (files unchanged, not read)" if s.get("skipped") else "")
            )
            for message in s["messages"]:
                say(f"      ! {message}")
        elif run.step == "extract":
            say(f"    extract: {s['proposed']} new candidates ({s['unchanged']} unchanged, {s['exchanges']} chat exchanges mined)")
        elif run.step == "validate":
            say(f"    validate (great-expectations): {s['checked']} checked, {s['valid']} valid, {s['invalid']} invalid {s['failures'] or ''}")
        elif run.step == "route":
            rules = ", ".join(f"{k}: {v}" for k, v in s["by_rule"].items()) or "none"
            say(f"    route: {s['auto_approved']} auto-approved by rule ({rules}); {s['queued']} waiting for review")


def ask(retriever: Retriever, settings: Settings, question: str) -> dict:
    answer = retriever.search(question, top_k=3)
    log_answer(settings, answer)
    top = answer.top
    if answer.handoff or top is None:
        say(f"    Q: {question}\n       → handoff: true ({answer.reason}; best score {top.score if top else 0:.3f})  release {answer.release_id}")
    else:
        say(f"    Q: {question}\n       → {top.answer}\n         entry {top.entry_id}, score {top.score:.3f}, release {answer.release_id}, handoff: false")
    return answer.as_dict()


def set_price(prices: Path, sku: str, price: str) -> None:
    rows = list(csv.DictReader(prices.open(encoding="utf-8")))
    fields = list(rows[0].keys())
    for row in rows:
        if row["sku"] == sku:
            row["price"] = price
    tmp = prices.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, prices)


def main() -> int:
    base = Settings.load()
    store = base.home / "store"
    os.environ["KBOPS_SOURCES"] = str(store / "sources.toml")
    settings = Settings.load()

    say("kbops demo — the sample store 'Lumi Home 鹿米家居' through the whole loop")
    say(f"    KB home {settings.home}  (started from scratch; embedding cache kept)")
    # Fresh KB and index every run: the story is the same each time.
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(SAMPLE, store)
    if settings.database_url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(settings.database_url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    shutil.rmtree(settings.index_dir, ignore_errors=True)
    init_db(settings)

    step(1, "kb_ingest: sync products, prices, policies and chat logs")
    since = last_run_id(settings)
    run_dag("kb_ingest")
    step(2, "extract, validate, route (facts auto-approved by rule; the rest waits)")
    show_ingest(settings, since)

    step(3, "a reviewer approves the waiting items, then kb_publish builds a release")
    with session_scope(settings) as db:
        waiting = list_items(db)
    for item in waiting[:5]:
        say(f"    #{item.id:<4} {item.origin:<6} {item.lang}  {item.question[:60]}")
    if len(waiting) > 5:
        say(f"    … and {len(waiting) - 5} more")
    result = decide(settings, [i.id for i in waiting], "approve", by="demo-reviewer", note="approved in make demo")
    say(f"    kbops review approve … --by demo-reviewer: {result.approved} approved")
    run_dag("kb_publish")
    first_release = rel.active_release_id(settings.index_dir)
    if first_release is None:
        raise SystemExit("demo: kb_publish activated no release; see var/airflow/logs")
    manifest = rel.read_manifest(settings.index_dir, first_release)
    say(f"    active release {first_release}: {manifest['entry_count']} entries, {manifest['vector_count']} vectors")

    step(4, "the bot answers (Chinese and English)")
    retriever = Retriever(settings)
    answered = {}
    for q in ["鹿米智能电饭煲多少钱？", "How much is the Lumi Smart Rice Cooker?", "能开增值税专用发票吗？", "Do you ship to Hong Kong?", "退款多久能到账？"]:
        a = ask(retriever, settings, q)
        if not a["handoff"]:
            answered[q] = a["hits"][0]["entry_key"]
    with session_scope(settings) as db:
        add_golden(db, list(answered.items()), by="demo-operator")
    say(f"    kbops golden add … --by demo-operator: {len(answered)} golden questions pinned; "
        "a release that answers fewer of them is not activated")

    step(5, f"the price of {SKU} changes upstream: {OLD_PRICE} → {NEW_PRICE}")
    set_price(store / "prices.csv", SKU, NEW_PRICE)
    since = last_run_id(settings)
    run_dag("kb_ingest")
    show_ingest(settings, since)
    run_dag("kb_publish")
    release_id = rel.active_release_id(settings.index_dir) or first_release
    zh = ask(retriever, settings, "鹿米智能电饭煲多少钱？")
    en = ask(retriever, settings, "How much is the Lumi Smart Rice Cooker?")
    served = json.loads((rel.releases_dir(settings.index_dir) / release_id / "entries.json").read_text(encoding="utf-8"))
    stale = [e["entry_key"] for e in served if e["entry_key"].startswith(f"product:{SKU}:price") and OLD_PRICE in e["answer"]]
    checks = {
        "a new release is active": release_id != first_release,
        f"the bot quotes {NEW_PRICE} in Chinese": not zh["handoff"] and NEW_PRICE in (zh["answer"] or ""),
        f"the bot quotes {NEW_PRICE} in English": not en["handoff"] and NEW_PRICE in (en["answer"] or ""),
        f"no served entry still says {OLD_PRICE}": not stale,
    }
    golden = check_golden(settings, retriever.embedder)
    say(f"    golden questions on release {release_id}: {golden.correct}/{golden.total} answered correctly")
    checks["the new release answers every golden question"] = golden.total > 0 and golden.correct == golden.total

    step(6, "a question the KB cannot answer is handed off to a human")
    off = ask(retriever, settings, "你们老板最喜欢什么颜色？")
    off_en = ask(retriever, settings, "Can I pay with seashells on Mars?")
    checks["off-topic questions are handed off (handoff: true)"] = off["handoff"] and off_en["handoff"]

    say("\n\033[1mself-check\033[0m")
    for label, ok in checks.items():
        say(f"    {'PASS' if ok else 'FAIL'}  {label}")
    say("\nnext:")
    say("    .venv/bin/kbops review list        # the review queue (KBOPS_HOME=var)")
    say("    .venv/bin/kbops ask 积分怎么用       # ask the bot from the shell")
    say("    .venv/bin/kbops reviewers add lin   # a reviewer account for the review page")
    say("    make serve                          # the bot API on http://127.0.0.1:8000 (POST /search, /docs), review page at /review/")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
