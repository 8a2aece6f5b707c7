"""kbops.validate.validate_candidates: every new candidate ends valid or invalid with reasons."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kbops.db import session_scope
from kbops.extract import extract_candidates
from kbops.schema import Candidate
from kbops.sources.sync import sync_sources
from kbops.validate import validate_candidates

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
