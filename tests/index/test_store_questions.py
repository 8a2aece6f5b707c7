"""The sample store, fully approved, asked what its customers ask: every outcome as expected (issue 11).

Each row: a question, and what the bot must do — answer from an entry (its key
or the start of it), ask which product is meant (``clarify``, with the options'
SKUs), or hand off. Both languages; named products, SKUs, sizes, several
products under one name, the store's policies asked generically, and
questions the store cannot answer. Built on one KB for the module (SQLite;
the ranking reads only the release).
"""

from __future__ import annotations

import csv
import shutil

import pytest

from kbops.config import Settings
from kbops.db import init_db
from kbops.pipeline import publish
from kbops.serve.retriever import Retriever
from tests.conftest import MODELS_DIR, SAMPLE
from tests.serve.live import approve_all, set_price

pytestmark = pytest.mark.slow

#: (question, expected): "answer <entry key prefix>", "clarify <sku> <sku> …", "handoff", or "not <entry key prefix>"
#: (whatever the bot does, it does not serve that entry: where several outcomes are right and one is wrong).
TABLE = [
    # named products, both languages
    ("How much is the Lumi Air Fryer 5L?", "answer product:LM-1003:price:en"),
    ("鹿米空气炸锅 5L多少钱？", "answer product:LM-1003:price:zh"),
    ("扫地机器人多少钱", "answer product:LM-1007:price:zh"),
    ("Is the Lumi Smart Rice Cooker 3L in stock?", "answer product:LM-1001:stock:en"),
    ("电热水壶有货吗", "answer product:LM-1002:stock:zh"),
    ("How long is the warranty on the Lumi Ionic Hair Dryer?", "answer product:LM-1018:warranty:en"),
    ("吹风机保修多久", "answer product:LM-1018:warranty:zh"),
    ("吹风机保修多长时间", "answer product:LM-1018:warranty:zh"),  # the fact asked, of the product named, in other words
    ("破壁机还缺货吗", "answer product:LM-1004:stock:zh"),
    ("鹿米冰箱多少钱", "handoff"),  # 冰箱 shares one character with 音箱: that names no product of the store
    ("鹿米电视多少钱", "handoff"),  # nor does 米电, across the brand and the kettle's name (鹿米电热水壶)
    ("请问一下电饭煲有没有货", "answer product:LM-1001:stock:zh"),  # filler words and an A-not-A question
    ("Do you have the garment steamer?", "answer product:LM-1010:stock:en"),  # was its warranty: "do you have" asks for stock
    ("How is the Lumi Soundbar 2.1 shipped?", "answer product:LM-1017:shipping:en"),
    ("How will the ceiling light be delivered?", "answer product:LM-1012:shipping:en"),
    ("回音壁怎么发货", "answer product:LM-1017:shipping:zh"),
    ("回音壁5.1多少钱", "handoff"),  # the store sells the 2.1: was answered with its price
    ("How much is the Lumi Soundbar 5.1?", "handoff"),
    ("水壶卖多少", "answer product:LM-1002:price:zh"),  # other words for price, stock and warranty
    ("台灯保几年", "answer product:LM-1011:warranty:zh"),
    ("got any night lights left?", "answer product:LM-1013:stock:en"),
    ("扫地机器人配件多少钱", "handoff"),  # an accessory: was answered with the robot's price (0.92); 配 is also 配送's
    ("体脂秤有现货吗", "answer product:LM-1020:stock:zh"),  # 有现 is no accessory: the cue 现货 ends the product's words
    ("那电饭煲呢", "handoff"),  # a follow-up that only names a product: was a mined reply about its inner pot (0.61)
    ("What about the kettle?", "handoff"),
    ("这个多少钱", "handoff"),  # a price of nothing named: was the shipping policy's "买多少钱包邮" (0.52)
    ("那款有货吗", "handoff"),  # was a mined chat reply about another product (0.58)
    ("How much is it?", "handoff"),
    ("挂烫机多少钱一台", "answer product:LM-1010:price:zh"),  # 一台 is how many, not the 台 of 台灯
    ("空气炸锅还剩几台", "answer product:LM-1003:stock:zh"),
    ("鹿米Air Fryer多少钱", "answer product:LM-1003:price:zh"),  # was the Earbuds Air's Chinese price (0.53), then a handoff: named in two scripts
    ("鹿米 rice cooker price", "answer product:LM-1001:price:zh"),  # read in Chinese, named in English: was a handoff
    ("Air Fryer多少钱", "answer product:LM-1003:price:zh"),
    ("鹿米Rice Cooker有货吗", "answer product:LM-1001:stock:zh"),
    ("Bluetooth耳机多少钱", "handoff"),  # Bluetooth is the speaker's English name, 耳机 the earbuds' Chinese one
    # Traditional characters (Hong Kong, Taiwan, overseas customers): the store's simplified entries answer them (were handed off, 0.02–0.19)
    ("電飯煲多少錢", "answer product:LM-1001:price:zh"),
    ("空氣炸鍋有貨嗎", "answer product:LM-1003:stock:zh"),
    ("吹風機保修多久", "answer product:LM-1018:warranty:zh"),
    ("退貨政策是什麼", "answer policy:policies:returns.zh.md"),
    ("可以開發票嗎", "answer policy:policies:invoices.zh.md"),
    ("美的電熱水壺多少錢", "handoff"),  # another brand's, in traditional characters as in simplified
    # SKUs
    ("LM-1001多少钱", "answer product:LM-1001:price:zh"),
    ("How much does LM-1014 cost?", "answer product:LM-1014:price:en"),
    ("LM-1004有货吗", "answer product:LM-1004:stock:zh"),
    ("What is the warranty on LM-1007?", "answer product:LM-1007:warranty:en"),
    ("LM1005多少钱", "answer product:LM-1005:price:zh"),  # typed without the hyphen
    ("LM-1003 price多少", "answer product:LM-1003:price"),  # an English cue in a Chinese question
    # a SKU and a question about something the store does not hold: its facts' kinds were answered (0.43–0.46)
    ("How do I clean the LM-1003?", "handoff"),  # was its shipping
    ("How loud is the LM-1008?", "handoff"),  # was its price
    ("What colours does the LM-1020 come in?", "handoff"),  # was its shipping
    ("How loud is the Lumi Cordless Stick Vacuum V8?", "handoff"),  # one word from its price question: was its price (0.73)
    # a store-wide policy asked of a product: its name is no part of the question (they were handed off, 0.10–0.36)
    ("空气炸锅可以退货吗", "answer policy:policies:returns.zh.md"),
    ("Can I return the air fryer?", "answer policy:policies:returns.en.md"),
    ("电饭煲能开发票吗", "answer policy:policies:invoices.zh.md"),
    ("How do I clean the air fryer?", "handoff"),  # no policy says: still handed off
    ("What is the price of the air fryer basket?", "handoff"),  # a price is the product's: no policy answers it
    ("Who pays shipping if I return the kettle?", "not product:LM-1002:shipping"),  # was its delivery method (0.70)
    # the cost of shipping or of a warranty is not the product's price (they were, at 0.58–0.78)
    ("空气炸锅运费多少钱", "not product:LM-1003:price"),
    ("How much does delivery of the rice cooker cost?", "not product:LM-1001:price"),
    ("How much does the warranty on the kettle cost?", "not product:LM-1002:price"),
    # a limit on the price asks for the price: they were handed off, one with the robot's price at 0.88
    ("Do you have any kettles under 100?", "answer product:LM-1002:price:en"),
    ("Any air fryer cheaper than 300?", "answer product:LM-1003:price:en"),
    ("有没有300元以下的电饭煲", "not product:LM-1001:stock"),  # its price tops at 0.46 (no price word for the channels): handed off
    ("1000块以内的扫地机器人有吗", "answer product:LM-1007:price:zh"),
    ("Is the toothbrush suitable for kids under 3?", "handoff"),  # an age, not a price
    ("Do you have rice cookers under 5L?", "handoff"),  # a size: the 5L product is the air fryer
    # several products under one name: ask which one
    ("How much is the Lumi lamp?", "clarify LM-1011 LM-1014"),
    ("鹿米的灯多少钱", "clarify LM-1011 LM-1012 LM-1013 LM-1014"),
    ("How much is the vacuum?", "clarify LM-1007 LM-1008 LM-1009"),
    ("I'm looking for a Lumi lamp, how much is it?", "clarify LM-1011 LM-1014"),
    # the store's policies, asked generically
    ("What is your return policy?", "answer policy:policies:returns.en.md"),
    ("退货政策是什么", "answer policy:policies:returns.zh.md"),
    ("价保多少天", "answer policy:policies:price-protection.zh.md"),
    ("Do you offer price protection?", "answer policy:policies:price-protection.en.md"),
    ("我想开发票", "answer policy:policies:invoices.zh.md"),
    ("Can I get a VAT invoice?", "answer policy:policies:invoices.en.md"),
    ("How do I earn points?", "answer policy:policies:membership.en.md"),
    ("积分怎么用", "answer policy:policies:membership.zh.md"),
    ("七天无理由退货吗", "answer policy:policies:returns.zh.md"),
    ("How much do I need to spend for free shipping?", "answer policy:policies:shipping.en.md"),
    ("多少钱包邮", "answer policy:policies:shipping.zh.md"),
    # not this store's knowledge, or not a product it sells: hand off
    ("What's the weather in Paris?", "handoff"),
    ("你们老板是谁", "handoff"),
    ("Do you sell iPhones?", "handoff"),
    ("我的订单什么时候到", "handoff"),
    ("LM-9999多少钱", "handoff"),
    # a mined reply about one product is no answer about another (they got the rice cooker's dishwasher reply, 0.84, 0.60)
    ("空气炸锅的内胆可以用洗碗机洗吗", "handoff"),
    ("电热水壶可以用洗碗机洗吗", "handoff"),
    ("电饭煲内胆能用洗碗机吗", "answer chat:zh:6094653470a7a581"),  # the product it is about
    # a mined reply about one thing of a product is no answer about another thing of it (the dishwasher reply, 0.86–0.95)
    ("电饭煲内胆多厚", "handoff"),
    ("电饭煲内胆能用多久", "handoff"),
    ("电饭煲内胆是什么材质的", "handoff"),
    ("电饭煲内锅可以机洗吗", "answer chat:zh:6094653470a7a581"),  # no 洗碗机, but the same question in other words
    # colloquial and Cantonese ways of asking a price or stock: were handed off (0.19, 0.03, 0.03)
    ("電飯煲幾多錢", "answer product:LM-1001:price:zh"),
    ("吹風機有冇貨", "answer product:LM-1018:stock:zh"),
    ("炸锅还有没", "answer product:LM-1003:stock:zh"),
    ("有空气炸锅吗", "answer product:LM-1003:stock:zh"),  # "do you have …?": was handed off (0.03)
    ("你们有扫地机器人吗", "answer product:LM-1007:stock:zh"),
    ("有剃须刀吗", "handoff"),  # a product the store does not sell
    ("有电子发票吗", "answer policy:policies:invoices.zh.md"),  # a policy, asked the same way
    # another product than the one named: the catalogue's to say (were "in stock" at 0.87, price protection at 0.52–0.75)
    ("Do you have a cheaper kettle?", "handoff"),
    ("有更便宜的电饭煲吗", "handoff"),
    ("有没有比吹风机更便宜的", "handoff"),
    ("还有更便宜的吗", "handoff"),
    ("别家更便宜可以价保吗", "answer policy:policies:price-protection.zh.md"),  # a comparative that asks a policy
    ("电饭煲3升的多少钱", "answer product:LM-1001:price:zh"),  # a size in Chinese units: was handed off (3升 was not 3L)
    ("5升的空气炸锅多少钱", "answer product:LM-1003:price:zh"),
    ("2升的电热水壶多少钱", "handoff"),  # the kettle is 1.7L
    # a colour the store's questions never name: the store does not say it has it (was "in stock" at 0.94)
    ("Do you sell LM-1003 in white?", "handoff"),
    ("Is the black hair dryer in stock?", "handoff"),
    ("LM-1003有白色的吗", "handoff"),
    ("炒锅30厘米的有货吗", "answer product:LM-1006:stock:zh"),  # 30 before 厘米 read as a brand's name: was handed off (0.97)
    ("How much is the 5L rice cooker?", "handoff"),  # the 5L product is the air fryer; the rice cooker is 3L
    ("5L的电饭煲多少钱", "handoff"),
    ("How much is the Xiaomi rice cooker?", "handoff"),  # another brand's product: not the store's rice cooker
    ("美的电热水壶多少钱", "handoff"),
    ("How much is the Philips air fryer?", "handoff"),
    ("How much is the Ninja air fryer?", "handoff"),  # a brand in no list, but a name the store's questions never use
    ("Ninja空气炸锅多少钱", "handoff"),
    ("How much is a new air fryer?", "answer product:LM-1003:price:en"),  # an ordinary word, in lower case
    ("How much is the hairdryer?", "answer product:LM-1018:price:en"),  # the name's two words as one: was handed off (0.26)
    ("Is the airfryer in stock?", "answer product:LM-1003:stock:en"),
    ("How much is the hairband?", "handoff"),  # "hair" and a word the store does not have: no split, no product
    ("How much is the toothbrushhead?", "handoff"),  # an accessory glued to the product's name: was its price (0.41)
    ("鹿米暖风机多少钱", "handoff"),  # a fan heater: was the hair dryer's price (0.70), 暖 where the store says 吹 before 风机
    ("鹿米电水壶多少钱", "answer product:LM-1002:price:zh"),  # 电 is the store's word: the kettle
    ("How much is the Lumi pressure cooker?", "handoff"),  # was the rice cooker's price (0.87): another word before "cooker"
    ("How much is the Lumi slow cooker?", "handoff"),  # (0.88)
    ("Is the cordless vacuum in stock?", "answer product:LM-1008:stock:en"),  # a word the store's name has before it
    ("How much is a kids toothbrush?", "handoff"),
    ("双十一空气炸锅多少钱", "handoff"),  # a sale's price, which the store does not hold: was today's price (0.87)
    ("空气炸锅券后价多少", "handoff"),
    ("How much will the kettle be on Black Friday?", "handoff"),
    ("双十一空气炸锅有货吗", "answer product:LM-1003:stock:zh"),  # stock is stock
    ("How much is the rice bowl?", "handoff"),  # "rice" goes on with "bowl", which no question of the store has
    ("Is the hair straightener in stock?", "handoff"),
    ("How much is the Bluetooth speaker today?", "answer product:LM-1015:price:en"),
    ("How much is the air fryer basket?", "handoff"),  # an accessory: was the air fryer's price at 0.94
    ("电动牙刷刷头多少钱", "handoff"),
    ("榨汁杯杯盖有卖吗", "handoff"),
    ("How much is the juicer cup nowadays?", "answer product:LM-1005:price:en"),
    ("How much is the charger for the earbuds?", "handoff"),  # was the earbuds' price at 0.86
    ("How much is a brush that fits my robot vacuum?", "handoff"),  # was the robot's price at 0.76
    ("扫地机器人的滤网有货吗", "handoff"),  # was the robot vacuum's stock at 0.94
    ("What's the warranty period of the kettle?", "answer product:LM-1002:warranty:en"),
    ("How much is the Lumi air purifier?", "handoff"),  # not a choice between the air fryer and the Earbuds Air
    ("鹿米智能门锁多少钱", "handoff"),  # nor between the products named 智能…
]


@pytest.fixture(scope="module")
def store_settings(tmp_path_factory) -> Settings:
    root = tmp_path_factory.mktemp("store11")
    shutil.copytree(SAMPLE, root / "store")
    settings = Settings.load(
        env={
            "KBOPS_HOME": str(root / "home"),
            "KBOPS_DATABASE_URL": f"sqlite:///{root / 'kb.sqlite'}",
            "KBOPS_SOURCES": str(root / "store" / "sources.toml"),
            "KBOPS_EMBED_CACHE": str(root / "embeddings.sqlite"),
            "KBOPS_MODELS_DIR": MODELS_DIR,
        },
        config_file=None,
    )
    init_db(settings)
    approve_all(settings)
    publish(settings)
    return settings


@pytest.fixture(scope="module")
def retriever(store_settings) -> Retriever:
    return Retriever(store_settings)


def test_the_table_has_enough_realistic_questions_in_both_languages():
    assert len(TABLE) >= 30
    assert sum(1 for q, _ in TABLE if q.isascii()) >= 12 and sum(1 for q, _ in TABLE if not q.isascii()) >= 12


@pytest.mark.parametrize(("question", "expected"), TABLE, ids=[q for q, _ in TABLE])
def test_every_sample_store_question_gets_the_expected_outcome(retriever, question, expected):
    answer = retriever.search(question, top_k=5)
    outcome, *args = expected.split()
    shown = f"{answer.reason} {answer.confidence} {[(h.entry_key, h.score) for h in answer.hits[:3]]}"
    if outcome == "answer":
        assert not answer.handoff and answer.top.entry_key.startswith(args[0]), shown
        assert answer.confidence is not None and 0 < answer.confidence <= 1
    elif outcome == "not":
        assert answer.handoff or not answer.top.entry_key.startswith(args[0]), shown
    elif outcome == "clarify":
        assert answer.handoff and answer.reason == "clarify", shown
        assert sorted(o.entry_key.split(":")[1] for o in answer.options) == args
        assert all(o.label and o.label != "?" for o in answer.options)
    else:
        assert answer.handoff and answer.reason in ("no_match", "wrong_kind", "ambiguous"), shown


#: Each fact of each product asked the way customers wrap a question, in both languages: the rules that keep
#: another product's question from being answered (brands, names the store never uses, words where the name goes
#: on) must never hand off the store's own products, named as the catalogue names them.
CHATTY = {
    "en": {"price": "Hi, how much is the {short}?", "stock": "is the {lower} in stock right now", "warranty": "What's the warranty on the {short}, please?",
           "shipping": "How will the {name} be delivered?"},
    "zh": {"price": "请问{short}多少钱", "stock": "{name}现在有货吗", "warranty": "{short}保修多久呀", "shipping": "你好，{short}怎么配送"},
}


def test_every_fact_of_every_product_is_answered_in_chatty_words(retriever):
    with (SAMPLE / "products.csv").open(encoding="utf-8") as fh:
        products = list(csv.DictReader(fh))
    missed = []
    for product in products:
        for lang, questions in CHATTY.items():
            name = product[f"name_{lang}"]
            short = name.removeprefix("Lumi ").removeprefix("鹿米")
            for kind, template in questions.items():
                question = template.format(name=name, short=short, lower=short.lower())
                answer = retriever.search(question, top_k=3)
                if answer.handoff or answer.top.entry_key != f"product:{product['sku']}:{kind}:{lang}":
                    missed.append((question, answer.reason, answer.top.entry_key if answer.top else None))
    assert len(products) * 8 == 160 and missed == []


def test_a_deleted_price_row_never_answers_with_the_stock_entry_or_another_price(store_settings):
    """The issue's report: after LM-1007's price row was deleted, its price question was answered with its
    stock entry (and a deleted product's with another product's price). Now it hands off."""
    prices = store_settings.sources_file.parent / "prices.csv"
    prices.write_text("".join(line for line in prices.read_text(encoding="utf-8").splitlines(keepends=True) if not line.startswith("LM-1007,")), encoding="utf-8")
    set_price(store_settings.sources_file.parent, "LM-1001", "259.00")
    approve_all(store_settings)
    publish(store_settings)
    retriever = Retriever(store_settings)
    for question in ("How much is the Lumi Robot Vacuum S1?", "鹿米智能扫地机器人 S1多少钱？", "LM-1007多少钱"):
        answer = retriever.search(question, top_k=5)
        assert answer.handoff, (question, answer.top)
        assert not any(h.entry_key.startswith("product:LM-1007:stock") for h in answer.hits)
        assert not any(h.kind == "price" and not h.entry_key.startswith("product:LM-1007") for h in answer.hits)
    # The stock question is still answered, and the changed price is the one quoted.
    assert retriever.search("Is the Lumi Robot Vacuum S1 in stock?").top.entry_key == "product:LM-1007:stock:en"
    assert "259.00" in retriever.search("LM-1001多少钱").top.answer
