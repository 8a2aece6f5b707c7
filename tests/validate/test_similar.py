"""kbops.validate.similar: near-duplicates by embedding similarity (lexical where the model cannot read)."""

from __future__ import annotations

import pytest

from kbops.index.similarity import pair_reader, unreadable_shares
from kbops.validate.similar import find_near_duplicates, identifiers

ENTRIES = [
    {"entry_key": "policy:invoice:en", "lang": "en", "question": "Can I get an invoice?", "alt_questions": ["Do you issue electronic invoices?"]},
    {"entry_key": "policy:refund:en", "lang": "en", "question": "How long does it take to get my refund?", "alt_questions": []},
    {"entry_key": "product:LM-1001:price:en", "lang": "en", "question": "How much is the Lumi Smart Rice Cooker 3L?", "alt_questions": []},
    {"entry_key": "policy:invoice:zh", "lang": "zh", "question": "可以开增值税专用发票吗？", "alt_questions": []},
    {"entry_key": "policy:points:zh", "lang": "zh", "question": "积分怎么抵现？", "alt_questions": []},
]


def rows(*specs):
    return [{"candidate_id": i, "entry_key": f"chat:{i}", "lang": lang, "question": q} for i, (lang, q) in enumerate(specs, start=1)]


def test_paraphrase_is_a_near_duplicate_of_the_entry(embedder):
    found = find_near_duplicates(rows(("en", "How do I get an invoice?"), ("zh", "能开增值税专用发票吗")), ENTRIES, embedder, 0.80)
    assert found[1].entry_key == "policy:invoice:en" and found[1].score >= 0.80
    assert found[2].entry_key == "policy:invoice:zh"


def test_different_questions_are_not(embedder):
    found = find_near_duplicates(
        rows(("en", "Do you ship to Hong Kong?"), ("zh", "电饭煲内胆可以放洗碗机洗吗？"), ("zh", "积分可以转给别人吗？")), ENTRIES, embedder, 0.85
    )
    assert found == {}


def test_different_identifiers_are_never_near_duplicates(embedder):
    found = find_near_duplicates(rows(("en", "How much is the Lumi Smart Rice Cooker 5L?")), ENTRIES, embedder, 0.5)
    assert 1 not in found or found[1].entry_key != "product:LM-1001:price:en"
    assert identifiers("Rice Cooker 3L") != identifiers("Rice Cooker 5L")


def test_threshold_is_respected_and_same_key_is_skipped(embedder):
    q = rows(("en", "How do I get an invoice?"))
    assert find_near_duplicates(q, ENTRIES, embedder, 0.999) == {}
    same = [{**q[0], "entry_key": "policy:invoice:en"}]
    assert find_near_duplicates(same, ENTRIES, embedder, 0.5).get(1) is None or find_near_duplicates(same, ENTRIES, embedder, 0.5)[1].entry_key != "policy:invoice:en"


def test_unreadable_share_is_the_part_the_model_reads_as_unk(embedder):
    """The tokenizer's [UNK] share, the same one grouping uses (it used to count CJK characters). Pairs read with the
    main model only (similarity.pair_reader); the bot's ranking reads Chinese with the Chinese reader."""
    pairs = pair_reader(embedder)
    english, chinese, mixed = unreadable_shares(pairs, ["Can I get an invoice?", "可以开发票吗", "鹿米 Soundbar 多少钱"])
    assert english == 0.0 and chinese == 1.0 and 0 < mixed < 1
    assert embedder.unk_share("可以开发票吗") == 0.0 and pairs.dim < embedder.dim


def test_a_chinese_paraphrase_scores_its_count_cosine_whatever_else_the_kb_holds(embedder):
    """Near-duplicate scores are absolute: no idf, so an unrelated entry cannot push a pair under the threshold."""
    row = rows(("zh", "能开增值税专用发票吗"))
    alone = find_near_duplicates(row, [ENTRIES[3]], embedder, 0.80)[1]
    among_more = find_near_duplicates(row, ENTRIES + [{"entry_key": "policy:vat:zh", "lang": "zh", "question": "增值税发票多久开好？", "alt_questions": []}], embedder, 0.80)[1]
    assert alone.entry_key == among_more.entry_key == "policy:invoice:zh"
    assert alone.score == among_more.score == pytest.approx(15 / (17 * 19) ** 0.5)  # 15 shared of 17 and 19 uni+bigrams


def test_a_question_about_another_product_is_not_a_near_duplicate(embedder):
    entries = [{"entry_key": "product:LM-1009:warranty:en", "lang": "en", "question": "How long is the warranty on the Lumi Anti-Mite Vacuum?", "alt_questions": [], "skus": {"LM-1009"}}]
    row = rows(("en", "How long is the Lumi Anti-Mite Vacuum warranty?"))
    assert find_near_duplicates(row, entries, embedder, 0.80)[1].entry_key == "product:LM-1009:warranty:en"
    assert find_near_duplicates([{**row[0], "skus": {"LM-1008"}}], entries, embedder, 0.80) == {}
