"""kbops.index.entities: exact identifiers, the fact a question asks for, and option labels."""

from __future__ import annotations

import pytest

from kbops.index import entities


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("LM-1001多少钱", {"lm1001"}),
        ("How much does LM-1014 cost?", {"lm1014"}),
        ("鹿米智能电饭煲 3L多少钱？", {"3l"}),
        ("Lumi Electric Kettle 1.7L", {"1.7l"}),
        ("鹿米电热水壶1.7L", {"1.7l"}),
        ("Lumi Robot Vacuum S1 and the V8", {"s1", "v8"}),
        ("便携榨汁杯 350ml", {"350ml"}),
        ("55寸电视", {"55寸"}),
        ("ＬＭ－１００１", {"lm1001"}),  # full-width, as typed on a Chinese keyboard
        ("GB-T19001-2016", {"gbt190012016"}),
        ("Lumi Soundbar 2.1", {"2.1"}),  # a model number ("回音壁5.1多少钱" got the 2.1's price)
        ("回音壁5.1多少钱", {"5.1"}),
        ("支持蓝牙5.3吗", {"5.3"}),
        # a size in Chinese units is the size in Latin ones ("电饭煲3升的多少钱" was handed off: 3升 was not 3L)
        ("电饭煲3升的多少钱", {"3l"}),
        ("榨汁杯350毫升多少钱", {"350ml"}),
        ("炒锅30厘米的有货吗", {"30cm"}),
        ("电热水壶1.7升", {"1.7l"}),
        ("2公斤", {"2kg"}),
    ],
)
def test_identifiers_are_skus_models_and_sizes(text, expected):
    assert entities.identifiers(text) == expected


@pytest.mark.parametrize("text", ["24个月质保", "售价299元", "What is your return policy?", "the 2nd order", "in the 1990s", "7天无理由退货",
                                  "售价299.00元", "Is it ¥299.50?", "is it still $12.50", "99.9%的好评", "12.5 yuan", "only 9.9块"])
def test_plain_numbers_and_words_are_not_identifiers(text):
    assert entities.identifiers(text) == frozenset()


@pytest.mark.parametrize("typed", ["LM1001多少钱", "lm1001 price", "Is LM－1001 in stock?", "LM-1001"])
def test_a_sku_typed_without_its_hyphen_is_the_same_identifier(typed):
    """Customers drop the hyphen ("LM1005多少钱"); before, "lm1005" was a model code that conflicted with the
    entries' "lm-1005", so the product asked about was the one product never served."""
    assert entities.identifiers(typed) == {"lm1001"}
    assert not entities.conflicts(entities.identifiers(typed), entities.entry_identifiers({"question": "LM-1001多少钱？", "tags": ["sku:LM-1001"]}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("小米电饭煲多少钱", {"xiaomi"}),
        ("美的电热水壶多少钱", {"midea"}),
        ("How much is the Xiaomi rice cooker?", {"xiaomi"}),
        ("philips air fryer price", {"philips"}),
        ("Is Xiaomi's kettle cheaper?", {"xiaomi"}),
        ("Is the Dyson V8 better than yours?", {"dyson"}),
        ("戴森和飞利浦哪个好", {"dyson", "philips"}),
        ("鹿米电饭煲多少钱", set()),
        ("How much is the Lumi kettle?", set()),
        ("这个台灯真美的", set()),  # "美的" here is "beautiful", not Midea
        ("完美的礼物有哪些", set()),  # "perfect"
        ("电饭煲能煮小米粥吗", set()),  # millet porridge, not Xiaomi
        ("给了三星好评", set()),  # a three-star rating, not Samsung
        ("三星的耳机多少钱", {"samsung"}),
        ("Do you have more sonyx?", set()),  # inside a longer word: not the brand
    ],
)
def test_brands_other_than_the_stores_are_named_in_both_languages(text, expected):
    assert entities.brands(text) == expected


def test_an_entry_is_about_the_identifiers_its_questions_and_sku_tags_name():
    entry = {"question": "How much is the Lumi Air Fryer 5L?", "alt_questions": ["Air fryer price"], "answer": "Unlike the S1 …", "tags": ["price", "sku:LM-1003"]}
    assert entities.entry_identifiers(entry) == {"5l", "lm1003"}  # never from the answer


def test_a_query_and_an_entry_conflict_only_when_both_name_identifiers_and_share_none():
    assert entities.conflicts(frozenset({"5l"}), frozenset({"3l", "lm-1001"}))
    assert not entities.conflicts(frozenset({"3l"}), frozenset({"3l", "lm-1001"}))
    assert not entities.conflicts(frozenset(), frozenset({"3l"}))  # the query names none: ranking decides
    assert not entities.conflicts(frozenset({"3l"}), frozenset())  # a policy is about no product


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("How much is the kettle?", {"price"}),
        ("电饭煲多少钱", {"price"}),
        ("Is the air fryer in stock?", {"stock"}),
        ("还有库存吗", {"stock"}),
        ("运费多少钱", {"shipping"}),  # what shipping costs, not a product's price
        ("保修多久", {"warranty"}),
        ("What is your return policy?", set()),
        ("The shipment was damaged", set()),  # "shipment" is not the word "ship"
        ("LM-1003 price多少", {"price"}),  # an English cue next to Chinese characters is still a word
        ("这个有stock吗", {"stock"}),
        ("How will the ceiling light be delivered?", {"shipping"}),
        ("What does the kettle cost? What do the lamps cost", {"price"}),
        ("How much do the earbuds costs", {"price"}),
        ("Are prices the same online?", {"price"}),
        ("请问一下电饭煲有没有货", {"stock"}),
        ("Is the wok out of stock", {"stock"}),
        ("costume ideas", set()),  # a cue inside a longer English word is not the cue
        ("Do you have the garment steamer?", {"stock"}),  # was answered with its warranty
        ("Do you sell the juicer cup?", {"stock"}),
        ("挂烫机还有吗", {"stock"}),
        ("有卖吹风机吗", {"stock"}),
        ("水壶卖多少", {"price"}),
        ("炒锅多少块", {"price"}),
        ("扫地机啥价", {"price"}),
        # colloquial and Cantonese (Traditional characters read as Simplified first): were handed off, 0.03–0.27
        ("电水壶怎么卖", {"price"}),
        ("電飯煲幾多錢", {"price"}),
        ("吹風機有冇貨", {"stock"}),
        ("炸锅还有没", {"stock"}),
        # the Chinese "do you have …?" (有…吗) asks for stock, as "Do you have the air fryer?" does: was handed off (0.03)
        ("有空气炸锅吗", {"stock"}),
        ("请问有没有空气炸锅呀", {"stock"}),
        ("我有3000积分，能抵多少钱吗", {"price"}),  # 有 inside a clause is no question of its own
        ("回音壁是不是999元", {"price"}),  # an amount asks whether that is the price
        ("Is the soundbar ¥799 now?", {"price"}),
        ("is it 12 bucks", {"price"}),
        ("台灯保几年", {"warranty"}),
        ("吹风机保多久", {"warranty"}),
        ("价保多久", set()),  # price protection (价保) is a policy, not a product's warranty
        ("got any night lights left?", {"stock"}),
        ("Got any blenders?", {"stock"}),
        ("满99元包邮吗", {"shipping"}),  # what shipping costs, as below
        ("空气炸锅运费多少钱", {"shipping"}),  # the cost of shipping: was the air fryer's price (0.78)
        ("电饭煲邮费多少", {"shipping"}),
        ("What does the blender sell for?", {"price"}),  # both were handed off for want of a cue
        ("How many yuan is the kettle?", {"price"}),
        ("Who pays shipping if I return the kettle?", set()),  # the returns policy's: was the kettle's delivery method
        ("退货运费谁出", set()),
        ("How much is the refund for the air fryer?", set()),
        ("Is the returned item shipped by courier?", set()),
        ("How much does delivery of the rice cooker cost?", {"shipping"}),  # was its price (0.69)
        ("How much does the warranty on the kettle cost?", {"warranty"}),  # was its price (0.58)
        ("How much is the air fryer and is it in stock?", {"price", "stock"}),  # stock has no cost of its own
        # a limit on the price asks for the price: "in stock" does not say whether it is under 100
        ("Do you have any kettles under 100?", {"price"}),
        ("Any air fryer cheaper than 300?", {"price"}),
        ("Any rice cooker under ¥300?", {"price"}),
        ("有没有300元以下的电饭煲", {"price"}),
        ("1000块以内的扫地机器人有吗", {"price"}),
        ("300以下的电饭煲有吗", {"price"}),
        ("低于500元的吹风机", {"price"}),
        # not a price: an age, a count, a size, a time
        ("Is the toothbrush suitable for kids under 3?", set()),
        ("Do you have a blender for people over 60?", {"stock"}),
        ("Do you have rice cookers under 5L?", {"stock"}),
        ("Is delivery within 3 days?", {"shipping"}),
        ("3岁以下的孩子能用吗", set()),
        # a sale's price is not the price the store holds
        ("双十一空气炸锅多少钱", set()),
        ("空气炸锅到手价多少", set()),
        ("How much will the kettle be on Black Friday?", set()),
        ("What's the sale price of the blender?", set()),
        ("双11空气炸锅有货吗", {"stock"}),
        ("LM-6180多少钱", {"price"}),  # 618 inside a number is no sale
    ],
)
def test_asked_kinds(text, kinds):
    assert entities.asked_kinds(text) == kinds


@pytest.mark.parametrize(
    ("text", "left"),
    [
        ("Do you have any kettles under 100?", "Do you have any kettles ，?"),
        ("有没有300元以下的电饭煲", "有没有，的电饭煲"),
        ("Any air fryer cheaper than 300?", "Any air fryer ，?"),
        ("Is the toothbrush suitable for kids under 3?", "Is the toothbrush suitable for kids under 3?"),
    ],
)
def test_a_price_limit_is_no_word_of_a_name(text, left):
    """What a limit asks is the price (:func:`entities.asked_kinds`); its words name nothing ("以下" after 电饭煲's
    的 read as a part of it, and the question was handed off)."""
    assert entities.without_price_limits(text) == left


def test_a_structured_entry_must_be_of_the_kind_asked_other_kinds_always_fit():
    asked = entities.asked_kinds("How much is the Lumi Robot Vacuum S1?")
    assert entities.kind_fits(asked, "price")
    assert not entities.kind_fits(asked, "stock")
    assert entities.kind_fits(asked, "policy")
    # A question that asks for no fact kind is answered by no fact: "How loud is the Lumi Cordless Stick Vacuum
    # V8?" got its price (0.73), one word from "How much is …", and "How do I clean the LM-1003?" its shipping.
    nothing = entities.asked_kinds("How loud is the Lumi Cordless Stick Vacuum V8?")
    assert not nothing and not entities.kind_fits(nothing, "price") and not entities.kind_fits(nothing, "stock")
    assert entities.kind_fits(nothing, "faq") and entities.kind_fits(nothing, "policy")


def test_option_labels_keep_what_tells_the_questions_apart():
    assert entities.short_labels(["How much is the Lumi Nordic Floor Lamp?", "How much is the Lumi Eye-Care Desk Lamp Pro?"]) == [
        "Nordic Floor Lamp",
        "Eye-Care Desk Lamp Pro",
    ]
    assert entities.short_labels(["鹿米护眼台灯 Pro多少钱？", "鹿米落地灯 北欧款多少钱？"]) == ["护眼台灯 Pro", "落地灯 北欧款"]
    # Cut at word boundaries: "Lamp" and "Light" keep the "L" they share.
    assert entities.short_labels(["Is the Lumi Floor Lamp in stock?", "Is the Lumi Floor Light in stock?"]) == ["Lamp", "Light"]
    assert entities.short_labels(["Same?", "Same?"]) == ["Same?", "Same?"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("体脂秤有现货吗", "体脂秤有，吗"),  # where the words about the product end
        ("扫地机器人配件多少钱", "扫地机器人配件，"),
        ("电饭煲有没有货", "电饭煲，"),
        ("价保多久", "价保多久"),  # not a cue after 价
        ("How much is the kettle?", "how much is the kettle?"),  # English cues stay: they are words
    ],
)
def test_chinese_cue_words_end_the_words_about_a_product(text, expected):
    assert entities.without_zh_cues(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Do you sell LM-1003 in white?", {"white"}),
        ("Is the Black hair dryer in stock?", {"black"}),
        ("LM-1003有白色的吗", {"白色"}),
        ("空气炸锅有玫瑰金吗", {"玫瑰金"}),
        ("How much is the kettle?", set()),
        ("鹿米智能电饭煲多少钱", set()),  # 米 of the brand is no 米色
        ("Is the Lumi Air Fryer 5L in stock?", set()),
    ],
)
def test_colours_a_question_names(text, expected):
    assert entities.colours(text) == expected


@pytest.mark.parametrize(
    ("text", "seeks"),
    [
        ("Do you have a cheaper kettle?", True),  # was the kettle's "in stock" (0.87)
        ("Do you have other kettles?", True),
        ("有更便宜的电饭煲吗", True),  # was the price protection's exclusions (0.75)
        ("有没有比电饭煲更便宜的", True),
        ("还有更便宜的吗", True),
        ("有没有便宜点的吹风机", True),
        # a limit on the price asks the price; a comparative that asks nothing of the catalogue asks a policy
        ("Any air fryer cheaper than 300?", False),
        ("别家更便宜可以价保吗", False),
        ("The earbuds got cheaper after I bought them, can I get the difference?", False),
        ("Is the S1 cheaper than the V8?", False),  # a comparison of two products named: handed off by the ranking
        ("空气炸锅能便宜点吗", False),  # bargaining
        ("Do you have the kettle in stock?", False),
    ],
)
def test_seeks_another(text, seeks):
    assert entities.seeks_another(text) is seeks
