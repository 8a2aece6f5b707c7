"""kbops.text: language detection, fingerprints and lexical tokens."""

from __future__ import annotations

import pytest

from kbops.text import attachments, cased_clauses, detect_lang, fingerprint, normalize, phrases, tokens


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("支持七天无理由退货吗？", "zh"),
        ("How long does standard delivery take?", "en"),
        # Chinese question quoting an English product name is still Chinese.
        ("Lumi Smart Rice Cooker 3L 多少钱？", "zh"),
        ("鹿米 Soundbar 2.1 有货吗", "zh"),
        # English question quoting a Chinese brand name is still English.
        ("Does the 鹿米 rice cooker have a keep-warm mode?", "en"),
        # No letters at all: undetermined.
        ("138 1234 5678", "und"),
        ("2026-11-20 12:00", "und"),
        ("!!! ???", "und"),
        ("", "und"),
    ],
)
def test_detect_lang(text, lang):
    assert detect_lang(text) == lang


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("能开发票吗？", "能开发票吗?"),
        ("能开发票吗？", "能开，发票吗！"),
        ("Do you ship to Hong Kong?", "  do you SHIP to hong kong  "),
        ("Do you ship to Hong Kong?", "ＤＯ ＹＯＵ ＳＨＩＰ ＴＯ ＨＯＮＧ ＫＯＮＧ？"),
        ("鹿米电热水壶 1.7L 多少钱", "鹿米电热水壶１．７Ｌ多少钱？"),
    ],
)
def test_fingerprint_ignores_punctuation_case_and_width(a, b):
    assert fingerprint(a) == fingerprint(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("能开发票吗？", "能开专票吗？"),
        ("Do you ship to Hong Kong?", "Do you ship to Macau?"),
        ("鹿米电热水壶 1.7L 多少钱", "鹿米电热水壶 1.5L 多少钱"),
    ],
)
def test_fingerprint_differs_for_different_questions(a, b):
    assert fingerprint(a) != fingerprint(b)


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [
        ("電飯煲多少錢", "电饭煲多少钱"),
        ("退貨政策是什麼？", "退货政策是什么?"),
        ("鹿米吹風機 Pro 有貨嗎", "鹿米吹风机 pro 有货吗"),
        ("週末發貨嗎", "周末发货吗"),  # a character several simplified ones share: read by the phrase
        ("麵條", "面条"),
    ],
)
def test_normalize_reads_traditional_characters_as_simplified(traditional, simplified):
    """A customer in Hong Kong or Taiwan writes 電飯煲 for the store's 电饭煲: one text to every rule and channel."""
    assert normalize(traditional) == simplified
    assert tokens(traditional) == tokens(simplified)
    # an identity keeps the script: entry keys are made of fingerprints, and an upgrade must not change them
    assert fingerprint(traditional) != fingerprint(simplified)


@pytest.mark.parametrize("text", ["鹿米智能电饭煲 3l多少钱", "乾隆", "干燥", "皇后", "公里", "著名", "后来", "How much is the kettle?".lower()])
def test_normalize_leaves_simplified_chinese_and_english_as_they_are(text):
    """Converting is by phrase, so a simplified text is not changed (4 of JDDC's 12,136 lines change: those with traditional characters)."""
    assert normalize(text) == text


def test_tokens_cjk_are_unigrams_and_bigrams():
    assert tokens("退货运费") == ["退", "货", "运", "费", "退货", "货运", "运费"]


def test_tokens_drop_chinese_particles():
    assert tokens("可以退吗") == ["可", "以", "退", "可以", "以退"]


@pytest.mark.parametrize(
    ("chatty", "plain"),
    [
        ("请问一下这个电饭煲多少钱", "电饭煲多少钱"),
        ("你好，我想问一下你们家的吹风机有货吗", "吹风机有货吗"),
        ("电饭煲有没有货", "电饭煲有货吗"),
        ("能不能开发票", "能开发票吗"),
        ("可不可以退", "可以退吗"),
    ],
)
def test_tokens_drop_chinese_filler_words_and_read_a_not_a_questions_as_a(chatty, plain):
    """Courtesy and pointing words ("请问", "这个", "的") match nothing that matters; "有没有货" asks "有货吗"."""
    assert tokens(chatty) == tokens(plain)


def test_tokens_no_bigram_spans_a_filler_word():
    assert tokens("鹿米的灯") == ["鹿", "米", "鹿米", "灯"]


def test_tokens_drop_english_stop_words():
    assert tokens("How do I return the kettle?") == ["return", "kettle"]


@pytest.mark.parametrize(
    ("word", "stem"),
    [
        ("refunds", "refund"),
        ("batteries", "battery"),
        ("processing", "process"),
        ("delivered", "deliver"),
        ("boxes", "box"),
        # short words keep their ending
        ("bus", "bus"),
        ("gas", "gas"),
    ],
)
def test_tokens_light_stemming(word, stem):
    assert tokens(word) == [stem]


def test_tokens_same_for_inflected_question():
    assert tokens("Refunds for returned boxes") == tokens("refund for return box")


@pytest.mark.parametrize(("plural", "singular"), [("prices", "price"), ("invoices", "invoice"), ("kettles", "kettle")])
def test_tokens_plural_of_word_ending_in_e_matches_singular(plural, singular):
    assert tokens(plural) == tokens(singular)


def test_tokens_mixed_script_keeps_model_numbers():
    assert tokens("鹿米 Soundbar 2.1") == ["鹿", "米", "鹿米", "soundbar", "2.1"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi, I'm looking for the Lumi lamp, how much is it?", [["m", "look"], ["lumi", "lamp"], ["much"]]),
        ("How much is the Lumi air purifier?", [["much"], ["lumi", "air", "purifier"]]),
        ("鹿米智能门锁多少钱", [["鹿", "米", "智", "能", "门", "锁", "多", "少", "钱"]]),
        ("我想买个鹿米的灯，多少钱呀", [["买", "个", "鹿", "米"], ["灯"], ["多", "少", "钱"]]),  # filler words end a phrase
        ("LM-1003 price多少", [["lm", "1003", "price"], ["多", "少"]]),
        ("1.7L的水壶多少钱? Ok.", [["1.7", "l"], ["水", "壶", "多", "少", "钱"], ["ok"]]),  # a decimal point ends no phrase
        ("?!", []),
        ("How much is your rice cooker these days?", [["much"], ["rice", "cooker"], ["day"]]),  # words of time end a phrase
        ("蓝牙音箱今天还有货吗", [["蓝", "牙", "音", "箱"], ["有", "货"]]),
    ],
)
def test_phrases_group_tokens_between_stop_words_punctuation_and_scripts(text, expected):
    assert phrases(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Is the Ninja air fryer in stock? Ninja空气炸锅", [["Is", "the", "Ninja", "air", "fryer", "in", "stock"], ["Ninja", "空气炸锅"]]),
        ("I'm after LM-1003, the 1.7L one", [["I'm", "after", "LM-1003"], ["the", "1.7L", "one"]]),
        ("ＬＵＭＩ的灯，多少钱？", [["LUMI", "的灯"], ["多少钱"]]),
    ],
)
def test_cased_clauses_keep_case_order_hyphens_and_decimal_points(text, expected):
    assert cased_clauses(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("How much is the rice bowl?", [("rice", "bowl")]),
        ("How much is the charger for the earbuds?", [("earbud", "charger")]),
        ("a brush that fits my robot vacuum", [("robot", "vacuum"), ("robot", "brush"), ("vacuum", "brush")]),
        ("a filter compatible with the air fryer", [("filter", "compatible"), ("air", "fryer"), ("air", "filter"), ("fryer", "filter")]),
        ("the brush for the Lumi robot vacuum", [("lumi", "robot"), ("robot", "vacuum"), ("lumi", "brush"), ("robot", "brush"), ("vacuum", "brush")]),
        ("What is the price of my kettle", [("kettle", "price")]),
        ("扫地机器人的滤网", [("扫", "地"), ("地", "机"), ("机", "器"), ("器", "人"), ("滤", "网"),
                              ("扫", "地机"), ("地", "机器"), ("机", "器人"), ("人", "滤"), ("人", "滤网")]),
        # two characters attached as well as one: 配 alone is also 配送's
        ("扫地机器人配件", [("扫", "地"), ("地", "机"), ("机", "器"), ("器", "人"), ("人", "配"), ("配", "件"),
                             ("扫", "地机"), ("地", "机器"), ("机", "器人"), ("器", "人配"), ("人", "配件")]),
        ("How much is your rice cooker these days?", [("rice", "cooker")]),  # "these" ends the phrase
        # asking when or how long ends it too: 几天 was read as a part of the air fryer, and the question handed off
        ("空气炸锅几天发货", [("空", "气"), ("气", "炸"), ("炸", "锅"), ("发", "货"), ("空", "气炸"), ("气", "炸锅")]),
        ("电饭煲什么时候到", [("电", "饭"), ("饭", "煲"), ("电", "饭煲")]),
    ],
)
def test_attachments_pair_a_word_with_what_is_asked_of_it(text, expected):
    assert attachments(text) == expected
