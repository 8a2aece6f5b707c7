"""kbops.extract.policies: each ``##`` section of a policy document is one FAQ."""

from __future__ import annotations

from sqlalchemy import select

from kbops.db import session_scope
from kbops.extract.policies import generated_phrasings, policy_proposals, policy_sections, title_topics
from kbops.pipeline import activate_release, build_release, decide, ingest
from kbops.schema import KbEntry, SourceRecord
from kbops.serve.retriever import Retriever
from tests.helpers import list_items

ZH_POLICY = """# 退换货政策

本政策适用于鹿米家居官方商城。

## 收到的商品不想要了，可以退货吗？
也问：支持七天无理由退货吗｜买了不喜欢能退吗
支持7天无理由退货：自签收之日起7天内，
商品未使用且包装完好即可申请。

## 退款多久能到账？

仓库收到退回的商品并验收无误后，退款将在3-5个工作日内原路退回。
"""

EN_POLICY = """# Returns policy

## Can I return an item I don't want?
Also asked: Do you offer 7-day returns? | Can I return something I don't like?
Yes. Unused items in their original packaging can be returned within 7 days of receipt.

## How long do refunds take?
Refunds arrive within 3-5 working days after the warehouse receives the item.
"""


def test_zh_sections_with_alternates():
    assert policy_sections(ZH_POLICY) == [
        (
            "收到的商品不想要了，可以退货吗？",
            ["支持七天无理由退货吗", "买了不喜欢能退吗"],
            "支持7天无理由退货：自签收之日起7天内，商品未使用且包装完好即可申请。",
        ),
        ("退款多久能到账？", [], "仓库收到退回的商品并验收无误后，退款将在3-5个工作日内原路退回。"),
    ]


def test_en_sections_with_alternates():
    assert policy_sections(EN_POLICY) == [
        (
            "Can I return an item I don't want?",
            ["Do you offer 7-day returns?", "Can I return something I don't like?"],
            "Yes. Unused items in their original packaging can be returned within 7 days of receipt.",
        ),
        ("How long do refunds take?", [], "Refunds arrive within 3-5 working days after the warehouse receives the item."),
    ]


def test_sub_headings_become_a_lead_in_without_markdown_markers():
    [(_, _, answer)] = policy_sections("## 怎么退货？\n在订单详情页申请。\n### 注意\n已使用的商品不支持无理由退货。\n")
    assert answer == "在订单详情页申请。注意：已使用的商品不支持无理由退货。"


def test_title_and_preamble_are_not_sections():
    questions = [q for q, _, _ in policy_sections(ZH_POLICY)]
    assert "退换货政策" not in questions
    assert all("本政策适用于" not in a for _, _, a in policy_sections(ZH_POLICY))


def test_alternates_line_only_counts_right_after_the_heading():
    text = "# T\n\n## 能开发票吗？\n可以开电子普通发票。\n也问：能开票吗\n"
    [(question, alternates, answer)] = policy_sections(text)
    assert alternates == []
    assert "也问：能开票吗" in answer


def test_alternates_accept_ascii_colon_and_separators():
    text = "# T\n## 能开发票吗？\n也问: 能开票吗 | 可以开发票吗\n可以。\n"
    assert policy_sections(text) == [("能开发票吗？", ["能开票吗", "可以开发票吗"], "可以。")]


def test_document_without_sections_has_none():
    assert policy_sections("# 会员说明\n\n积分规则见下文。\n") == []


# --- extract messages (issue 12) ---------------------------------------------------------


def test_policy_without_headings_is_a_warning_and_keeps_its_entries(settings, store):
    """A document with no ``##`` heading yields no question: sync quarantines it, naming the file and the fix,
    and the entries of its earlier version stay served (bad input deletes no knowledge)."""

    def statuses():
        with session_scope(settings) as db:
            return {e.entry_key: e.status for e in db.scalars(select(KbEntry).where(KbEntry.entry_key.startswith("policy:policies:returns.en.md:")))}

    def messages(result):
        return [m for s in result["sync"] for m in s["messages"]] + result["extract"]["messages"]

    (store / "policies" / "notes.en.md").write_text("# Notes\n\nOur shop is open every day.\n", encoding="utf-8")
    first = ingest(settings)
    [message] = [m for m in messages(first) if "notes.en.md" in m]
    assert "no '## ' heading" in message and "policies" in message and "write each question as" in message
    waiting = [i.id for i in list_items(settings) if i.entry_key.startswith("policy:policies:returns.en.md:")]
    decide(settings, waiting, "approve", by="reviewer")
    before = statuses()
    assert before and set(before.values()) == {"active"}

    doc = store / "policies" / "returns.en.md"
    doc.write_text(doc.read_text(encoding="utf-8").replace("## ", "### "), encoding="utf-8")
    second = ingest(settings)
    assert any("returns.en.md" in m and "kept" in m for m in messages(second))
    assert statuses() == before


# --- generic questions reach documents (issue 11, item 5) ---------------------------------

ZH_RETURNS = """# 退换货政策

## 收到的商品不想要了，可以退货吗？
也问：支持七天无理由退货吗
自签收之日起7天内，商品未使用即可申请退货。

## 商品有质量问题怎么办？
也问：质量问题可以换货吗
15天内可申请退货或换货。

## 退款多久能到账？
验收后3–5个工作日内退款。
"""


def test_title_topics_strip_the_wrapping_words_and_split_joined_topics():
    assert title_topics("退换货政策", "zh") == ["退换货"]
    assert title_topics("配送说明", "zh") == ["配送"]
    assert title_topics("会员与积分", "zh") == ["会员", "积分"]
    assert title_topics("价格保护", "zh") == ["价格保护"]
    assert title_topics("Returns and Exchanges Policy", "en") == ["returns", "exchanges"]
    assert title_topics("Shipping Information", "en") == ["shipping"]
    assert title_topics("Our Warranty Policy", "en") == ["warranty"]


def test_zh_phrasings_go_to_the_section_that_answers_them():
    sections = policy_sections(ZH_RETURNS)
    first, quality, refund = generated_phrasings("退换货政策", sections, "zh")
    # The document's topic and 退货 (named by the first question) on the first section, with the title itself.
    assert {"退换货政策", "退换货政策是什么", "退货政策是什么", "退货怎么办理", "我想退货", "退货"} <= set(first)
    # 换货 is named by the quality section's alternate; 退款 (a known topic, not the title's) by its own question.
    assert {"换货政策是什么", "我想换货"} <= set(quality) and not any("换货" in p and "退" not in p for p in first)
    assert {"退款政策是什么", "我想申请退款", "退款多少天"} <= set(refund)
    # How-long questions only where the section states a period, for the topic it names.
    assert "退货多少天" in first and "换货多少天" in quality and "退货多少天" not in quality


def test_en_phrasings_and_nothing_already_asked_is_repeated():
    text = "# Returns Policy\n\n## Can I return an item?\nAlso asked: What is your return policy?\nYes, within 7 days of receipt.\n\n## How long do refunds take?\n3-5 working days.\n"
    first, refund = generated_phrasings("Returns Policy", policy_sections(text), "en")
    assert first[:1] == ["Returns Policy"] and "What is your return policy?" not in first
    assert {"How do returns work?", "I want to return an item", "How many days for return?"} <= set(first)
    assert {"What is your refund policy?", "How many days for refund?"} <= set(refund)


def test_policy_candidates_carry_the_generated_phrasings_after_their_own():
    doc = SourceRecord(source="policies", kind="document", key="returns.zh.md", version=1, payload={"title": "退换货政策", "lang": "zh", "text": ZH_RETURNS})
    first = policy_proposals(doc)[0]
    assert first.alt_questions[0] == "支持七天无理由退货吗" and "退货政策是什么" in first.alt_questions
    assert len(first.alt_questions) == len(set(first.alt_questions))
    assert first.tags == ["policy", "退换货政策"]


def test_generic_questions_find_the_policy_section_on_the_sample_store(settings, embedder):
    """The issue's examples: generic questions answered by the right section of the sample store's policies."""
    ingest(settings)
    while waiting := [i.id for i in list_items(settings)]:
        decide(settings, waiting, "approve", by="reviewer")
    activate_release(settings, build_release(settings, embedder=embedder).release_id)
    retriever = Retriever(settings, embedder=embedder)
    expected = {
        "What is your return policy?": "I don't want the item I received anymore. Can I return it?",
        "退货政策是什么": "收到的商品不想要了，可以退货吗？",
        "价保多少天": "刚买完就降价了，可以退差价吗？",
        "我想开发票": "可以开发票吗？",
    }
    for question, heading in expected.items():
        answer = retriever.search(question)
        assert answer.top is not None and answer.top.question == heading, (question, answer.top)
        assert not answer.handoff, (question, answer.reason, answer.top.score)
