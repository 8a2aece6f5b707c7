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


def _set_price(store, sku: str, price: str) -> None:
    path = store / "prices.csv"
    path.write_text(
        "".join(f"{sku},{price}," + ln.split(",", 2)[2] if ln.startswith(f"{sku},") else ln for ln in path.read_text(encoding="utf-8").splitlines(keepends=True)),
        encoding="utf-8",
    )


def test_bad_price_row_keeps_the_served_price_entries(settings, store):
    """A price of -5 for an existing SKU is quarantined: the served entries stay active."""
    ingest(settings)
    before = _statuses(settings, "LM-1001")
    assert before["product:LM-1001:price:zh"] == "active"
    _set_price(store, "LM-1001", "-5")
    result = ingest(settings)
    assert {s["source"]: s["deleted"] for s in result["sync"]}["prices"] == 0
    assert _statuses(settings, "LM-1001") == before


def test_gbk_line_does_not_retire_the_product(settings, store):
    ingest(settings)
    path = store / "products.csv"
    lines = path.read_bytes().split(b"\n")
    at = next(i for i, ln in enumerate(lines) if ln.startswith(b"LM-1002,"))
    lines[at] = lines[at].decode("utf-8").encode("gbk")
    path.write_bytes(b"\n".join(lines))
    ingest(settings)
    assert set(_statuses(settings, "LM-1002").values()) == {"active"}


def _own(settings, sku):
    """The entries of exactly this SKU: ``product:{sku}:{fact}:{lang}``."""
    keys = {f"product:{sku}:{fact}:{lang}" for fact in ("price", "stock", "shipping", "warranty") for lang in ("zh", "en")}
    with session_scope(settings) as db:
        return {e.entry_key: e.status for e in db.scalars(select(KbEntry).where(KbEntry.entry_key.in_(keys)))}


def test_removing_a_product_retires_only_its_own_entries(settings, store):
    """Products keyed ``A`` and ``A:price``: removing ``A`` leaves ``product:A:price:*`` alone."""
    with (store / "products.csv").open("a", encoding="utf-8") as fh:
        fh.write("A,台灯甲,Desk Lamp A,lighting,50,standard,12\nA:price,台灯乙,Desk Lamp B,lighting,50,standard,12\n")
    with (store / "prices.csv").open("a", encoding="utf-8") as fh:
        fh.write("A,59.00,CNY,,\nA:price,69.00,CNY,,\n")
    ingest(settings)
    other = _own(settings, "A:price")
    assert len(other) == 8 and set(other.values()) == {"active"}
    assert len(_own(settings, "A")) == 8

    path = store / "products.csv"
    path.write_text("".join(ln for ln in path.read_text(encoding="utf-8").splitlines(keepends=True) if not ln.startswith("A,")), encoding="utf-8")
    ingest(settings)
    assert set(_own(settings, "A").values()) == {"retired"}
    assert _own(settings, "A:price") == other


def test_a_phrasing_a_reviewer_merged_survives_the_next_price_change(settings, store):
    """A reviewer taught the price entry a customer's phrasing (a merge); the price changed upstream and the
    entry was re-approved from the new record: the phrasing must still be asked, or the bot hands it off again."""
    from kbops.kb.entries import add_reviewer_questions

    ingest(settings)
    key = "product:LM-1001:price:zh"
    with session_scope(settings) as db:
        entry = db.scalar(select(KbEntry).where(KbEntry.entry_key == key))
        added = add_reviewer_questions(db, entry, ["电饭煲现在卖几块"], actor="lin", door="cli", note="test")
        assert added == ["电饭煲现在卖几块"]
    _set_price(store, "LM-1001", "279.00")
    ingest(settings)
    with session_scope(settings) as db:
        entry = db.scalar(select(KbEntry).where(KbEntry.entry_key == key))
        assert entry.status == "active" and "279" in entry.answer, "the new price was approved by its rule"
        assert "电饭煲现在卖几块" in entry.alt_questions
        assert entry.reviewer_questions == ["电饭煲现在卖几块"]
