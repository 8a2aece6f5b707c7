"""kbops.sources.sync: mirroring the sample store into the KB database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kbops.db import session_scope
from kbops.errors import ConfigError, SourceError
from kbops.pipeline import sync_sources
from kbops.schema import ChatSession, QuarantinedRow, SourceRecord
from kbops.sources.sync import SyncResult


def by_source(results: list[SyncResult]) -> dict[str, SyncResult]:
    return {r.source: r for r in results}


def drop_rows(csv_path: Path, *skus: str) -> None:
    lines = csv_path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [ln for ln in lines if ln.split(",", 1)[0] not in skus]
    assert len(kept) == len(lines) - len(skus), "test setup: every sku must exist"
    csv_path.write_text("".join(kept), encoding="utf-8")


def set_price(csv_path: Path, sku: str, price: str) -> None:
    lines = csv_path.read_text(encoding="utf-8").splitlines(keepends=True)
    out = []
    for ln in lines:
        cells = ln.split(",")
        if cells[0] == sku:
            cells[1] = price
        out.append(",".join(cells))
    csv_path.write_text("".join(out), encoding="utf-8")


def current(settings, source: str, key: str) -> SourceRecord:
    with session_scope(settings) as db:
        return db.scalars(
            select(SourceRecord).where(SourceRecord.source == source, SourceRecord.key == key, SourceRecord.is_current.is_(True))
        ).one()


def live_keys(settings, source: str) -> set[str]:
    with session_scope(settings) as db:
        return set(
            db.scalars(
                select(SourceRecord.key).where(
                    SourceRecord.source == source, SourceRecord.is_current.is_(True), SourceRecord.deleted.is_(False)
                )
            )
        )


@pytest.fixture
def synced(settings):
    """A KB that has synced the unmodified sample store once."""
    first = by_source(sync_sources(settings))
    return settings, first


def test_first_sync_reports_new_records(synced):
    _, first = synced
    assert {name: r.new for name, r in first.items()} == {"products": 20, "prices": 20, "policies": 10, "chats": 40}
    assert all(r.changed == r.deleted == r.unchanged == r.held_back == 0 for r in first.values())


def test_first_sync_quarantines_the_bad_price_row(synced):
    settings, first = synced
    assert first["prices"].quarantined == 1
    assert "LM-1099" not in live_keys(settings, "prices")
    with session_scope(settings) as db:
        [row] = db.scalars(select(QuarantinedRow).where(QuarantinedRow.source == "prices")).all()
    assert row.location == "prices.csv:22"
    assert "待定" in row.reason
    assert "LM-1099" in row.raw
    assert all(r.quarantined == 0 for name, r in first.items() if name != "prices")


def test_second_sync_of_same_snapshot_changes_nothing(synced):
    settings, _ = synced
    second = by_source(sync_sources(settings))
    assert {name: r.unchanged for name, r in second.items()} == {"products": 20, "prices": 20, "policies": 10, "chats": 40}
    assert all(r.new == r.changed == r.deleted == r.relisted == 0 for r in second.values())
    assert current(settings, "prices", "LM-1001").version == 1


def test_edited_price_is_one_change_with_a_new_version(synced, store):
    settings, _ = synced
    set_price(store / "prices.csv", "LM-1001", "279.00")
    result = by_source(sync_sources(settings, only="prices"))["prices"]
    assert (result.changed, result.new, result.unchanged, result.deleted) == (1, 0, 19, 0)
    rec = current(settings, "prices", "LM-1001")
    assert rec.version == 2 and rec.payload["price"] == "279.00"


def test_removed_product_gets_a_tombstone(synced, store):
    settings, _ = synced
    drop_rows(store / "products.csv", "LM-1005")
    result = by_source(sync_sources(settings, only="products"))["products"]
    assert (result.deleted, result.unchanged, result.held_back) == (1, 19, 0)
    rec = current(settings, "products", "LM-1005")
    assert rec.deleted and rec.version == 2
    assert "LM-1005" not in live_keys(settings, "products")


def test_product_added_back_is_relisted(synced, store):
    settings, _ = synced
    original = (store / "products.csv").read_text(encoding="utf-8")
    drop_rows(store / "products.csv", "LM-1005")
    sync_sources(settings, only="products")
    (store / "products.csv").write_text(original, encoding="utf-8")
    result = by_source(sync_sources(settings, only="products"))["products"]
    assert (result.relisted, result.new, result.deleted) == (1, 0, 0)
    rec = current(settings, "products", "LM-1005")
    assert not rec.deleted and rec.version == 3
    assert rec.payload["name_en"] == "Lumi Portable Juicer Cup 350ml"


def test_mass_deletion_is_held_back_until_confirmed(synced, store):
    settings, _ = synced
    gone = [f"LM-10{n:02d}" for n in range(1, 8)]  # 7 of 20 = 35% > 30%
    drop_rows(store / "products.csv", *gone)

    held = by_source(sync_sources(settings, only="products"))["products"]
    assert held.held_back == 7 and held.deleted == 0
    assert any("--confirm-deletions" in m for m in held.messages)
    assert len(live_keys(settings, "products")) == 20

    confirmed = by_source(sync_sources(settings, only="products", confirm_deletions=True))["products"]
    assert confirmed.deleted == 7 and confirmed.held_back == 0
    assert live_keys(settings, "products").isdisjoint(gone)
    assert len(live_keys(settings, "products")) == 13


def test_duplicate_keys_in_one_snapshot_are_quarantined(synced, store):
    settings, _ = synced
    with (store / "prices.csv").open("a", encoding="utf-8") as fh:
        fh.write("LM-1001,1.00,CNY,,\n")
    result = by_source(sync_sources(settings, only="prices"))["prices"]
    assert result.quarantined == 2  # the 待定 row and the duplicate
    assert result.changed == 0 and result.deleted == 0
    with session_scope(settings) as db:
        reasons = [r.reason for r in db.scalars(select(QuarantinedRow).where(QuarantinedRow.run_id == result.run_id))]
    assert any("'LM-1001'" in r and "more than once" in r for r in reasons)
    # Neither duplicate wins: the version already in the KB stays.
    rec = current(settings, "prices", "LM-1001")
    assert rec.version == 1 and rec.payload["price"] == "299.00"


def test_redelivered_chat_sessions_are_not_duplicated(synced, store):
    settings, _ = synced
    first_line = (store / "chats" / "chats.jsonl").read_text(encoding="utf-8").splitlines()[0]
    (store / "chats" / "redelivery.jsonl").write_text(first_line + "\n", encoding="utf-8")
    result = by_source(sync_sources(settings, only="chats"))["chats"]
    assert (result.read, result.new, result.unchanged) == (41, 0, 41)
    with session_scope(settings) as db:
        assert db.scalar(select(func.count()).select_from(ChatSession)) == 40
        assert db.scalar(select(func.count()).select_from(ChatSession).where(ChatSession.session_key == "S0001")) == 1


def test_new_chat_session_is_added(synced, store):
    settings, _ = synced
    extra = {"session_id": "S9001", "lang": "en", "turns": [{"role": "customer", "text": "Hello?"}]}
    (store / "chats" / "more.jsonl").write_text(json.dumps(extra) + "\n", encoding="utf-8")
    result = by_source(sync_sources(settings, only="chats"))["chats"]
    assert (result.new, result.unchanged) == (1, 40)


PLANTED_IN_SAMPLE_CHATS = [
    "13812345678",
    "15900001234",
    "18600005678",
    "2026112012345678",
    "2026111409876543",
    "LM20261120-8841",
    "xiaolin_2026@example.com",
    "daniel.h.test@example.com",
    "m.rivera.test@example.com",
    "310115199203154321",
    "张江路88号",
    "建国路17号",
    "88 Century Avenue",
]


def test_stored_chat_turns_contain_no_private_data(synced):
    settings, _ = synced
    with session_scope(settings) as db:
        texts = [t["text"] for s in db.scalars(select(ChatSession)) for t in s.turns]
    assert len(texts) > 100
    blob = "\n".join(texts)
    assert [v for v in PLANTED_IN_SAMPLE_CHATS if v in blob] == []
    assert "[PHONE]" in blob and "[ORDER]" in blob and "[EMAIL]" in blob and "[ADDRESS]" in blob and "[ID]" in blob


def test_missing_path_raises_source_error_naming_it(settings, store):
    (store / "products.csv").unlink()
    with pytest.raises(SourceError) as err:
        sync_sources(settings, only="products")
    assert str(store / "products.csv") in str(err.value)


def test_unknown_source_name_raises_config_error(settings):
    with pytest.raises(ConfigError) as err:
        sync_sources(settings, only="inventory")
    assert "'inventory'" in str(err.value)
    assert "products" in str(err.value)


def test_unusable_file_deletes_nothing(synced, store):
    settings, _ = synced
    text = (store / "products.csv").read_text(encoding="utf-8")
    (store / "products.csv").write_text(text.replace("sku,", "SKU,", 1), encoding="utf-8")
    result = by_source(sync_sources(settings, only="products"))["products"]
    assert result.quarantined == 1
    assert result.deleted == 0 and result.held_back == 0
    assert any("no deletions" in m for m in result.messages)
    assert len(live_keys(settings, "products")) == 20


def test_nul_characters_are_quarantined_not_a_crash(synced, store):
    """PostgreSQL cannot store NUL in text; a row or document carrying one is refused with a reason."""
    settings, _ = synced
    with (store / "products.csv").open("a", encoding="utf-8") as fh:
        fh.write("LM-1999,空\x00字符,Nul\x00Lamp,lighting,3,standard,12\n")
    (store / "policies" / "binary.md").write_bytes(b"# Binary\n\n## What?\n\x00\x01 garbage\n")
    results = by_source(sync_sources(settings))
    assert results["products"].quarantined == 1 and results["policies"].quarantined == 1
    with session_scope(settings) as db:
        reasons = [r.reason for r in db.scalars(select(QuarantinedRow))]
    assert any("NUL character" in r and "remove it" in r for r in reasons)
    assert any("NUL character" in r and "plain UTF-8" in r for r in reasons)
    assert "LM-1999" not in live_keys(settings, "products")
