"""kbops.extract.chats: recurring general questions in chat logs become FAQ proposals."""

from __future__ import annotations

from kbops.extract.chats import Exchange, group_exchanges, group_proposal, session_exchanges


def turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "text": text} for role, text in pairs]


DISHWASHER_SESSION = turns(
    ("customer", "在吗"),
    ("agent", "您好，很高兴为您服务，请问有什么可以帮您？"),
    ("customer", "电饭煲内胆可以放洗碗机洗吗？"),
    ("agent", "请稍等，正在为您查询~ 内胆不建议放洗碗机清洗，请用软布加中性洗洁精手洗。"),
    ("customer", "好的，谢谢"),
    ("agent", "不客气，祝您使用愉快~"),
)

HONG_KONG_SESSION = turns(
    ("customer", "Hi, do you ship to Hong Kong?"),
    (
        "agent",
        "Hello, thanks for contacting Lumi Home! Let me check that for you. "
        "We currently deliver to mainland China only, so we can't ship to Hong Kong.",
    ),
    ("customer", "Thanks"),
    ("agent", "You're welcome. Have a nice day!"),
)


def test_zh_exchange_skips_chitchat_and_filler():
    [ex] = session_exchanges("S0001", DISHWASHER_SESSION)
    assert ex.session == "S0001" and ex.turn == 2 and ex.lang == "zh"
    assert ex.question == "电饭煲内胆可以放洗碗机洗吗？"
    assert ex.answer == "内胆不建议放洗碗机清洗，请用软布加中性洗洁精手洗。"


def test_en_exchange_strips_greeting_and_filler():
    [ex] = session_exchanges("S0003", HONG_KONG_SESSION)
    assert ex.lang == "en"
    assert ex.question == "Do you ship to Hong Kong?"
    assert ex.answer == "We currently deliver to mainland China only, so we can't ship to Hong Kong."


def test_chitchat_only_session_has_no_exchanges():
    session = turns(("customer", "在吗"), ("agent", "您好，请问有什么可以帮您？"), ("customer", "谢谢"), ("agent", "不客气~"))
    assert session_exchanges("S1", session) == []


def test_filler_only_reply_is_not_an_answer():
    session = turns(("customer", "可以货到付款吗？"), ("agent", "请稍等，正在为您查询~"))
    assert session_exchanges("S1", session) == []


def test_order_specific_exchange_is_skipped():
    session = turns(
        ("customer", "我的快递到哪了？"),
        ("agent", "已为您查询到订单 [ORDER] 的物流，包裹已从仓库发出，预计明天送达。"),
        ("customer", "Where is my parcel [ORDER]?"),
        ("agent", "Your parcel left our warehouse this morning and arrives tomorrow."),
    )
    assert session_exchanges("S1", session) == []


def test_answer_in_other_language_is_skipped():
    session = turns(("customer", "可以开专票吗？"), ("agent", "Yes, special VAT invoices are available for companies."))
    assert session_exchanges("S1", session) == []


CANNED_INVOICE = "可以的。下单后在订单详情页申请发票，选择“增值税专用发票”，填写公司名称和税号等开票信息，审核通过后为您开具。"
CANNED_HK = "We currently deliver to mainland China only, so we can't ship to Hong Kong."


def invoice_exchanges() -> list[Exchange]:
    """Three sessions asking for a special VAT invoice in different words, with the canned answer."""
    return [
        Exchange("S0002", 1, "zh", "能开增值税专用发票吗？", CANNED_INVOICE),
        Exchange("S0010", 0, "zh", "公司采购可以开专票吗？", CANNED_INVOICE),
        Exchange("S0020", 4, "zh", "你们支持开具增值税专票吗", CANNED_INVOICE),
    ]


def one_off_exchanges() -> list[Exchange]:
    return [
        Exchange("S0001", 2, "zh", "电饭煲内胆可以放洗碗机洗吗？", "内胆不建议放洗碗机清洗，请用软布手洗。"),
        Exchange("S0007", 0, "en", "Can I pay cash on delivery?", "Sorry, cash on delivery is not available yet."),
    ]


def hong_kong_exchanges() -> list[Exchange]:
    return [
        Exchange("S0003", 0, "en", "Do you ship to Hong Kong?", CANNED_HK),
        Exchange("S0031", 2, "en", "Can you deliver to Hong Kong?", CANNED_HK),
    ]


def test_rephrasings_with_shared_canned_answer_form_one_group():
    groups = group_exchanges(invoice_exchanges() + one_off_exchanges() + hong_kong_exchanges())
    by_session = sorted(sorted(ex.session for ex in g) for g in groups)
    assert by_session == [["S0001"], ["S0002", "S0010", "S0020"], ["S0003", "S0031"], ["S0007"]]


def test_languages_are_never_grouped_together():
    zh = Exchange("S1", 0, "zh", "能寄到香港吗？", "目前仅支持中国大陆地区配送。")
    en = Exchange("S2", 0, "en", "Can you ship to Hong Kong?", CANNED_HK)
    assert len(group_exchanges([zh, en])) == 2


def test_group_proposal_keeps_other_phrasings_as_alternates():
    proposal = group_proposal(invoice_exchanges(), min_support=2)
    assert proposal is not None
    assert proposal.origin == "chat" and proposal.kind == "faq" and proposal.lang == "zh"
    assert proposal.answer == CANNED_INVOICE
    assert proposal.support == 3
    assert proposal.evidence["sessions"] == ["S0002", "S0010", "S0020"]
    assert sorted([proposal.question, *proposal.alt_questions]) == sorted(ex.question for ex in invoice_exchanges())


def test_group_proposal_en():
    proposal = group_proposal(hong_kong_exchanges(), min_support=2)
    assert proposal is not None and proposal.lang == "en" and proposal.support == 2
    assert proposal.answer == CANNED_HK
    assert proposal.entry_key.startswith("chat:en:")


def test_group_below_min_support_waits():
    assert group_proposal(hong_kong_exchanges(), min_support=3) is None
    assert group_proposal(one_off_exchanges()[:1], min_support=2) is None


def test_support_counts_distinct_sessions_not_exchanges():
    same_session = [
        Exchange("S0002", 1, "zh", "能开增值税专用发票吗？", CANNED_INVOICE),
        Exchange("S0002", 5, "zh", "公司可以开专票吗？", CANNED_INVOICE),
    ]
    assert group_proposal(same_session, min_support=2) is None
    proposal = group_proposal(same_session, min_support=1)
    assert proposal is not None and proposal.support == 1


def test_group_proposal_entry_key_is_stable_across_group_order():
    a = group_proposal(invoice_exchanges(), min_support=2)
    b = group_proposal(list(reversed(invoice_exchanges())), min_support=2)
    assert a.entry_key == b.entry_key
