"""End to end: both real DAGs (dag.test()) over the sample store, a review, a publish,
the bot's answers, and a price change that reaches the bot in one cycle."""

from __future__ import annotations

import csv
import json

import pytest

from kbops.index import release as rel
from kbops.pipeline import decide
from kbops.serve.retriever import Retriever
from tests.airflow_helpers import airflow_db, run_dags
from tests.helpers import list_items


def _set_price(path, sku, price):
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    for row in rows:
        if row["sku"] == sku:
            row["price"] = price
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.mark.slow
def test_ingest_review_publish_and_price_change(settings, store, embedder, tmp_path):
    home = tmp_path / "airflow"
    airflow_db(home)
    assert run_dags(home, settings, "kb_ingest") == {"kb_ingest": "success"}
    waiting = list_items(settings)
    assert waiting, "policies and mined chats wait for a reviewer"
    decide(settings, [i.id for i in waiting], "approve", by="e2e")
    assert run_dags(home, settings, "kb_publish") == {"kb_publish": "success"}
    first = rel.active_release_id(settings.index_dir)
    bot = Retriever(settings, embedder=embedder)
    before = bot.search("How much is the Lumi Smart Rice Cooker?")
    assert not before.handoff and "299.00" in before.top.answer

    _set_price(store / "prices.csv", "LM-1001", "259.00")
    assert run_dags(home, settings, "kb_ingest", "kb_publish") == {"kb_ingest": "success", "kb_publish": "success"}
    second = rel.active_release_id(settings.index_dir)
    assert second != first
    for question in ("How much is the Lumi Smart Rice Cooker?", "鹿米智能电饭煲多少钱？"):
        after = bot.search(question)
        assert after.release_id == second and not after.handoff
        assert "259.00" in after.top.answer
    served = json.loads((rel.releases_dir(settings.index_dir) / second / "entries.json").read_text(encoding="utf-8"))
    assert not [e for e in served if e["entry_key"].startswith("product:LM-1001:price") and "299.00" in e["answer"]]

    # Re-running both DAGs with nothing changed upstream changes nothing.
    assert run_dags(home, settings, "kb_ingest", "kb_publish") == {"kb_ingest": "success", "kb_publish": "success"}
    assert rel.active_release_id(settings.index_dir) == second
    assert bot.search("Can I pay with seashells on Mars?").handoff
