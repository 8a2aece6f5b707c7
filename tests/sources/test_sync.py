"""kbops.sources.sync: mirroring the sample store into the KB database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kbops.cli import main
from kbops.db import session_scope
from kbops.errors import ConfigError, SourceError
from kbops.pipeline import ingest, sync_source, sync_sources
from kbops.schema import ChatSession, KbEntry, PipelineRun, QuarantinedRow, SourceRecord
from kbops.sources.status import sources_status
from kbops.sources.sync import SyncResult, configured_sources


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


def test_missing_path_fails_the_source_naming_it(settings, store):
    (store / "products.csv").unlink()
    [result] = sync_sources(settings, only="products")
    assert result.status == "failed" and str(store / "products.csv") in result.error
    # The settings-level step for one source raises it (the Airflow task fails on it).
    with pytest.raises(SourceError) as err:
        sync_source(settings, configured_sources(settings, "products")[0])
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


# --- issue 12: bad input must not delete good knowledge ---------------------------------


def quarantine_reasons(settings, run_id: int) -> list[str]:
    with session_scope(settings) as db:
        return [r.reason for r in db.scalars(select(QuarantinedRow).where(QuarantinedRow.run_id == run_id))]


@pytest.mark.parametrize("bad", ["-5", "NaN", "1e308"])
def test_bad_price_row_for_an_existing_key_keeps_the_current_version(synced, store, bad):
    settings, _ = synced
    set_price(store / "prices.csv", "LM-1001", bad)
    result = by_source(sync_sources(settings, only="prices"))["prices"]
    assert (result.deleted, result.changed, result.quarantined) == (0, 0, 2)  # the 待定 row and this one
    assert any(repr(bad) in r and "current version of 'LM-1001' is kept" in r for r in quarantine_reasons(settings, result.run_id))
    rec = current(settings, "prices", "LM-1001")
    assert rec.version == 1 and not rec.deleted and rec.payload["price"] == "299.00"


def test_gbk_line_for_an_existing_key_keeps_the_current_version(synced, store):
    settings, _ = synced
    path = store / "products.csv"
    lines = path.read_bytes().split(b"\n")
    at = next(i for i, ln in enumerate(lines) if ln.startswith(b"LM-1002,"))
    lines[at] = lines[at].decode("utf-8").encode("gbk")
    path.write_bytes(b"\n".join(lines))
    result = by_source(sync_sources(settings, only="products"))["products"]
    assert (result.deleted, result.quarantined) == (0, 1)
    assert any("not valid UTF-8" in r and "current version of 'LM-1002' is kept" in r for r in quarantine_reasons(settings, result.run_id))
    assert "LM-1002" in live_keys(settings, "products")
    assert current(settings, "products", "LM-1002").version == 1


def test_a_key_with_a_good_and_a_bad_row_keeps_the_current_version(synced, store):
    """A refused row is a row: next to a good one for its key, neither is known to be right."""
    settings, _ = synced
    set_price(store / "prices.csv", "LM-1001", "279.00")
    with (store / "prices.csv").open("a", encoding="utf-8") as fh:
        fh.write("LM-1001,-5,CNY,,\n")
    result = by_source(sync_sources(settings, only="prices"))["prices"]
    assert (result.changed, result.deleted) == (0, 0)
    assert any("'LM-1001'" in r and "more than once" in r for r in quarantine_reasons(settings, result.run_id))
    assert current(settings, "prices", "LM-1001").payload["price"] == "299.00"


def test_three_hundred_digit_price_is_quarantined_naming_the_bound(synced, store):
    settings, _ = synced
    set_price(store / "prices.csv", "LM-1001", "9" * 300)
    result = by_source(sync_sources(settings, only="prices"))["prices"]
    assert (result.changed, result.deleted, result.quarantined) == (0, 0, 2)
    [reason] = [r for r in quarantine_reasons(settings, result.run_id) if "LM-1001" in r or "999" in r]
    assert "max_price" in reason and "KBOPS_MAX_PRICE" in reason
    assert current(settings, "prices", "LM-1001").payload["price"] == "299.00"


def test_max_price_comes_from_settings_and_per_source(settings, store):
    from dataclasses import replace

    low = replace(settings, max_price=100)
    result = by_source(sync_sources(low, only="prices"))["prices"]
    assert result.new == 4 and result.quarantined == 17  # 16 prices over 100.00, and the 待定 row
    toml = store / "sources.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('path = "prices.csv"', 'path = "prices.csv"\nmax_price = 1000'), encoding="utf-8")
    again = by_source(sync_sources(low, only="prices"))["prices"]
    assert again.quarantined == 2 and again.new == 15
    assert any("max_price 1000.00 of source 'prices'" in r for r in quarantine_reasons(settings, again.run_id))


def test_max_price_setting_must_be_a_positive_number():
    from kbops.config import Settings

    assert Settings.load(env={"KBOPS_MAX_PRICE": "5000"}, config_file=None).max_price == 5000
    with pytest.raises(ConfigError, match="KBOPS_MAX_PRICE"):
        Settings.load(env={"KBOPS_MAX_PRICE": "lots"}, config_file=None)
    with pytest.raises(ConfigError, match="max_price"):
        Settings.load(env={"KBOPS_MAX_PRICE": "-1"}, config_file=None)


def test_deleting_exactly_max_delete_share_is_held_back(synced, store):
    """6 of 20 is 30 %: the guard holds back at the share, not only above it."""
    settings, _ = synced
    drop_rows(store / "products.csv", *[f"LM-10{n:02d}" for n in range(15, 21)])
    held = by_source(sync_sources(settings, only="products"))["products"]
    assert (held.held_back, held.deleted) == (6, 0)
    assert len(live_keys(settings, "products")) == 20


def test_cut_off_last_row_makes_the_file_unusable(synced, store):
    """A file cut in the middle of a row (written while read) infers no deletions and changes nothing."""
    settings, _ = synced
    path = store / "products.csv"
    data = path.read_bytes()
    at = data.index(b"\nLM-1015,") + len(b"\nLM-1015,") + 4
    path.write_bytes(data[:at])
    result = by_source(sync_sources(settings, only="products"))["products"]
    assert (result.deleted, result.held_back, result.changed) == (0, 0, 0)
    assert any("cut off" in r for r in quarantine_reasons(settings, result.run_id))
    assert any("no deletions" in m for m in result.messages)
    assert len(live_keys(settings, "products")) == 20
    # The complete file is read again next time (the ledger holds no hash for the unusable file).
    path.write_bytes(data)
    after = by_source(sync_sources(settings, only="products"))["products"]
    assert not after.skipped and after.unchanged == 20


def test_missing_file_fails_only_its_source(synced, store):
    settings, _ = synced
    set_price(store / "prices.csv", "LM-1001", "279.00")
    (store / "products.csv").unlink()
    results = by_source(sync_sources(settings))
    failed = results["products"]
    assert failed.status == "failed" and str(store / "products.csv") in failed.error
    assert results["prices"].status == "ok" and results["prices"].changed == 1
    assert results["policies"].status == "ok" and results["chats"].status == "ok"
    with session_scope(settings) as db:
        run = db.get(PipelineRun, failed.run_id)
        assert run.status == "failed" and run.source == "products" and "does not exist" in run.error
        status = {s["source"]: s for s in sources_status(db, settings)}
    assert status["products"]["last_failure"]["error"] == run.error
    assert status["prices"]["last_failure"] is None
    assert len(live_keys(settings, "products")) == 20


def test_ingest_extracts_after_a_source_failed(settings, store):
    ingest(settings)
    set_price(store / "prices.csv", "LM-1001", "279.00")
    (store / "policies" / "returns.zh.md").unlink()
    (store / "chats" / "chats.jsonl").rename(store / "chats.moved")
    (store / "chats").rmdir()
    result = ingest(settings)
    assert [s["source"] for s in result["sync"] if s["status"] == "failed"] == ["chats"]
    assert result["failed"] == ["chats"]
    assert result["extract"]["proposed"] == 2  # the new price, zh + en
    with session_scope(settings) as db:
        entry = db.scalar(select(KbEntry).where(KbEntry.entry_key == "product:LM-1001:price:zh"))
    assert entry.status == "active" and "279.00" in entry.answer


def test_cli_sync_exits_non_zero_listing_the_failed_source(settings, store, capsys, monkeypatch):
    monkeypatch.setenv("KBOPS_HOME", str(settings.home))
    monkeypatch.setenv("KBOPS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KBOPS_SOURCES", str(store / "sources.toml"))
    (store / "prices.csv").unlink()
    assert main(["sync"]) == 1
    out = capsys.readouterr().out
    assert "prices" in out and "FAILED" in out and str(store / "prices.csv") in out
    assert "extracted" in out  # the other sources were extracted
    assert len(live_keys(settings, "products")) == 20
