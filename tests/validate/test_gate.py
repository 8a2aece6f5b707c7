"""kbops.validate.gate: every bad candidate row gets a reason, good rows get none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbops.text import fingerprint
from kbops.validate.gate import check_rows

GOOD_ZH = {"entry_key": "policy:invoice:zh", "lang": "zh", "question": "可以开增值税专用发票吗？", "answer": "可以的，下单后在订单详情页申请增值税专用发票即可。"}
GOOD_EN = {"entry_key": "chat:en:hk", "lang": "en", "question": "Do you ship to Hong Kong?", "answer": "We currently deliver to mainland China only."}

# (reason code, bad row) — each row breaks exactly the one rule named.
BAD = [
    ("empty_answer", {"entry_key": "b:empty", "lang": "zh", "question": "退款多久到账？", "answer": "   "}),
    ("answer_length", {"entry_key": "b:short", "lang": "zh", "question": "保修多久？", "answer": "一年。"}),
    ("answer_length", {"entry_key": "b:short-en", "lang": "en", "question": "Is the kettle in stock?", "answer": "Yes."}),
    ("language_mismatch", {"entry_key": "b:lang", "lang": "zh", "question": "支持货到付款吗？", "answer": "Yes, cash on delivery is available."}),
    ("private_data", {"entry_key": "b:phone", "lang": "zh", "question": "怎么联系售后？", "answer": "请拨打13812345678联系售后客服。"}),
    ("private_data", {"entry_key": "b:email", "lang": "en", "question": "How do I contact support?", "answer": "Write to daniel.h.test@example.com any time."}),
    ("placeholder", {"entry_key": "b:jddc", "lang": "zh", "question": "我的订单发货了吗？", "answer": "您的[订单x]已经发货，预计明天送达。"}),
    ("placeholder", {"entry_key": "b:tmpl", "lang": "en", "question": "Where is my order?", "answer": "Your order {{Order Number}} has shipped today."}),
    ("non_answer", {"entry_key": "b:wait", "lang": "zh", "question": "能开发票吗？", "answer": "正在为您查询"}),
    ("markup", {"entry_key": "b:markup", "lang": "en", "question": "How do I reset the lamp?", "answer": "Hold the button for five seconds <script>alert(1)</script>"}),
]


def numbered(rows: list[dict]) -> list[dict]:
    return [{"candidate_id": i, **row} for i, row in enumerate(rows, start=1)]


def codes(reasons: list[str]) -> set[str]:
    return {r.split(":", 1)[0] for r in reasons}


def test_good_rows_pass():
    verdicts = check_rows(numbered([GOOD_ZH, GOOD_EN]))
    assert [(v.candidate_id, v.reasons, v.ok) for v in verdicts] == [(1, [], True), (2, [], True)]


# An empty answer is also 0 characters long; every other bad row breaks one rule only.
ALSO = {"b:empty": {"answer_length"}}


def test_each_bad_row_fails_its_rule_and_only_its_row():
    rows = numbered([GOOD_ZH, GOOD_EN] + [row for _, row in BAD])
    verdicts = {v.candidate_id: v for v in check_rows(rows)}
    assert verdicts[1].reasons == [] and verdicts[2].reasons == []
    for cid, (code, row) in enumerate(BAD, start=3):
        assert not verdicts[cid].ok, row
        assert any(r.startswith(code) for r in verdicts[cid].reasons), (row, verdicts[cid].reasons)
        assert codes(verdicts[cid].reasons) == {code} | ALSO.get(row["entry_key"], set()), (row, verdicts[cid].reasons)


@pytest.mark.parametrize(("code", "row"), BAD, ids=[row["entry_key"] for _, row in BAD])
def test_bad_row_alone_gets_its_reason(code, row):
    [verdict] = check_rows(numbered([row]))
    assert any(r.startswith(code) for r in verdict.reasons), verdict.reasons


def test_short_please_wait_is_a_non_answer():
    [verdict] = check_rows(numbered([{"entry_key": "b", "lang": "zh", "question": "能开发票吗？", "answer": "请稍等"}]))
    assert "non_answer" in codes(verdict.reasons)


def test_reasons_are_specific():
    rows = numbered([BAD[1][1], BAD[3][1], BAD[4][1], BAD[6][1]])
    short, lang, phone, placeholder = (v.reasons for v in check_rows(rows))
    assert short == ["answer_length: answer is 3 characters, allowed 4–2000"]
    assert lang == ["language_mismatch: question is zh but the answer is en; answer in the question's language"]
    assert phone == ["private_data: answer contains private data (phone); remove it"]
    assert placeholder == ["placeholder: answer has an unresolved placeholder [订单x]; replace it with real text (or declare it a template slot)"]


def test_duplicate_within_batch_flags_the_second_row():
    again = {**GOOD_ZH, "entry_key": "chat:zh:invoice", "question": "可以开增值税专用发票吗", "answer": "可以，在订单详情页申请即可开具。"}
    first, second = check_rows(numbered([GOOD_ZH, again]))
    assert first.reasons == []
    assert second.reasons == ["duplicate: the same question is already answered by policy:invoice:zh"]


def test_duplicate_of_active_entry_with_another_key():
    known = {fingerprint("Do you ship to Hong Kong?"): "policy:shipping:en:hk"}
    [verdict] = check_rows(numbered([GOOD_EN]), known_fingerprints=known)
    assert verdict.reasons == ["duplicate: the same question is already answered by policy:shipping:en:hk"]


def test_same_question_under_same_key_is_an_update_not_a_duplicate():
    known = {fingerprint(GOOD_EN["question"]): GOOD_EN["entry_key"]}
    [verdict] = check_rows(numbered([GOOD_EN]), known_fingerprints=known)
    assert verdict.reasons == []


def test_empty_batch():
    assert check_rows([]) == []


def test_empty_answer_reason_is_human_readable():
    [verdict] = check_rows(numbered([BAD[0][1]]))
    reason = next(r for r in verdict.reasons if r.startswith("empty_answer"))
    assert "{" not in reason and "'code'" not in reason


@pytest.mark.parametrize("answer", ["请稍等，正在为您查询~", "您好，请稍等"], ids=["wait-checking", "hello-wait"])
def test_combined_filler_reply_is_a_non_answer(answer):
    [verdict] = check_rows(numbered([{"entry_key": "b", "lang": "zh", "question": "能开发票吗？", "answer": answer}]))
    assert "non_answer" in codes(verdict.reasons)


@pytest.mark.parametrize("phone", ["138-1234-5678", "138 1234 5678"])
def test_mobile_number_with_separators_is_private_data(phone):
    row = {"entry_key": "b", "lang": "zh", "question": "怎么联系售后？", "answer": f"请拨打{phone}联系售后客服。"}
    [verdict] = check_rows(numbered([row]))
    assert "private_data" in codes(verdict.reasons)


# Issue 12: the gate's private_data rule asks kbops.pii.find_private, the scrubber's own detector.
@pytest.mark.parametrize(
    ("question", "answer", "kind"),
    [
        ("怎么联系售后？", "请拨打１３８１２３４５６７８联系售后客服。", "phone"),
        ("怎么联系售后？", "工作日请拨打座机010-62345678联系我们。", "phone"),
        ("怎么联系售后？", "加客服微信号 lumi_kf88 咨询即可。", "wechat"),
        ("怎么联系售后？", "加客服QQ号 384756291 咨询即可。", "qq"),
        ("退货寄到哪里？", "请寄到海淀区上庄镇永丰路690号，收件人写售后部。", "address"),
        ("我是刘静怡，退货寄到哪里？", "请在订单详情页申请退货，审核通过后寄回。", "name"),
        ("How do I contact support?", "Write to ｊｏｈｎ．ｓｍｉｔｈ＠ｅｘａｍｐｌｅ．ｃｏｍ any time.", "email"),
        ("Where do I send returns?", "Send returns to 12 rue de la Paix, Paris, with the order slip.", "address"),
    ],
)
def test_private_data_rule_uses_the_scrubbers_detector(question, answer, kind):
    lang = "en" if question.isascii() else "zh"
    [verdict] = check_rows(numbered([{"entry_key": "b", "lang": lang, "question": question, "answer": answer}]))
    [reason] = [r for r in verdict.reasons if r.startswith("private_data")]
    where = "question" if kind == "name" else "answer"
    assert reason == f"private_data: {where} contains private data ({kind}); remove it"


def test_private_data_in_an_alternate_question_is_refused():
    row = {"entry_key": "b", "lang": "zh", "question": "怎么联系售后？", "answer": "请在订单详情页点击联系客服。", "alt_questions": ["我是刘静怡，怎么联系售后？"]}
    [verdict] = check_rows(numbered([row]))
    assert verdict.reasons == ["private_data: an alternate question contains private data (name); remove it"]


def test_every_planted_value_is_refused_by_the_gate():
    """The gate refuses whatever the scrubber would remove: every text of the planted set is private_data."""
    planted = [json.loads(line) for line in (Path(__file__).parent.parent / "data" / "planted_private.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = numbered([{"entry_key": f"p{i}", "lang": p["lang"], "question": "怎么联系售后？" if p["lang"] == "zh" else "How do I contact support?",
                      "answer": p["text"]} for i, p in enumerate(planted)])
    passed = [planted[v.candidate_id - 1]["text"] for v in check_rows(rows) if "private_data" not in codes(v.reasons)]
    assert passed == []


def test_a_scrubbed_private_value_is_still_private_data_not_a_placeholder():
    """Every proposal is scrubbed when it is stored, so a policy quoting a phone number reaches the gate as [PHONE]:
    it is refused with the private_data reason it always had, once."""
    row = {"entry_key": "b", "lang": "zh", "question": "怎么联系售后？", "answer": "请拨打[PHONE]联系售后客服。"}
    [verdict] = check_rows(numbered([row]))
    assert verdict.reasons == ["private_data: answer contains private data (phone); remove it"]
