"""kbops.pii: private data never survives scrub(); ordinary text is left alone."""

from __future__ import annotations

import pytest

from kbops.pii import find_private, has_placeholder, scrub

# (text a customer might type, the private value planted in it, the placeholder expected)
PLANTED = [
    ("手机13812345678，麻烦回电", "13812345678", "[PHONE]"),
    ("电话：+86 138 1234 5678", "138 1234 5678", "[PHONE]"),
    ("电话 +8613912345678", "13912345678", "[PHONE]"),
    ("call me on +86-139-0000-1234 please", "139-0000-1234", "[PHONE]"),
    ("号码是138-1234-5678", "138-1234-5678", "[PHONE]"),
    ("138 1234 5678 这个号码", "138 1234 5678", "[PHONE]"),
    ("开好了能发到我邮箱吗？xiaolin_2026@example.com", "xiaolin_2026@example.com", "[EMAIL]"),
    ("My email is Daniel.H.Test@Example.co.uk if you need it.", "Daniel.H.Test@Example.co.uk", "[EMAIL]"),
    ("我的身份证是310115199203154321，抬头写个人就行", "310115199203154321", "[ID]"),
    ("身份证号11010519900307123X", "11010519900307123X", "[ID]"),
    ("身份证号 11010519900307123x", "11010519900307123x", "[ID]"),
    ("退款到卡号6222021234567890", "6222021234567890", "[CARD]"),
    ("卡号 6222 0212 3456 7890 123", "6222 0212 3456 7890 123", "[CARD]"),
    ("card 6217001234567890123 please", "6217001234567890123", "[CARD]"),
    ("订单号 2026112012345678，麻烦帮我看一下", "2026112012345678", "[ORDER]"),
    ("订单编号：2026111409876543", "2026111409876543", "[ORDER]"),
    ("Hello, my order #LM20261120-8841 has the wrong address.", "LM20261120-8841", "[ORDER]"),
    ("地址是上海市浦东新区张江路88号3栋1201，我白天都在家", "张江路88号3栋1201", "[ADDRESS]"),
    ("Please send it to 42 Baker Street, London.", "42 Baker Street", "[ADDRESS]"),
]


def test_no_planted_private_value_survives_scrub():
    survivors = [(text, value, scrub(text)) for text, value, _ in PLANTED if value in scrub(text)]
    assert survivors == []


def test_no_digits_of_a_planted_value_survive_scrub():
    """Not even a long run of the value's digits (a partly scrubbed number is still private)."""
    leaks = []
    for text, value, _ in PLANTED:
        digits = "".join(ch for ch in value if ch.isdigit())
        out_digits = "".join(ch for ch in scrub(text) if ch.isdigit())
        if len(digits) >= 8 and digits[-8:] in out_digits:
            leaks.append((text, scrub(text)))
    assert leaks == []


@pytest.mark.parametrize(("text", "value", "placeholder"), PLANTED, ids=[p[2] + ":" + p[1] for p in PLANTED])
def test_scrub_uses_typed_placeholder(text, value, placeholder):
    out = scrub(text)
    assert placeholder in out
    assert has_placeholder(out)


def test_scrub_keeps_the_text_around_private_data():
    assert scrub("订单号 2026112012345678，手机号13812345678，麻烦帮我看一下") == "[ORDER]，手机号[PHONE]，麻烦帮我看一下"


def test_all_planted_values_in_one_message_are_scrubbed():
    message = " ".join(text for text, _, _ in PLANTED)
    out = scrub(message)
    assert [value for _, value, _ in PLANTED if value in out] == []


def test_scrub_beijing_courtyard_address_completely():
    out = scrub("改成北京市朝阳区建国路17号院5号楼602，电话18600005678")
    # Over-scrubbing a neighbouring word is acceptable; leaking any part of the address is not.
    assert out.endswith("[ADDRESS]，电话[PHONE]")
    assert not any(part in out for part in ("建国路", "17号院", "5号楼", "602", "18600005678"))


@pytest.mark.parametrize(
    "text",
    [
        "鹿米智能电饭煲 3L现在的售价是299.00元。",
        "支持7天无理由退货。",
        "标准快递2-4天送达，偏远地区3-7天。",
        "满99元包邮，不满收取10元运费。",
        "签收后90天内都可以申请发票。",
        "100积分可以抵扣1元。",
        "The Lumi Soundbar 2.1 costs 799.00 CNY.",
        "LM-1001 comes with a 24-month warranty.",
        "Refunds arrive within 3-5 working days.",
    ],
)
def test_ordinary_text_is_unchanged(text):
    assert scrub(text) == text
    assert find_private(text) == []


@pytest.mark.parametrize("text", ["您的[订单x]已经发货", "[数字x]元", "寄到[地址x]", "联系[姓名x]", "Your order {{Order Number}} has shipped", "[PHONE]"])
def test_has_placeholder_recognises_jddc_and_own_placeholders(text):
    assert has_placeholder(text)


@pytest.mark.parametrize("text", ["支持7天无理由退货", "请看[注意事项]", "see [1] for details", "{ not a template }"])
def test_has_placeholder_false_for_plain_text(text):
    assert not has_placeholder(text)


def test_jddc_placeholders_are_left_as_they_are():
    assert scrub("您的[订单x]已发往[地址x]") == "您的[订单x]已发往[地址x]"


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("电话13812345678", ["PHONE"]),
        ("mail a@b.com", ["EMAIL"]),
        ("地址是上海市浦东新区张江路88号3栋1201", ["ADDRESS"]),
    ],
)
def test_find_private_names_the_kind(text, kinds):
    assert find_private(text) == kinds
