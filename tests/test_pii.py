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
    ("我叫王小明，麻烦尽快处理", "王小明", "[NAME]"),
    ("收货人：李娜，电话稍后发您", "李娜", "[NAME]"),
    ("联系人 陈晓东 下午在家", "陈晓东", "[NAME]"),
    ("张先生您好，已为您登记", "张", "[NAME]"),
    ("Hi, my name is Daniel Hughes and my parcel is late", "Daniel Hughes", "[NAME]"),
    ("This is Sarah O'Neil from accounts", "Sarah", "[NAME]"),
    ("Mrs. Thompson asked for a refund", "Thompson", "[NAME]"),
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


# A chat-shaped corpus in both languages with every kind planted; nothing may survive.
PLANTED_CHATS_ZH = [
    ("您好，我叫刘德明，订单号2026112012345678一直没到", ["刘德明", "2026112012345678"]),
    ("收件人：赵敏，手机 139 0000 1234，地址北京市海淀区中关村大街27号1号楼802", ["赵敏", "139 0000 1234", "中关村大街27号"]),
    ("退款到卡号6217 0012 3456 7890 123，持卡人孙丽", ["6217 0012 3456 7890 123", "孙丽"]),
    ("身份证11010519900307123X，邮箱 zhao.min@corp.cn", ["11010519900307123X", "zhao.min@corp.cn"]),
    ("周女士的电话是+86-186-0000-5678", ["周", "186-0000-5678"]),
]
PLANTED_CHATS_EN = [
    ("My name is Oliver Grant, order #LM20261120-8841, phone +1 (415) 555-0199", ["Oliver Grant", "LM20261120-8841", "555-0199"]),
    ("Ship to 221 Baker Street, Apt 4B please, email oliver.grant@example.org", ["221 Baker Street", "oliver.grant@example.org"]),
    ("Regards, Emily Watson. Card 4111 1111 1111 1111", ["Emily Watson", "4111 1111 1111 1111"]),
    ("Mr. Patel will collect it; his number is 020 7946 0958", ["Patel", "7946 0958"]),
]


@pytest.mark.parametrize("corpus", [PLANTED_CHATS_ZH, PLANTED_CHATS_EN], ids=["zh", "en"])
def test_zero_leaks_in_planted_chat_corpus(corpus):
    leaks = [(text, value, scrub(text)) for text, values in corpus for value in values if value in scrub(text)]
    assert leaks == []
    # The whole conversation at once too (patterns must not depend on line starts).
    joined = scrub("\n".join(text for text, _ in corpus))
    assert [v for _, values in corpus for v in values if v in joined] == []


@pytest.mark.parametrize(
    "text",
    ["这位先生说可以", "This is great, thanks", "My name is not important", "王府井店有货吗", "请问李宁的鞋子有货吗"],
)
def test_names_are_not_guessed_without_a_cue(text):
    assert scrub(text) == text


def test_find_private_names_a_name():
    assert find_private("收货人：李娜") == ["NAME"]
