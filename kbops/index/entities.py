"""What a question is about: the exact identifiers it names and the fact it asks for.

Two rules of the bot's ranking (:mod:`kbops.index.search`) rest on this module,
both because a wrong product or a wrong fact served with confidence is worse
than a handoff (issue 11):

* **Identifiers are exact terms.** A SKU (``LM-1001``), a model code (``S1``,
  ``V8``, ``X200``), a model number (``2.1``, ``5.1``) or a size (``3L``, ``1.7L``, ``350ml``, ``30cm``, ``55寸``)
  either matches or it does not: "the 5L air fryer" is not "the 3L rice
  cooker" however similar the rest of the words are. A SKU typed without its
  hyphen ("LM1005") is the same identifier. An entry whose questions
  name identifiers, none of which the query names, is about another product
  and is never served for a query that names identifiers of its own. Entries
  without identifiers (policies, general FAQs) are unaffected.
* **A brand is part of a product's identity.** "How much is the Xiaomi rice
  cooker?" is not a question about the store's rice cooker, however alike the
  rest of the words are. :data:`BRANDS` lists the appliance and electronics
  brands of Chinese and English e-commerce with their names in both scripts; a
  query naming one is never answered by a product entry whose questions do not
  name it (the store's own products, or another brand's), while a store that
  sells that brand names it in its products' questions and answers as before.
* **The fact asked for must fit the entry's kind.** Structured facts come in
  kinds (price, stock, shipping, warranty: :data:`FACT_CUES`); a question that
  asks for a price is not answered by a stock entry, even when that is the
  only entry left about the product (its price row was deleted), and a
  question that asks for none of them is answered by none: "How loud is the
  Lumi Cordless Stick Vacuum V8?" is one word from the V8's price question, and
  got its price. Entries of other kinds (policy sections, FAQs, mined answers)
  pass: "how long does shipping take" is answered by a policy.

Cue words are deliberately few and common (the words the sample store's own
templates and customers use, kbops/extract/records.py); every structured entry's
questions hold its kind's cue, and a customer asking for that fact in words
with no cue is handed off rather than guessed at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kbops.index.release import entry_questions
from kbops.text import normalize

#: A SKU or product code: letters, a dash, digits (lm-1001, sku-88, gb-t19001); typed without the dash, a SKU of up
#: to ten characters is a model code below (lm1001), and both normalise to the same identifier.
_SKU = r"[a-z]{1,6}-[a-z]{0,3}\d{2,}[a-z0-9-]*"
#: A model code: letters and digits in one word, at least one of each (s1, v8, x200, a7iv). Plain
#: numbers are not identifiers (24 months, 299 yuan), nor are words with a digit suffix that are
#: ordinary English ("2nd", "4th") or units (sizes are below).
_MODEL = r"(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{2,10}"
#: A size with its unit, as written on Chinese and English product pages (3l, 1.7 l, 350ml, 55寸).
_SIZE = r"\d+(?:\.\d+)?\s?(?:ml|l|cm|mm|m|kg|g|w|mah|寸|英寸|升|毫升|厘米|毫米|公斤|千克|克|瓦)"
#: Units of money, Chinese and English: a number with one is an amount (a price), not an identifier.
_MONEY = r"(?:元|块|rmb|yuan|kuai|bucks?|dollars?)"
#: A model number with a decimal point ("Soundbar 2.1", 回音壁5.1, 蓝牙5.3): "回音壁5.1多少钱" got the 2.1's price.
#: Not an amount (299.00元, ¥299.50, $12.50) nor a share (99.9%).
_VERSION = rf"\d+\.\d+(?![\d.%]|\s?{_MONEY})"
_IDENTIFIER = re.compile(
    rf"(?<![a-z0-9.]){_SKU}(?![a-z0-9])|(?<![a-z0-9.]){_SIZE}(?![a-z])|(?<![a-z0-9.¥$]){_VERSION}|(?<![a-z0-9.]){_MODEL}(?![a-z0-9])"
)
#: An amount of money ("999元", "¥799", "12 bucks"): a question that names one asks for the price ("回音壁是不是999元").
_AMOUNT = re.compile(rf"[¥$]\s?\d|(?<![a-z0-9.])\d+(?:\.\d+)?\s?{_MONEY}(?![a-z])")
_NOT_MODEL = re.compile(r"\d+(?:st|nd|rd|th|s|pcs|x)")
#: A limit on the price ("under 100", "cheaper than 300", "300元以下", "1000块以内", "低于500元"): the question asks for
#: the price, the one fact that says whether the product is within it ("Do you have any kettles under 100?" asks
#: for stock in so many words, and "in stock" does not answer it). A bare number is a price after a comparative
#: of price ("cheaper than 3") or from 100 up ("under 100"); below that it may as well be an age or a count
#: ("kids under 3", "people over 60"), and a number with a unit is a size or a time ("under 5L", "within 3 days").
_EN_LIMIT = r"under|below|less than|lower than|within|up to|at most|no more than|not more than|over|above|more than|higher than"
_EN_PRICIER = r"cheaper than|less expensive than|more expensive than|pricier than|dearer than"
_ZH_MONEY = r"(?:元|块钱|块|rmb)"
_PRICE_LIMIT = re.compile(
    rf"(?<![a-z])(?:(?:{_EN_PRICIER})\s+[¥$]?\s?\d+(?:\.\d+)?(?:\s?{_MONEY})?"
    rf"|(?:{_EN_LIMIT})\s+(?:[¥$]\s?\d+(?:\.\d+)?(?:\s?{_MONEY})?|\d+(?:\.\d+)?\s?{_MONEY}|[1-9]\d{{2,}}(?:\.\d+)?))(?![a-z0-9.%])"
    rf"|(?:[¥$]\s?\d+(?:\.\d+)?|\d+(?:\.\d+)?\s?{_ZH_MONEY}|(?<![\d.])[1-9]\d{{2,}}(?:\.\d+)?)\s?(?:以下|以内|之内|以上|上下|左右)"
    rf"|(?:低于|高于|不到|不超过|少于|超过|便宜于|贵于)\s?(?:[¥$]\s?\d+(?:\.\d+)?|\d+(?:\.\d+)?\s?{_ZH_MONEY}|[1-9]\d{{2,}}(?:\.\d+)?(?![\d.]))",
    re.IGNORECASE,
)

#: Cue words of each structured fact kind, Chinese and English (lower case; English matched as words).
FACT_CUES: Mapping[str, tuple[str, ...]] = {
    "price": ("多少钱", "价格", "价钱", "售价", "几块钱", "多少块", "多少元", "什么价", "啥价", "卖多少", "怎么卖", "咋卖", "几多钱", "how much", "price", "prices", "priced", "cost",
              "costs", "pricing", "sell for", "sells for", "selling for", "how many yuan", "how many rmb"),
    "stock": ("有货", "有没有货", "没货", "现货", "库存", "缺货", "到货", "断货", "还有吗", "有卖", "stock", "available", "availability", "sold out",
              "补货", "还剩", "剩几", "剩多少", "还有没", "有冇货", "冇货", "restock", "do you have", "do you sell", "do you carry", "got any", "left"),
    "shipping": ("配送", "发货", "快递", "物流", "运费", "邮费", "包邮", "送货", "ship", "ships", "shipping", "shipped", "delivery", "deliveries", "deliver",
                 "delivered", "delivering", "courier", "freight"),
    "warranty": ("保修", "质保", "保固", "三包", "保几年", "保多久", "保多长", "warranty", "warranties", "guarantee"),
}
#: Chinese cues that are another word after these characters: 价保多久 asks how long *price protection* lasts (a policy).
_ZH_NOT_AFTER = {"保几年": "价", "保多久": "价", "保多长": "价"}
STRUCTURED_KINDS = frozenset(FACT_CUES)
#: English cues are whole words of Latin letters: not inside a longer word ("shipment", "costume"), but a word
#: all the same next to Chinese characters, which regex \\b counts as word characters ("LM-1003 price多少").
_EN_CUE = {
    kind: re.compile(r"(?<![a-z0-9])(?:" + "|".join(re.escape(c) for c in cues if c.isascii()) + r")(?![a-z0-9])") for kind, cues in FACT_CUES.items()
}


def _zh_cue_pattern(cues: Iterable[str]) -> re.Pattern[str]:
    """The Chinese ``cues`` as one pattern, longest first (有没有货 before 有货), each after no character it must not follow."""
    chinese = sorted((c for c in cues if not c.isascii()), key=len, reverse=True)
    return re.compile("|".join((f"(?<!{_ZH_NOT_AFTER[c]})" if c in _ZH_NOT_AFTER else "") + re.escape(c) for c in chinese))


_ZH_CUE = {kind: _zh_cue_pattern(cues) for kind, cues in FACT_CUES.items()}
_ANY_ZH_CUE = _zh_cue_pattern(c for cues in FACT_CUES.values() for c in cues)
_SKU_TAG = "sku:"

#: Brands customers compare with, by canonical name: their names as customers write them, Chinese and Latin (lower
#: case; Latin names matched as words). Not listed: brands whose name is an everyday word ("Shark", "Ninja",
#: "Apple", 小熊, 石头), which would turn ordinary questions into brand questions. A store that sells a listed brand
#: names it in its products' questions, so those products still answer it.
BRANDS: Mapping[str, tuple[str, ...]] = {
    "xiaomi": ("小米", "米家", "红米", "xiaomi", "mijia", "redmi"),
    "midea": ("美的", "midea"),
    "gree": ("格力", "gree"),
    "haier": ("海尔", "haier"),
    "hisense": ("海信", "hisense"),
    "tcl": ("tcl",),
    "supor": ("苏泊尔", "supor"),
    "joyoung": ("九阳", "joyoung"),
    "bear": ("小熊电器",),
    "deerma": ("德尔玛", "deerma"),
    "morphy richards": ("摩飞", "morphy richards"),
    "philips": ("飞利浦", "philips"),
    "panasonic": ("松下", "panasonic"),
    "zojirushi": ("象印", "zojirushi"),
    "tefal": ("特福", "tefal"),
    "bosch": ("博世", "bosch"),
    "siemens": ("西门子", "siemens"),
    "delonghi": ("德龙", "delonghi", "de'longhi"),
    "kitchenaid": ("凯膳怡", "kitchenaid"),
    "breville": ("铂富", "breville"),
    "cuisinart": ("美膳雅", "cuisinart"),
    "vitamix": ("维他密斯", "vitamix"),
    "instant pot": ("instant pot",),
    "dyson": ("戴森", "dyson"),
    "ecovacs": ("科沃斯", "ecovacs"),
    "roborock": ("roborock",),
    "dreame": ("追觅", "dreame"),
    "irobot": ("irobot", "roomba"),
    "braun": ("博朗", "braun"),
    "flyco": ("飞科", "flyco"),
    "povos": ("奔腾电器", "povos"),
    "oral-b": ("欧乐b", "欧乐-b", "oral-b", "oralb"),
    "usmile": ("usmile",),
    "soocas": ("素士", "soocas"),
    "huawei": ("华为", "huawei"),
    "honor": ("荣耀手机",),
    "lenovo": ("联想", "lenovo"),
    "samsung": ("三星", "samsung"),
    "sony": ("索尼", "sony"),
    "lg": ("lg",),
    "bose": ("bose",),
    "jbl": ("jbl",),
    "edifier": ("漫步者", "edifier"),
    "sennheiser": ("森海塞尔", "sennheiser"),
    "anker": ("安克", "anker"),
    "opple": ("欧普照明", "opple"),
    "nvc": ("雷士照明", "nvc"),
    "yeelight": ("yeelight",),
}
#: Latin names are looked up as words and word pairs (not inside a longer word, but next to Chinese characters);
#: Chinese names are found as they are, except where the same characters are ordinary words: 美的 after a degree
#: word or in an adjective ("真美的", "完美的": beautiful, perfect), 小米 as food (小米粥, 小米椒), 三星 as a rating
#: (三星好评).
_LATIN_BRAND = {name: brand for brand, names in BRANDS.items() for name in names if name.isascii()}
_LATIN_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*")
_CHINESE_BRAND = {name: brand for brand, names in BRANDS.items() for name in names if not name.isascii()}
_NOT_BEFORE = {"美的": "(?<![很真好太挺超多完优精甜唯审华柔秀])"}
_NOT_AFTER = {"小米": "(?![粥饭椒])", "三星": "(?![好差评级])"}
_CHINESE_PATTERN = re.compile(
    "|".join(_NOT_BEFORE.get(n, "") + re.escape(n) + _NOT_AFTER.get(n, "") for n in sorted(_CHINESE_BRAND, key=len, reverse=True))
)


#: A size's Chinese unit as the Latin one: "3升" is the "3L" of 鹿米智能电饭煲 3L (it was another product's size, and
#: "电饭煲3升的多少钱" was handed off). Longest first: 毫升 before 升.
_UNIT_AS = {"毫升": "ml", "升": "l", "厘米": "cm", "毫米": "mm", "公斤": "kg", "千克": "kg", "克": "g", "瓦": "w"}
_CHINESE_UNIT = re.compile(r"(?<=\d)(" + "|".join(sorted(_UNIT_AS, key=len, reverse=True)) + r")$")


def identifiers(text: str) -> frozenset[str]:
    """The exact identifiers ``text`` names, normalised: lower case, no space before a unit, a Chinese unit as its
    Latin one (3升 is 3l), and no hyphen, because customers type a SKU with or without it ("LM-1005", "LM1005") and
    both name the same product."""
    found = set()
    for match in _IDENTIFIER.findall(normalize(text)):
        ident = _CHINESE_UNIT.sub(lambda m: _UNIT_AS[m.group(1)], match.replace(" ", "").replace("-", ""))
        if _NOT_MODEL.fullmatch(ident):
            continue
        found.add(ident)
    return frozenset(found)


def brands(text: str) -> frozenset[str]:
    """The :data:`BRANDS` ``text`` names, by canonical name."""
    t = normalize(text)
    words = [w.removesuffix("'s") for w in _LATIN_WORD.findall(t)]
    found = {_LATIN_BRAND[w] for w in (*words, *(" ".join(pair) for pair in zip(words, words[1:]))) if w in _LATIN_BRAND}
    found.update(_CHINESE_BRAND[m] for m in _CHINESE_PATTERN.findall(t))
    return frozenset(found)


def entry_brands(entry: Mapping[str, Any]) -> frozenset[str]:
    """The brands an entry's questions name (its answer may compare with others without being about them)."""
    return frozenset().union(*(brands(t) for t in entry_questions(entry)))


def entry_identifiers(entry: Mapping[str, Any]) -> frozenset[str]:
    """The identifiers an entry's questions name, plus its ``sku:`` tags (what the entry is about).

    Answers are not read: an answer may mention another product ("unlike the
    S1, the V8 …") without being about it."""
    texts = list(entry_questions(entry))
    found = set().union(*(identifiers(t) for t in texts))
    found.update(t[len(_SKU_TAG) :].lower().replace("-", "") for t in entry.get("tags", ()) if t.lower().startswith(_SKU_TAG))
    return frozenset(found)


def catalogue_identifiers(entries: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The identifiers of the store's products: those of the entries made from its catalogue (they carry a ``sku:`` tag).

    What a product is, the catalogue says. An entry's question may hold a token shaped like a model code that
    names no product ("download the audio of a YouTube video as an MP3", "set up 2FA"): a help centre's FAQ
    imported without a catalogue has identifiers and no products."""
    return frozenset().union(
        *(entry_identifiers(e) for e in entries if any(t.lower().startswith(_SKU_TAG) for t in e.get("tags", ())))
    )


#: A sale's price, or the price after a coupon: one the store does not hold, and today's list price is not it
#: ("双十一空气炸锅多少钱" got the air fryer's price at 0.87). A question naming one asks for no price fact; a
#: policy may still answer it ("秒杀价能价保吗" is price protection's).
_SALE_PRICE = re.compile(
    r"双十一|双11|双十二|双12|(?<![\w.-])618(?![\w.])|黑五|年货节|大促|活动价|促销价|到手价|券后价|折后价|秒杀价|优惠价"
    r"|(?<![a-z0-9])(?:black friday|cyber monday|prime day|singles'? day|sale price|on sale|in the sale|during the sale|discount(?:ed)? price"
    r"|after (?:the |a )?(?:coupon|discount)s?)(?![a-z0-9])"
)
#: Fact kinds that have a cost of their own: with one of them, a price cue asks what *it* costs ("运费多少钱",
#: "How much does delivery cost?"), not the product's price.
_COSTED_KINDS = frozenset({"shipping", "warranty"})
#: Words of returns, refunds and exchanges: a question with one asks what the returns policy says, not a product's
#: facts ("Who pays shipping if I return the kettle?" got the kettle's delivery method at 0.70).
_RETURNS = re.compile(
    r"(?<![a-z0-9])(?:return|returns|returned|returning|refund|refunds|refunded|exchange|exchanges|exchanged|send (?:it |them )?back)(?![a-z0-9])"
    r"|退货|退款|退换|换货|退回|寄回|退钱"
)


#: "有电饭煲吗", "请问有没有空气炸锅呀": the Chinese "do you have …?", a question that opens with 有 and ends with 吗 (or 么, 呀),
#: asks for stock as "Do you have the air fryer?" does. Not "有货吗" or "有没有货", cues of their own, nor 有 inside a
#: clause ("我有3000积分，能抵多少钱吗").
_ZH_HAVE = re.compile(r"(?:^|[，,。！!？?\s])(?:请问|亲|你们|你家|店里)?还?有(?:没有)?(?![没货])[^，,。？?！!]{1,12}[吗么呀]")


def asked_kinds(text: str) -> frozenset[str]:
    """The structured fact kinds a question asks for (empty: it asks for none, and no structured entry answers it).

    A price cue with shipping or warranty asks for that fact's cost: "空气炸锅运费多少钱" and "How much does
    delivery of the rice cooker cost?" got the product's own price (0.78, 0.69), which is not what delivery
    costs. A question about a return, a refund or an exchange asks for none: what it costs and how it ships
    are the returns policy's ("Who pays shipping if I return the kettle?" got the kettle's delivery method). A
    limit on the price asks for the price, not for stock (:data:`_PRICE_LIMIT`); a sale's price is not the one
    the store holds (:data:`_SALE_PRICE`)."""
    t = normalize(text)
    asked = {kind for kind in FACT_CUES if _EN_CUE[kind].search(t) or _ZH_CUE[kind].search(t)}
    if _ZH_HAVE.search(t):
        asked.add("stock")
    if _PRICE_LIMIT.search(t):
        asked.discard("stock")  # "Do you have any kettles under 100?": whether it is under 100, the price says
        asked.add("price")
    if _AMOUNT.search(t):
        asked.add("price")
    if _SALE_PRICE.search(t):
        asked.discard("price")
    if asked & _COSTED_KINDS:
        asked.discard("price")
    if _RETURNS.search(t):
        return frozenset()
    return frozenset(asked)


#: Colours, as customers name a product's variant ("Do you sell LM-1003 in white?", "LM-1003有白色的吗"). Chinese
#: with 色 or as its own word (米色 with 色: 米 alone is 鹿米's); longest first (玫瑰金 before 金色).
_EN_COLOURS = ("white", "black", "red", "blue", "green", "pink", "purple", "grey", "gray", "silver", "gold", "golden", "yellow",
               "orange", "brown", "beige", "navy", "rose gold")
_ZH_COLOURS = ("玫瑰金", "白色", "黑色", "红色", "蓝色", "绿色", "粉色", "紫色", "灰色", "银色", "金色", "黄色", "橙色", "棕色", "米色",
               "深色", "浅色", "白的", "黑的")
_COLOUR = re.compile(
    r"(?<![a-z0-9])(" + "|".join(sorted(_EN_COLOURS, key=len, reverse=True)) + r")(?![a-z0-9])|(" + "|".join(_ZH_COLOURS) + ")"
)


def colours(text: str) -> frozenset[str]:
    """The colours ``text`` names (lower case; 白的 as 白色)."""
    found = set()
    for en, zh in _COLOUR.findall(normalize(text)):
        found.add(en or zh.replace("的", "色"))
    return frozenset(found)


#: Another product than the one named or seen: a comparative ("a cheaper kettle", 更便宜的电饭煲, 便宜点的) or "other"
#: (别的, 其他, "another"), asked of the catalogue ("Do you have …", "Is there …", 有没有, 还有, 推荐). A price limit
#: ("cheaper than 300") asks the price instead (:data:`_PRICE_LIMIT`), and a comparative that is no request ("The earbuds
#: got cheaper after I bought them", 别家更便宜可以价保吗) asks a policy.
_SEEKING = re.compile(
    r"(?<![a-z])(?:do you (?:have|sell|carry|stock|offer)|have you got|is there|are there|any|got any|recommend|suggest|show me)(?![a-z])"
    r"|有没有|有没|还有|有[^，,。？?！!]{0,12}吗|推荐|有卖",
    re.IGNORECASE,
)
_ANOTHER = re.compile(
    r"(?<![a-z])(?:cheaper|less expensive|more affordable|bigger|larger|smaller|lighter|quieter|better|another|other|different)(?![a-z])"
    r"|(?:更|再|还要)(?:便宜|实惠|好|大|小|轻|安静)|便宜(?:一)?点的|(?:别的|其他|其它|另外的|另一)",
    re.IGNORECASE,
)


def seeks_another(text: str) -> bool:
    """Whether ``text`` asks the catalogue for another product than one it names or the customer is looking at ("Do you
    have a cheaper kettle?" got the kettle's "in stock" at 0.87; "有更便宜的电饭煲吗" the price protection's exclusions
    at 0.75): which product fits is the catalogue's to say, and no entry about one product answers it."""
    plain = without_price_limits(normalize(text))
    return bool(_ANOTHER.search(plain)) and bool(_SEEKING.search(plain))


def without_another(text: str) -> str:
    """``text`` with the words that ask for another product (:func:`seeks_another`) replaced by commas: what is left
    names the product it is compared with, if any."""
    return _ANOTHER.sub("，", _SEEKING.sub("，", without_price_limits(normalize(text))))


def without_price_limits(text: str) -> str:
    """``text`` with each limit on the price (:data:`_PRICE_LIMIT`) replaced by a comma: what it asks is the price
    (:func:`asked_kinds`), and its words name nothing ("300元以下的电饭煲": 以下 is no part of the rice cooker)."""
    return _PRICE_LIMIT.sub("，", text)


def without_zh_cues(text: str) -> str:
    """``text`` with each Chinese cue word (:data:`FACT_CUES`) replaced by a comma: where a question's words about a
    product end ("体脂秤有现货吗" → "体脂秤有，吗")."""
    return _ANY_ZH_CUE.sub("，", normalize(text))


def kind_fits(asked: frozenset[str], kind: str) -> bool:
    """Whether an entry of ``kind`` may answer a question asking for ``asked`` (see the module docstring): a
    structured fact only a question that asks for its kind."""
    return kind not in STRUCTURED_KINDS or kind in asked


def conflicts(query_ids: frozenset[str], entry_ids: frozenset[str]) -> bool:
    """True when the query and the entry each name identifiers and share none: another product."""
    return bool(query_ids) and bool(entry_ids) and not (query_ids & entry_ids)


def short_labels(questions: Sequence[str]) -> list[str]:
    """What tells ``questions`` apart: each without the words they all begin and end with.

    "How much is the Lumi Nordic Floor Lamp?" and "How much is the Lumi
    Eye-Care Desk Lamp Pro?" → "Nordic Floor Lamp", "Eye-Care Desk Lamp Pro";
    "鹿米护眼台灯 Pro多少钱？" and "鹿米落地灯 北欧款多少钱？" → "护眼台灯 Pro",
    "落地灯 北欧款". A label that would be empty keeps the whole question.
    """
    if len(questions) < 2:
        return list(questions)
    prefix = os.path.commonprefix(list(questions))
    suffix = os.path.commonprefix([q[::-1] for q in questions])[::-1]
    # Cut at a word boundary in Latin text, so "Lamp" and "Light" do not lose their "L".
    if prefix and prefix[-1].isascii() and prefix[-1].isalnum():
        prefix = prefix[: len(prefix) - len(re.split(r"[^A-Za-z0-9]", prefix)[-1])]
    if suffix and suffix[0].isascii() and suffix[0].isalnum():
        suffix = suffix[len(re.split(r"[^A-Za-z0-9]", suffix)[0]) :]
    labels = []
    for q in questions:
        core = q[len(prefix) : len(q) - len(suffix)].strip(" ?？,，。.:：的")
        labels.append(core if core else q)
    return labels


def distinct(values: Iterable[frozenset[str]]) -> int:
    """How many different non-empty identifier sets there are (entities among a group of entries)."""
    return len({v for v in values if v})
