"""A delisted product retires its entries; relisted, it comes back through its rule."""

from __future__ import annotations

from sqlalchemy import select

from kbops.db import session_scope
from kbops.pipeline import ingest
from kbops.schema import KbEntry


def _statuses(settings, sku):
    with session_scope(settings) as db:
        return {e.entry_key: e.status for e in db.scalars(select(KbEntry).where(KbEntry.entry_key.startswith(f"product:{sku}:")))}


def test_delisted_product_retires_and_relisted_comes_back(settings, store):
    products = store / "products.csv"
    original = products.read_text(encoding="utf-8")
    ingest(settings)
    assert set(_statuses(settings, "LM-1002").values()) == {"active"}

    products.write_text("".join(ln for ln in original.splitlines(keepends=True) if not ln.startswith("LM-1002,")), encoding="utf-8")
    result = ingest(settings)
    assert {s["source"]: s["deleted"] for s in result["sync"]}["products"] == 1
    statuses = _statuses(settings, "LM-1002")
    assert statuses and set(statuses.values()) == {"retired"}

    products.write_text(original, encoding="utf-8")
    result = ingest(settings)
    assert {s["source"]: s["relisted"] for s in result["sync"]}["products"] == 1
    assert set(_statuses(settings, "LM-1002").values()) == {"active"}
