"""kbops.extract.policies: each ``##`` section of a policy document is one FAQ."""

from __future__ import annotations

from sqlalchemy import select

from kbops.db import session_scope
from kbops.extract.policies import policy_sections
from kbops.pipeline import decide, ingest
from kbops.schema import KbEntry
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
