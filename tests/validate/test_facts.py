"""kbops.validate.facts: an answer's numbers must match the current version of the fact."""

from __future__ import annotations

import pytest

from kbops.validate.facts import FactBook, conflicts, linked_skus, number, policy_mentions, price_mentions, stock_mentions, warranty_mentions

BOOK = FactBook(
    products={
        "LM-1001": {"price": ("299.00", "prices/price/LM-1001@2"), "stock": (142, "products/product/LM-1001@1"), "warranty_months": (24, "products/product/LM-1001@1")},
        "LM-1004": {"price": ("599.00", "prices/price/LM-1004@1"), "stock": (0, "products/product/LM-1004@1")},
    },
    old_prices={"LM-1001": {"329.00": "prices/price/LM-1001@1"}},
    policy={
        "return_window": {"7": ["policies/policy/returns.zh.md@1"]},
        "free_shipping_threshold": {"99": ["policies/policy/shipping.zh.md@1"]},
        "shipping_fee": {"10": ["policies/policy/shipping.zh.md@1"]},
    },
)


@pytest.mark.parametrize(("raw", "canonical"), [("7", "7"), ("七", "7"), ("十五", "15"), ("三十", "30"), ("seven", "7"), ("99.0", "99"), ("19.9", "19.90")])
def test_numbers_are_read_the_way_people_write_them(raw, canonical):
    assert number(raw) == canonical


def test_policy_mentions_in_both_languages():
    assert policy_mentions("支持7天无理由退货，满99元包邮，不满99元收取10元运费。") == {"return_window": {"7"}, "free_shipping_threshold": {"99"}, "shipping_fee": {"10"}}
    assert policy_mentions("We offer 7-day no-reason returns; orders under 99 CNY have a 10 CNY shipping fee.") == {"return_window": {"7"}, "shipping_fee": {"10"}}
    assert policy_mentions("支持七天无理由退货") == {"return_window": {"7"}}


def test_price_mentions_skip_fees_thresholds_and_old_prices():
    assert price_mentions("原价399元，现价299元") == {"299.00"}
    assert price_mentions("满99元包邮，这款售价¥259") == {"259.00"}
    assert price_mentions("每实付1元可获得1积分") == set()
    assert price_mentions("The kettle costs 89.00 CNY; orders of 99 CNY or more ship free") == {"89.00"}


def test_stock_and_warranty_mentions():
    assert stock_mentions("仅剩3件") == ({3}, False, False)
    assert stock_mentions("目前暂时缺货，可点击到货通知") == (set(), True, False)
    assert stock_mentions("现在有现货") == (set(), False, True)
    assert warranty_mentions("提供24个月质保") == {24} and warranty_mentions("质保2年") == {24}
    assert warranty_mentions("comes with a 12-month warranty") == {12}


def test_consistent_answers_have_no_conflict():
    assert conflicts("鹿米智能电饭煲现在售价299元，有现货，提供24个月质保。支持7天无理由退货。", {"LM-1001"}, BOOK) == []
    assert conflicts("料理机目前暂时缺货，到货后会提醒您。", {"LM-1004"}, BOOK) == []


@pytest.mark.parametrize(
    ("answer", "skus", "expected"),
    [
        ("支持15天无理由退货。", set(), "no-reason return window: answer says 15 days, policies/policy/returns.zh.md@1 says 7 days"),
        ("订单满199元包邮。", set(), "free-shipping threshold: answer says 199 CNY, policies/policy/shipping.zh.md@1 says 99 CNY"),
        ("这款电饭煲现在329元。", {"LM-1001"}, "price: answer says 329.00 (the old price, prices/price/LM-1001@1), prices/price/LM-1001@2 says 299.00"),
        ("仅剩3件，欲购从速。", {"LM-1001"}, "stock: answer says 3 left, products/product/LM-1001@1 says 142"),
        ("料理机有现货，今天发货。", {"LM-1004"}, "stock: answer says in stock, products/product/LM-1004@1 says 0 in stock"),
        ("电饭煲目前缺货。", {"LM-1001"}, "stock: answer says out of stock, products/product/LM-1001@1 says 142 in stock"),
        ("提供12个月质保。", {"LM-1001"}, "warranty: answer says 12 months, products/product/LM-1001@1 says 24 months"),
        ("支持<b>15天</b>无理由退货。", set(), "no-reason return window: answer says 15 days"),
    ],
)
def test_contradictions_name_both_values_and_the_record(answer, skus, expected):
    found = conflicts(answer, skus, BOOK)
    assert any(c.startswith(expected) for c in found), found


def test_product_facts_apply_only_to_linked_skus():
    assert conflicts("这款售价259元。", set(), BOOK) == []
    assert conflicts("这款售价259元。", {"LM-9999"}, BOOK) == []


def test_linked_skus_from_dependencies_and_evidence():
    row = {"depends_on": ["products/product/LM-1001@1", "prices/price/LM-1002@3", "policies/policy/returns.zh.md@1"], "evidence": {"skus": ["LM-1003"], "sku": "LM-1004"}}
    assert linked_skus(row) == {"LM-1001", "LM-1002", "LM-1003", "LM-1004"}
