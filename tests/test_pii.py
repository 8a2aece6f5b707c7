"""kbops.pii: private data never survives scrub(); ordinary text is left alone."""

from __future__ import annotations

import json
import time
import unicodedata
from pathlib import Path

import pytest

from kbops.pii import drop_placeholders, find_private, has_placeholder, learn_names, scrub, scrub_session

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


# --- issue 12: the planted set (tests/data/planted_private.jsonl), normalisation, sessions, remainders ---

DATA = Path(__file__).parent / "data"
PLANTED_SET = [json.loads(line) for line in (DATA / "planted_private.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
BENIGN_SET = [json.loads(line)["text"] for line in (DATA / "benign_texts.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
STORE = Path(__file__).parent.parent / "examples" / "sample_store"


def _survivors(planted: dict, out: str) -> list[str]:
    needles = [planted["value"], *planted.get("fragments", [])]
    return [n for n in needles if n in out or unicodedata.normalize("NFKC", n) in unicodedata.normalize("NFKC", out)]


def test_planted_set_has_at_least_100_values_in_both_languages():
    assert len(PLANTED_SET) >= 100
    assert {p["lang"] for p in PLANTED_SET} == {"zh", "en"}
    assert len({p["class"] for p in PLANTED_SET}) >= 20


@pytest.mark.parametrize("planted", PLANTED_SET, ids=[f"{p['class']}:{p['value']}" for p in PLANTED_SET])
def test_no_value_of_the_planted_set_survives(planted):
    """Each planted value, in the turn it was planted in (and the agent's reply for a name the customer gave)."""
    texts = [planted["text"]] + ([planted["reply"]] if planted.get("reply") else [])
    out = scrub_session(texts)
    assert _survivors(planted, " || ".join(out)) == [], out
    assert find_private(planted["text"]), planted["text"]


def _benign() -> list[str]:
    texts = list(BENIGN_SET)
    for doc in sorted((STORE / "policies").glob("*.md")):
        texts += [line for line in doc.read_text(encoding="utf-8").splitlines() if line.strip()]
    for table in ("products.csv", "prices.csv"):
        texts += (STORE / table).read_text(encoding="utf-8").splitlines()
    return texts


def test_benign_texts_are_unchanged():
    """Prices, SKUs (LM-1001), dates, sizes (3L), counts, a 400 hotline, the sample store's policies: no false positive."""
    changed = [(t, scrub(t)) for t in _benign() if scrub(t) != t or find_private(t)]
    assert changed == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # full-width forms are read as ASCII, and what is kept stays as written (full-width comma)
        ("手机１３８１２３４５６７８，麻烦回电", "手机[PHONE]，麻烦回电"),
        ("邮箱ｘｘ＠ｑｑ．ｃｏｍ，谢谢", "邮箱[EMAIL]，谢谢"),
        # zero-width characters and Unicode dashes do not hide a number
        ("电话138\u200b1234\u200b5678吧", "电话[PHONE]吧"),
        ("电话138\u20131234\u20135678吧", "电话[PHONE]吧"),
        # an area code right after a CJK character (the old look-behind (?<![\d\w]) failed there)
        ("座机010-62345678，工作日都有人", "座机[PHONE]，工作日都有人"),
        ("电话（0571）88776655", "电话[PHONE]"),
        ("手机138.1234.5679", "手机[PHONE]"),
        ("call me on 415.555.0123", "call me on [PHONE]"),
    ],
)
def test_normalised_forms_are_scrubbed_and_the_rest_kept_as_written(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的微信号 lumi_fan88，加一下", "我的微信号 [WECHAT]，加一下"),
        ("vx: wf_20261120", "vx: [WECHAT]"),
        ("加我wxid_8k2j9s0d1f", "加我[WECHAT]"),
        ("QQ号 384756291", "QQ号 [QQ]"),
        ("护照号E12345678", "护照号[PASSPORT]"),
        ("passport number 533821946", "passport number [PASSPORT]"),
        ("寄到海淀区上庄镇永丰路690号", "寄到[ADDRESS]"),
        ("Ship to Flat 5, 12 rue de la Paix, Paris", "Ship to [ADDRESS], [ADDRESS], Paris"),
        ("deliver to Hauptstraße 5, Berlin", "deliver to [ADDRESS], Berlin"),
        ("我是刘静怡，想问个问题", "我是[NAME]，想问个问题"),
        ("Hi, I'm Oliver Brennan", "Hi, I'm [NAME]"),
        # (a non-ASCII local part has no visible start inside Chinese text: it may take the words before it along)
        ("发到 名字@公司.中国 就行", "发到 [EMAIL] 就行"),
        ("发到ｗａｎｇ８８＠１６３．ｃｏｍ吧", "发到[EMAIL]吧"),
    ],
)
def test_new_pattern_families(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "WeChat Pay and Alipay are both accepted.",
        "You can follow our WeChat official account for coupons.",
        "微信支付和支付宝都可以",
        "The QQ Music membership is not included.",
        "Passport photos are not required for invoices.",
        "Place your order within 3 days to get the discount.",
        "Via express delivery it takes 2 days.",
        "Spring 2026 collection is now available.",
        "这款沙发3座版本售价1299元。",
        "客服热线400-820-8820，工作时间9:00-21:00。",
        "I'm looking for a kettle under 100 CNY.",
        "我是新用户，能用优惠券吗？",
    ],
)
def test_new_families_leave_look_alikes_alone(text):
    assert scrub(text) == text


def test_address_remainder_after_a_partial_scrub_is_scrubbed():
    """What an earlier, partial scrub left after [ADDRESS] (the building and room) is an address too."""
    assert scrub("[ADDRESS]SOHO现代城5号楼1203室") == "[ADDRESS]"
    assert scrub("改成北京市朝阳区建国路88号SOHO现代城5号楼1203室，谢谢") == "改成[ADDRESS]，谢谢"
    assert scrub("地址[ADDRESS]望京SOHO塔3-1508室") == "地址[ADDRESS]"
    # a JDDC placeholder with nothing after it is left as it is
    assert scrub("已发往[地址x]，请查收") == "已发往[地址x]，请查收"


def test_a_name_given_once_is_scrubbed_in_every_turn_of_the_session():
    turns = ["我叫王芳，刚下的单", "王芳您好，很高兴为您服务", "谢谢", "好的王芳，祝您愉快"]
    assert scrub_session(turns) == ["我叫[NAME]，刚下的单", "[NAME]您好，很高兴为您服务", "谢谢", "好的[NAME]，祝您愉快"]
    # the given name of a three-character name, and English first names
    assert scrub_session(["我叫林晓雨", "晓雨您好"]) == ["我叫[NAME]", "[NAME]您好"]
    assert scrub_session(["I'm Harriet Quill", "Hi Harriet, thanks"]) == ["I'm [NAME]", "Hi [NAME], thanks"]
    # another session does not know the name
    assert scrub("王芳您好") == "王芳您好"


def test_learned_names_are_whole_words_and_not_a_single_surname():
    assert learn_names(["张先生您好"]) == set()
    assert scrub_session(["I'm Grant Wood", "we grant refunds within 7 days"]) == ["I'm [NAME]", "we grant refunds within 7 days"]


@pytest.mark.parametrize(
    ("text", "kinds"),
    [("微信号 lumi_fan88", ["WECHAT"]), ("QQ号 384756291", ["QQ"]), ("护照号E12345678", ["PASSPORT"]), ("座机010-62345678", ["PHONE"]), ("我是刘静怡", ["NAME"])],
)
def test_find_private_names_the_new_kinds(text, kinds):
    assert find_private(text) == kinds


@pytest.mark.parametrize(
    ("text", "expected", "kinds"),
    [
        ("验证码482913，你帮我登录一下", "验证码[SECRET]，你帮我登录一下", ["SECRET"]),
        ("The verification code is 918273.", "The verification code is [SECRET].", ["SECRET"]),
        ("我手机尾号5678，帮我查下订单", "我手机尾号[PHONE]，帮我查下订单", ["PHONE"]),
        ("退到尾号0423的那张卡就行", "退到尾号[CARD]的那张卡就行", ["CARD"]),
        ("the last four digits of my phone are 0932", "the last four digits of my phone are [PHONE]", ["PHONE"]),
        ("IP: 10.0.0.1", "IP: [IP]", ["IP"]),
        ("I logged in from 203.0.113.42 and got blocked", "I logged in from [IP] and got blocked", ["IP"]),
        ("车牌京A·12345的车会来取", "车牌[PLATE]的车会来取", ["PLATE"]),
    ],
)
def test_secrets_number_tails_addresses_and_plates_are_scrubbed(text, expected, kinds):
    """A one-time code or password, the last digits of a phone or card, an IP address, a licence plate."""
    assert scrub(text) == expected
    assert find_private(text) == kinds


@pytest.mark.parametrize(
    "text",
    ["Firmware 2.1.0.3 fixes the Wi-Fi bug.", "版本 v3.10.2.15", "My payment password is locked", "验证码5分钟内有效", "Meet at 12:30:45"],
)
def test_versions_times_and_talk_about_passwords_are_not_private(text):
    assert scrub(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("咨询订单号:[订单x] 订单金额:[金额x] 下单时间:[日期x] 商品降价了", "商品降价了"),
        ("[订单编号:[订单x]，订单金额:[金额x]，下单时间:[日期x]", "， ，"),
        ("我的手机号[PHONE]换了怎么改", "我的手机号 换了怎么改"),
        ("Please cancel order {{Order Number}} today", "Please cancel order today"),
        ("How much is the Lumi Air Fryer [5L]?", "How much is the Lumi Air Fryer [5L]?"),  # brackets that are no placeholder stay
    ],
)
def test_drop_placeholders_leaves_what_was_asked(text, expected):
    assert " ".join(drop_placeholders(text).split()) == expected


# One megabyte of the worst input for each pattern family: linear (a few passes), never backtracking.
_MB = 1_000_000
WORST_INPUTS = {
    "digits": "1" * _MB,
    "full-width digits": "１" * _MB,
    "cjk": "我" * _MB,
    "admin units": "区" * _MB,
    "road numbers": "路1号" * (_MB // 3),
    "estates": "花园1栋" * (_MB // 4),
    "email local part": "a" * _MB,
    "email at": "a@" * (_MB // 2),
    "cjk email": "名@公." * (_MB // 4),
    "email dots": "a." * (_MB // 2),
    "name cues": "我是王" * (_MB // 3),
    "english name cues": "I'm Ab " * (_MB // 7),
    "placeholders": "[ADDRESS]" * (_MB // 9),
    "wechat cues": "微信" * (_MB // 2),
    "wechat ids": "vx a1" * (_MB // 5),
    "european streets": "Via Ab " * (_MB // 7),
    "street numbers": "1 Ab " * (_MB // 5),
    "phone separators": "1-" * (_MB // 2),
    "parentheses": "(0" * (_MB // 2),
    "address cues": "地址1" * (_MB // 3),
    "secret cues": "验证码" * (_MB // 3),
    "secret values": "密码是a" * (_MB // 4),
    "english secrets": "PIN is a" * (_MB // 8),
    "number tails": "尾号1" * (_MB // 3),
    "ip octets": "1." * (_MB // 2),
    "ipv6 groups": "a:" * (_MB // 2),
    "plates": "京A" * (_MB // 2),
    "field labels": "订单号:[" * (_MB // 5),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(WORST_INPUTS))
def test_scrub_stays_linear_on_one_megabyte(family):
    text = WORST_INPUTS[family]
    start = time.perf_counter()
    scrub(text)
    find_private(text)
    drop_placeholders(text)
    # ~1 s per pass on this machine; a quadratic pattern would take hours.
    assert time.perf_counter() - start < 15
