"""kbops.validate.validate_candidates: every new candidate ends valid or invalid with reasons."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kbops.db import session_scope
from kbops.pipeline import extract_candidates, sync_sources, validate_candidates
from kbops.schema import Candidate

BAD_POLICY = """# 售后联系方式

## 怎么联系售后？
请拨打13812345678联系售后客服。

## 我的订单发货了吗？
您的[订单x]已经发货，预计明天送达。

## 售后服务时间是几点到几点？
售后客服每天9:00-21:00在线，节假日照常服务。
"""


@pytest.fixture
def extracted_with_bad_policy(settings, store):
    """Sample store plus a policy document with two unpublishable sections, synced and extracted."""
    (store / "policies" / "contact.zh.md").write_text(BAD_POLICY, encoding="utf-8")
    sync_sources(settings)
    extract_candidates(settings)
    return settings


def by_question(settings) -> dict[str, Candidate]:
    with session_scope(settings) as db:
        return {c.question: c for c in db.scalars(select(Candidate))}


def test_bad_sections_are_invalid_with_reasons_and_the_rest_valid(extracted_with_bad_policy):
    result = validate_candidates(extracted_with_bad_policy)
    assert result.invalid == 2
    assert result.valid == result.checked - 2 > 0
    assert result.failures == {"private_data": 1, "placeholder": 1}
    found = by_question(extracted_with_bad_policy)
    assert found["怎么联系售后？"].status == "invalid"
    assert found["怎么联系售后？"].reasons[0].startswith("private_data")
    assert found["我的订单发货了吗？"].status == "invalid"
    assert found["我的订单发货了吗？"].reasons[0].startswith("placeholder")
    assert found["售后服务时间是几点到几点？"].status == "valid"
    assert found["售后服务时间是几点到几点？"].reasons == []


def test_validate_again_checks_nothing(extracted_with_bad_policy):
    validate_candidates(extracted_with_bad_policy)
    again = validate_candidates(extracted_with_bad_policy)
    assert (again.checked, again.valid, again.invalid) == (0, 0, 0)


# --- the gate against a real KB: reports, facts, near-duplicates, resubmission -------------------

from kbops.db import session_scope as _scope  # noqa: E402
from kbops.kb.audit import audit_events  # noqa: E402
from kbops.pipeline import decide, resubmit, route_candidates  # noqa: E402
from kbops.schema import KbEntry, PipelineRun, ReviewItem, ValidationReport  # noqa: E402
from tests.helpers import get_report, list_items  # noqa: E402
from tests.validate import corpus_kit  # noqa: E402


@pytest.fixture
def live_kb(settings):
    """The sample store fully approved: active entries and current records to check against."""
    corpus_kit.build_kb(settings)
    return settings


def _add(settings, *rows):
    rows = [{"id": f"r{i}", **row} for i, row in enumerate(rows)]
    return corpus_kit.insert(settings, rows, "t")


@pytest.mark.slow
def test_each_run_stores_a_report_linked_from_the_run_ledger(live_kb):
    ids = _add(live_kb, {"lang": "zh", "question": "退款退到哪里？", "answer": "退款已退到您的银行卡6222021234567890123。"})
    result = validate_candidates(live_kb)
    with _scope(live_kb) as db:
        run = db.get(PipelineRun, result.run_id)
        report = db.get(ValidationReport, run.stats["report_id"])
        assert report.run_id == run.id and report.checked == 1 and report.invalid == 1
        assert report.failures == {"private_data": 1}
        [row] = report.rows
        assert row["candidate_id"] == ids["r0"] and row["status"] == "invalid" and row["reasons"][0].startswith("private_data")
        assert report.statistics["suite"] == "kbops_candidates" and report.statistics["failed_rows_by_rule"]["private_data"] == 1
    assert get_report(live_kb).id == report.id


@pytest.mark.slow
def test_a_contradicted_fact_blocks_the_candidate_with_both_values(live_kb):
    ids = _add(
        live_kb,
        {"lang": "zh", "question": "不喜欢能退吗？", "answer": "支持15天无理由退货，商品未使用即可申请。"},
        {"lang": "zh", "question": "电饭煲现在什么价？", "answer": "鹿米智能电饭煲 3L现在售价259元。", "evidence": {"skus": ["LM-1001"]}},
        {"lang": "zh", "question": "电饭煲现在卖多少钱呀？", "answer": "鹿米智能电饭煲 3L现在售价299元。", "evidence": {"skus": ["LM-1001"]}},
    )
    validate_candidates(live_kb)
    with _scope(live_kb) as db:
        window, price, right = (db.get(Candidate, ids[k]) for k in ("r0", "r1", "r2"))
        assert window.status == "invalid" and "answer says 15 days" in window.reasons[0] and "policies/policy/returns." in window.reasons[0] and "says 7 days" in window.reasons[0]
        assert price.status == "invalid" and "answer says 259.00" in price.reasons[0] and "says 299.00" in price.reasons[0]
        assert right.status == "valid", right.reasons


@pytest.mark.slow
def test_a_near_duplicate_is_routed_as_an_alternate_question_proposal(live_kb):
    ids = _add(live_kb, {"lang": "en", "question": "How can I get an invoice?", "answer": "Every order comes with an electronic invoice you can download."})
    result = validate_candidates(live_kb)
    assert result.near_duplicates == 1 and result.valid == 1
    with _scope(live_kb) as db:
        target = db.scalar(select(KbEntry).where(KbEntry.question == "Can I get an invoice?"))
        c = db.get(Candidate, ids["r0"])
        assert c.evidence["near_duplicate"]["entry_key"] == target.entry_key
    routed = route_candidates(live_kb)
    assert routed.queued == 1 and routed.auto_approved == 0
    [item] = [i for i in list_items(live_kb) if i.candidate_id == ids["r0"]]
    assert item.proposed_merge_into == target.entry_key
    assert any(w.startswith("near_duplicate") for w in item.warnings)
    # Approving the proposal adds the question to the existing entry; no new entry appears.
    assert decide(live_kb, [item.id], "approve", by="lin").merged == 1
    with _scope(live_kb) as db:
        assert "How can I get an invoice?" in db.get(KbEntry, target.id).alt_questions
        assert db.scalar(select(KbEntry).where(KbEntry.entry_key == item.entry_key)) is None


@pytest.mark.slow
def test_a_refused_candidate_is_fixed_and_resubmitted(live_kb):
    ids = _add(live_kb, {"lang": "zh", "question": "订单多久发货？", "answer": "您的[订单x]已经发货，请拨打13812345678查询。"})
    validate_candidates(live_kb)
    with pytest.raises(Exception, match="--by"):
        resubmit(live_kb, ids["r0"], by=" ", answer="x")
    still = resubmit(live_kb, ids["r0"], by="lin", answer="您的订单已经发货，请拨打13812345678查询。")
    assert still.status == "invalid" and [r.split(":")[0] for r in still.reasons] == ["private_data"]
    fixed = resubmit(live_kb, ids["r0"], by="lin", answer="付款后48小时内发货，发货后可在订单详情页查看物流。")
    assert fixed.status == "queued" and fixed.reasons == []
    assert any(i.candidate_id == ids["r0"] for i in list_items(live_kb))
    with _scope(live_kb) as db:
        events = [e for e in audit_events(db, limit=10) if e.action == "resubmit"]
        assert len(events) == 2 and events[0].actor == "lin" and events[0].before["answer"].startswith("您的订单")
        assert events[0].after["answer"].startswith("付款后")


@pytest.mark.slow
def test_a_declared_template_slot_is_not_an_unresolved_placeholder(live_kb):
    ids = _add(live_kb, {"lang": "en", "question": "Where can I follow my parcel?", "answer": "Track order {{Order Number}} on the order details page."})
    validate_candidates(live_kb)
    with _scope(live_kb) as db:
        assert db.get(Candidate, ids["r0"]).status == "invalid"
    assert resubmit(live_kb, ids["r0"], by="lin", template_slots=["Order Number"]).status == "queued"


@pytest.mark.slow
def test_stale_fact_flagged_by_sync_waits_for_an_edit(live_kb):
    """A candidate the sync re-proposed with stale_values reaches a reviewer, but only an edited answer is applied."""
    ids = _add(
        live_kb,
        {
            "lang": "zh",
            "question": "电饭煲活动价多少？",
            "answer": "这款电饭煲现在活动价259元，下单就能享受。",
            "evidence": {"skus": ["LM-1001"], "stale_values": [{"record": "prices/price/LM-1001@2", "old": "259.00", "new": "299.00"}]},
        },
    )
    validate_candidates(live_kb)
    route_candidates(live_kb)
    [item] = [i for i in list_items(live_kb) if i.candidate_id == ids["r0"]]
    assert any(w.startswith("fact_conflict") and "259.00" in w for w in item.warnings)
    refused = decide(live_kb, [item.id], "approve", by="lin")
    assert refused.approved == 0 and "fact_conflict" in refused.errors[item.id]
    with _scope(live_kb) as db:
        assert db.get(ReviewItem, item.id).state == "open"
    fixed = decide(live_kb, [item.id], "approve", by="lin", answer="这款电饭煲现在售价299元，下单就能享受。")
    assert fixed.approved == 1
