"""kbops.extract.extract_candidates: synced records and chats become candidates, once."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from kbops.db import session_scope
from kbops.extract import extract_candidates as extract_stage
from kbops.pipeline import extract_candidates, sync_sources
from kbops.schema import Candidate, SourceRecord


@pytest.fixture
def synced(settings):
    """A KB that has synced the unmodified sample store once."""
    sync_sources(settings)
    return settings


def candidates(settings, prefix: str) -> dict[str, Candidate]:
    with session_scope(settings) as db:
        rows = db.scalars(select(Candidate).where(Candidate.entry_key.startswith(prefix)).order_by(Candidate.id)).all()
    return {c.entry_key: c for c in rows}  # latest proposal per key


def test_product_fact_candidates_depend_on_the_record_versions_they_quote(synced):
    result = extract_candidates(synced)
    assert result.proposed > 0
    found = candidates(synced, "product:LM-1001:")
    assert set(found) == {f"product:LM-1001:{fact}:{lang}" for fact in ("price", "stock", "shipping", "warranty") for lang in ("zh", "en")}
    price_zh = found["product:LM-1001:price:zh"]
    assert price_zh.depends_on == ["prices/price/LM-1001@1", "products/product/LM-1001@1"]
    assert "299.00元" in price_zh.answer
    assert "299.00 CNY" in found["product:LM-1001:price:en"].answer
    assert found["product:LM-1001:stock:zh"].depends_on == ["products/product/LM-1001@1"]
    assert all(c.status == "new" and c.origin == "record" for c in found.values())


def test_quarantined_price_row_yields_no_candidate(synced):
    extract_candidates(synced)
    assert candidates(synced, "product:LM-1099:") == {}


def test_policy_and_chat_candidates_are_proposed(synced):
    extract_candidates(synced)
    policies = candidates(synced, "policy:policies:returns.zh.md:")
    assert policies and all(c.depends_on == ["policies/policy/returns.zh.md@1"] for c in policies.values())
    chats = candidates(synced, "chat:")
    hk = [c for c in chats.values() if c.lang == "en" and "Hong Kong" in c.question]
    assert len(hk) == 1 and hk[0].support >= 2
    assert all(c.support >= synced.min_chat_support for c in chats.values())


def test_extract_again_proposes_nothing(synced):
    first = extract_candidates(synced)
    second = extract_candidates(synced)
    assert first.proposed > 0
    assert (second.proposed, second.records, second.sessions) == (0, 0, 0)
    with session_scope(synced) as db:
        assert len(db.scalars(select(Candidate.id)).all()) == first.proposed


def test_price_change_proposes_new_price_candidates_on_the_new_version(synced, store):
    extract_candidates(synced)
    prices = store / "prices.csv"
    prices.write_text(prices.read_text(encoding="utf-8").replace("LM-1001,299.00,", "LM-1001,279.00,"), encoding="utf-8")
    sync_sources(synced, only="prices")
    result = extract_candidates(synced)
    assert result.proposed == 2  # price zh + en; the other facts did not change
    found = candidates(synced, "product:LM-1001:price:")
    assert found["product:LM-1001:price:zh"].depends_on == ["prices/price/LM-1001@2", "products/product/LM-1001@1"]
    assert "279.00元" in found["product:LM-1001:price:zh"].answer


def test_extract_commits_in_batches_and_a_crash_keeps_only_whole_batches(synced):
    """Records are marked extracted only together with their candidates, batch by batch, so a run
    killed after two batches leaves exactly those done and a re-run does the rest, once."""
    settings = replace(synced, extract_batch_size=10)
    commits: list[int] = []

    class Killed(Exception):
        pass

    with pytest.raises(Killed), session_scope(settings) as db:

        def commit() -> None:
            db.commit()
            commits.append(1)
            if len(commits) == 2:
                raise Killed

        extract_stage(db, settings, None, commit=commit)

    with session_scope(settings) as db:
        done = db.scalars(select(SourceRecord).where(SourceRecord.extracted.is_(True))).all()
        pending = db.scalars(select(SourceRecord).where(SourceRecord.extracted.is_(False), SourceRecord.is_current.is_(True))).all()
        proposed = set(db.scalars(select(Candidate.entry_key)))
    assert len(done) == 20 and len(pending) == 30  # 2 batches of 10 of the 50 records
    for record in done:
        if record.kind == "product":
            assert f"product:{record.key}:stock:en" in proposed

    rerun = extract_candidates(settings)
    assert rerun.records == 30
    with session_scope(settings) as db:
        assert not db.scalars(select(SourceRecord.id).where(SourceRecord.extracted.is_(False), SourceRecord.is_current.is_(True))).all()
        pairs = db.execute(select(Candidate.entry_key, Candidate.content_hash)).all()
        keys = set(db.scalars(select(Candidate.entry_key)))
    assert len(pairs) == len(set(pairs))  # nothing proposed twice
    assert {f"product:LM-10{n:02d}:price:zh" for n in range(1, 21)} <= keys
    assert any(k.startswith("policy:") for k in keys)
