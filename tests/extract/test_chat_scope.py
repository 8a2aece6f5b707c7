"""kbops.extract.chat_scope and the miner's use of it (issue 15): scope, context rewrites, real answers, reviewer checks."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from kbops.extract import chat_scope
from kbops.extract.chats import Exchange, exchange_context, group_exchanges, group_proposal, mine_session, rank_key
from kbops.sources.chats import Session, read_chats
from kbops.sources.config import SourceConfig

SAMPLE_STORE = Path(__file__).resolve().parents[2] / "examples" / "sample_store"


def turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "text": text} for role, text in pairs]


@pytest.mark.parametrize(
    "question, scope",
    [
        ("货到付款可以吗？", "general"),
        ("Do you ship to Hong Kong?", "general"),
        ("Is it possible to subscribe to your company newsletter?", "general"),
        ("我的快递到哪了？", "one_order"),
        ("订单[订单x]什么时候发货？", "one_order"),
        ("Where is my order?", "one_order"),
        ("商家后台怎么设置运费模板？", "merchant_side"),
        ("How do I refund my customers?", "merchant_side"),
        ("这款带电池吗？", "listing"),
        ("保质期是多久？", "listing"),
        ("那怎么办呢？", "context"),
        ("Does it cover the battery?", "context"),
        ("售后呢？", "context"),
        ("大概1.5厘米，应该可以", "statement"),
        ("Great, I'll do that now.", "statement"),
        ("？？？？", "garbled"),
        ("你们这服务太差了吧？", "complaint"),
    ],
)
def test_question_scope(question, scope):
    assert chat_scope.question_scope(question, has_sku=False) == scope


def test_a_named_item_in_a_session_with_a_sku_is_a_listing_question_not_context():
    assert chat_scope.question_scope("这个电饭煲内胆能用洗碗机吗？", has_sku=True) == "listing"


def test_follow_up_takes_the_topic_of_the_nearest_earlier_turn_that_names_one():
    earlier = ["你好，我们公司想采购几台台灯", "能开增值税专用发票吗？"]
    assert chat_scope.carry_topic("那如果税号填错了怎么办", earlier) == ("关于增值税专用发票，如果税号填错了怎么办", earlier[1])
    en = chat_scope.carry_topic("Does it cover the battery?", ["How long is the warranty on the vacuum?"])
    assert en == ("About the warranty: does it cover the battery?", "How long is the warranty on the vacuum?")


def test_follow_up_without_a_topic_or_leaning_on_one_order_is_not_rewritten():
    assert chat_scope.carry_topic("那怎么办", ["在吗"]) == ("", "")
    assert chat_scope.carry_topic("那怎么办", ["我的快递到哪了，发票呢"]) == ("", "")  # inherits the earlier turn's scope
    assert chat_scope.carry_topic("售后呢？", ["发票能开吗"]) == ("", "")  # elliptical: the predicate is lost


@pytest.mark.parametrize(
    "question, answer, problem",
    [
        ("如何退款？", "您是使用什么支付方式付款的呢？", "asks_back"),
        ("退款多久到账？", "具体以系统显示为准哦。", "vague"),
        ("退款多久到账？", "已经为您反馈加急处理了，退款会尽快到账。", "one_case"),
        ("为什么有些地方送不到？", "有些地方是送不到的。", "restates"),
        ("怎么开发票？", "新会员首单享受九折优惠。", "off_topic"),
        ("怎么退出拼团活动？", "贵司可以在商家后台申请退出活动。", "merchant_side"),
        ("怎么开发票？", "下单时在结算页选择发票类型，填写抬头和税号即可，签收后也可在订单详情页补开。", ""),
        ("How long does the refund take?", "Once the warehouse has inspected the return, we refund within 3-5 working days.", ""),
    ],
)
def test_answer_problem(question, answer, problem):
    assert chat_scope.answer_problem(question, answer) == problem


INVOICE_FOLLOW_UP = turns(
    ("customer", "能开增值税专用发票吗？"),
    ("agent", "可以的。下单后在订单详情页申请发票，选择增值税专用发票，填写公司名称和税号，审核通过后开具。"),
    ("customer", "那如果税号填错了怎么办"),
    ("agent", "可以在订单详情页申请换开，原发票作废后会按正确的信息重新开具。"),
)


def test_follow_up_is_rewritten_with_its_source_turn_or_dropped_by_mode():
    rewritten = mine_session("S1", INVOICE_FOLLOW_UP)
    follow = rewritten.exchanges[1]
    assert follow.question == "关于增值税专用发票，如果税号填错了怎么办"
    assert follow.original == "那如果税号填错了怎么办" and follow.context_turns == ["能开增值税专用发票吗？"]
    dropped = mine_session("S1", INVOICE_FOLLOW_UP, context="drop")
    assert [ex.turn for ex in dropped.exchanges] == [0] and dropped.dropped["context"] == 1


def test_exchange_context_reads_back_what_mine_session_saw():
    """The database stores only the rewritten question: the source turn is re-derived from the session."""
    assert exchange_context(INVOICE_FOLLOW_UP, 2) == ("那如果税号填错了怎么办", ["能开增值税专用发票吗？"], "general")
    assert exchange_context(INVOICE_FOLLOW_UP, 0) == ("", [], "general")


def test_a_non_answer_leaves_the_question_as_a_gap_not_a_candidate():
    mined = mine_session("S1", turns(("customer", "如何退款？"), ("agent", "您是在什么平台付款的呢 我们这边核实一下")))
    assert mined.exchanges == [] and [u.reason for u in mined.unanswered] == ["no_answer"]
    assert mined.dropped["answer_asks_back"] == 1


def test_one_order_and_merchant_questions_are_not_candidates_or_gaps():
    mined = mine_session(
        "S1",
        turns(("customer", "我的快递到哪了？"), ("agent", "包裹已到站点，今天送达。"), ("customer", "商家后台怎么改运费模板？"), ("agent", "在店铺设置里修改。")),
    )
    assert mined.exchanges == [] and mined.unanswered == []
    assert mined.dropped["one_order"] == 1 and mined.dropped["merchant_side"] == 1


def _ex(session: str, question: str, answer: str, sku: str | None = None, scope: str = "general") -> Exchange:
    return Exchange(session, 0, "zh", question, answer, sku, scope=scope)


def test_evidence_says_which_checks_passed_and_where_a_rewrite_came_from():
    follow = mine_session("S1", INVOICE_FOLLOW_UP).exchanges[1]
    proposal = group_proposal([follow], 1)
    assert proposal is not None
    assert proposal.evidence["context_turns"] == ["能开增值税专用发票吗？"]
    checks = proposal.evidence["checks"]
    assert checks[0] == "rewritten from an earlier turn (那如果税号填错了怎么办)"
    assert "general scope (增值税专用发票)" in checks and "informative answer" in checks
    both = group_proposal([_ex("A", "货到付款可以吗？", "暂不支持货到付款，可以用微信或银行卡支付。"), _ex("B", "支持货到付款吗", "暂不支持货到付款，可以用微信或银行卡支付。")], 2)
    assert both is not None and both.evidence["checks"][-1] == "2 sessions agree" and both.evidence["context_turns"] == []


def test_a_product_question_needs_a_catalogued_sku_or_a_second_session():
    answer = "内胆不建议放洗碗机清洗，请用软布加中性洗洁精手洗。"
    one = [_ex("A", "电饭煲内胆能放洗碗机吗？", answer, "SKU-9")]
    assert group_proposal(one, 1) is None
    assert group_proposal(one, 1, catalogue={"SKU-9"}) is not None
    two = one + [_ex("B", "电饭煲内胆可以用洗碗机洗吗", answer)]
    assert group_proposal(two, 1) is not None


def test_a_this_item_question_needs_two_sessions_of_the_same_sku():
    answer = "这款支持双设备连接，可以同时连接手机和电脑。"
    listing = [_ex("A", "这个耳机能连两台设备吗？", answer, "X1", "listing"), _ex("B", "这款能同时连手机和电脑吗", answer, "X2", "listing")]
    assert group_proposal(listing, 1) is None
    listing[1].sku = "X1"
    proposal = group_proposal(listing, 1)
    assert proposal is not None and proposal.evidence["skus"] == ["X1"]


def test_rank_puts_recurring_candidates_first():
    weak = group_proposal([_ex("A", "积分会过期吗", "积分有效期到次年12月31日，过期自动清零。")], 1)
    strong = group_proposal([_ex(s, "货到付款可以吗？", "暂不支持货到付款，可以用微信或银行卡支付。") for s in "ABC"], 1)
    assert weak is not None and strong is not None
    assert sorted([weak, strong], key=rank_key) == [strong, weak]


def _sample_store_exchanges() -> list[Exchange]:
    config = SourceConfig(name="chats", type="chats", path=SAMPLE_STORE / "chats" / "chats.jsonl", format="jsonl")
    return [ex for s in read_chats(config) if isinstance(s, Session) for ex in mine_session(s.key, s.turns, s.sku).exchanges]


def test_the_sample_store_keeps_its_recurring_faqs_at_the_default_support():
    """The rules generalise: the bundled store's own recurring FAQs, Chinese and English, all survive."""
    questions = [p.question for p in (group_proposal(g, 2) for g in group_exchanges(_sample_store_exchanges())) if p]
    for words in ("洗碗机", "增值税专用发票", "Hong Kong", "积分", "货到付款", "address"):
        assert any(words in q for q in questions), words


def test_the_sample_store_product_faqs_survive_at_support_1_with_its_catalogue():
    with (SAMPLE_STORE / "products.csv").open(encoding="utf-8") as fh:
        catalogue = {row["sku"] for row in csv.DictReader(fh)}
    proposals = [p for p in (group_proposal(g, 1, catalogue=catalogue) for g in group_exchanges(_sample_store_exchanges())) if p]
    questions = " ".join(p.question for p in proposals)
    for words in ("扫地机器人", "预约功能", "air fryer", "刷头", "About the warranty: does it cover the battery?"):
        assert words in questions, words
    assert len(proposals) >= 30
