"""Structured facts → candidates, from per-language templates.

One product yields one entry per fact and language (price, stock, shipping,
warranty × zh, en). Each candidate depends on the exact record versions it
quotes, so a price change withdraws the old price entry and proposes a new
one. Entry keys are stable (``product:<sku>:<fact>:<lang>``), which keeps the
FAISS id of "how much is X" the same across price changes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from kbops.kb.candidates import Proposal
from kbops.schema import SourceRecord

_SHIP_ZH = {"standard": "标准快递", "express": "次日达快递", "bulky": "大件物流", "free": "包邮标准快递"}
_SHIP_EN = {"standard": "standard courier", "express": "next-day express", "bulky": "bulky-goods freight", "free": "free standard courier"}
LOW_STOCK = 10


def _money_zh(price: dict[str, Any]) -> str:
    return f"{price['price']}元" if price["currency"] == "CNY" else f"{price['price']} {price['currency']}"


def _money_en(price: dict[str, Any]) -> str:
    return f"{price['price']} {price['currency']}"


def _stock_zh(name: str, stock: int) -> str:
    if stock <= 0:
        return f"{name}目前暂时缺货，可在商品页点击“到货通知”，到货后第一时间提醒您。"
    if stock < LOW_STOCK:
        return f"{name}目前有货，但仅剩{stock}件，喜欢的话请尽快下单。"
    return f"{name}目前有货，下单后按配送时效发货。"


def _stock_en(name: str, stock: int) -> str:
    if stock <= 0:
        return f"The {name} is out of stock right now; tap “Notify me” on the product page and we will tell you when it is back."
    if stock < LOW_STOCK:
        return f"The {name} is in stock, but only {stock} left."
    return f"Yes, the {name} is in stock and ships within our usual delivery times."


# fact → lang → (question, alternates, answer) builders
Template = Callable[[str, dict[str, Any], dict[str, Any] | None], tuple[str, list[str], str] | None]

TEMPLATES: dict[str, dict[str, Template]] = {
    "price": {
        "zh": lambda n, p, pr: None if pr is None else (f"{n}多少钱？", [f"{n}的价格是多少？", f"{n}现在卖多少钱？"], f"{n}现在的售价是{_money_zh(pr)}。"),
        "en": lambda n, p, pr: None if pr is None else (f"How much is the {n}?", [f"What is the price of the {n}?", f"{n} price"], f"The {n} currently costs {_money_en(pr)}."),
    },
    "stock": {
        "zh": lambda n, p, pr: None if "stock" not in p else (f"{n}有货吗？", [f"{n}还有库存吗？"], _stock_zh(n, p["stock"])),
        "en": lambda n, p, pr: None if "stock" not in p else (f"Is the {n} in stock?", [f"Is the {n} available?"], _stock_en(n, p["stock"])),
    },
    "shipping": {
        "zh": lambda n, p, pr: None if p.get("shipping_class") not in _SHIP_ZH else (f"{n}用什么方式配送？", [f"{n}怎么发货？"], f"{n}通过{_SHIP_ZH[p['shipping_class']]}配送。"),
        "en": lambda n, p, pr: None if p.get("shipping_class") not in _SHIP_EN else (
            f"How is the {n} shipped?", [f"What delivery method does the {n} use?"], f"The {n} ships by {_SHIP_EN[p['shipping_class']]}."
        ),
    },
    "warranty": {
        "zh": lambda n, p, pr: None if "warranty_months" not in p else (f"{n}保修多久？", [f"{n}的质保期是多久？"], f"{n}提供{p['warranty_months']}个月质保。"),
        "en": lambda n, p, pr: None if "warranty_months" not in p else (
            f"How long is the warranty on the {n}?", [f"What warranty does the {n} have?"], f"The {n} comes with a {p['warranty_months']}-month warranty."
        ),
    },
}


#: The question of each fact that names the product by its SKU.
#: With the name too: a question of the SKU and a few common words only ("LM-1001多少钱？") would
#: be the best lexical match of every short question about any product ("灯多少钱").
SKU_QUESTIONS: dict[str, dict[str, str]] = {
    "price": {"zh": "{sku}（{name}）多少钱？", "en": "How much does {sku} ({name}) cost?"},
    "stock": {"zh": "{sku}（{name}）有货吗？", "en": "Is {sku} ({name}) in stock?"},
    "shipping": {"zh": "{sku}（{name}）怎么发货？", "en": "How is {sku} ({name}) shipped?"},
    "warranty": {"zh": "{sku}（{name}）保修多久？", "en": "What is the warranty on {sku} ({name})?"},
}


def product_proposals(product: SourceRecord, price: SourceRecord | None) -> list[Proposal]:
    """All fact candidates for one product (and its current price, if any)."""
    if product.deleted:
        return []
    payload = product.payload
    price_payload = price.payload if price is not None and not price.deleted else None
    out: list[Proposal] = []
    for fact, by_lang in TEMPLATES.items():
        for lang, template in by_lang.items():
            name = payload.get(f"name_{lang}") or payload.get("name")
            if not name:
                continue
            built = template(name, payload, price_payload)
            if built is None:
                continue
            question, alternates, answer = built
            alternates = [*alternates, SKU_QUESTIONS[fact][lang].format(sku=product.key, name=name)]
            depends = [product.ref]
            valid_from = valid_to = None
            if fact == "price" and price is not None:
                depends.append(price.ref)
                valid_from = _time(price_payload.get("valid_from")) if price_payload else None
                valid_to = _time(price_payload.get("valid_to")) if price_payload else None
            out.append(
                Proposal(
                    entry_key=f"product:{product.key}:{fact}:{lang}",
                    origin="record",
                    kind=fact,
                    lang=lang,
                    question=question,
                    answer=answer,
                    alt_questions=alternates,
                    tags=[fact, "product", *([payload["category"]] if payload.get("category") else []), f"sku:{product.key}"],
                    evidence={"records": depends, "sku": product.key},
                    depends_on=depends,
                    valid_from=valid_from,
                    valid_to=valid_to,
                )
            )
    return out


def _time(raw: str | None) -> datetime | None:
    return datetime.fromisoformat(raw) if raw else None
