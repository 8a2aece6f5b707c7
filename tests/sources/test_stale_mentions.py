"""A price change flags chat-mined answers that quote the old price, and sends them to a human."""

from __future__ import annotations

import csv
import json

from sqlalchemy import select

from kbops.db import session_scope
from kbops.pipeline import decide, extract_candidates, route_candidates, sync_sources, validate_candidates
from kbops.schema import KbEntry
from kbops.text import amounts
from tests.helpers import list_items

ANSWER = "这款电饭煲现在活动价299元，下单就能享受，库存充足。"


def _ingest(settings):
    result = sync_sources(settings)
    extract_candidates(settings)
    validate_candidates(settings)
    route_candidates(settings)
    return result


def _set_price(path, sku, price):
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    for row in rows:
        if row["sku"] == sku:
            row["price"] = price
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_amounts_read_prices_as_written_by_agents():
    assert "299.00" in amounts("现在299元") and "299.00" in amounts("costs 299.00 CNY") and "299.00" in amounts("299.0")
    assert "299.00" not in amounts("1299元 or 299.5 or 2990")
    assert "19.90" in amounts("19.9元") and "19.90" not in amounts("19元")


def test_a_chat_answer_quoting_the_old_price_is_withdrawn_and_queued_for_review(settings, store):
    sessions = [
        {"session_id": f"P{i}", "lang": "zh", "sku": "LM-1001", "turns": [{"role": "customer", "text": q}, {"role": "agent", "text": ANSWER}]}
        for i, q in enumerate(["电饭煲现在多少钱啊？", "这个电饭煲现在什么价格？"])
    ]
    (store / "chats" / "price_talk.jsonl").write_text("\n".join(json.dumps(s, ensure_ascii=False) for s in sessions), encoding="utf-8")
    _ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    with session_scope(settings) as db:
        mined = db.scalar(select(KbEntry).where(KbEntry.origin == "chat", KbEntry.answer == ANSWER))
    assert mined is not None and mined.status == "active"

    _set_price(store / "prices.csv", "LM-1001", "259.00")
    result = {r.source: r for r in _ingest(settings)}
    assert result["prices"].flagged == 1
    with session_scope(settings) as db:
        entry = db.get(KbEntry, mined.id)
    assert entry.status == "withdrawn" and "299.00" in entry.status_reason and "259.00" in entry.status_reason
    item = next(i for i in list_items(settings) if i.entry_key == mined.entry_key)
    assert item.evidence["stale_values"][0]["old"] == "299.00"
    assert any("299.00" in w for w in item.warnings)
    # The structured price entry moved on by rule; the chat answer waits for a human.
    with session_scope(settings) as db:
        price = db.scalar(select(KbEntry).where(KbEntry.entry_key == "product:LM-1001:price:zh"))
    assert price.status == "active" and "259.00" in price.answer
