"""Fact consistency: numbers an answer states must match the current version of that fact.

A candidate's answer may quote facts the store keeps elsewhere: a product's
price, stock or warranty (records), or a store-wide rule such as the
no-reason return window ("7天无理由退货"), the free-shipping threshold, the
shipping fee or the price-protection window (policy documents). When the
answer states such a fact with a value that differs from the *current*
version, publishing it would tell customers something false, so the gate
blocks the candidate and names both values and the record they come from.

Which facts apply:

* product facts for the SKUs the candidate is linked to: the product/price
  records it depends on (``depends_on``) and the SKUs in its evidence
  (``sku`` for record candidates, ``skus`` for chat-mined ones);
* store-wide policy facts, read from every current policy document (a fact
  two documents state differently accepts either value: that contradiction is
  the documents', not the answer's).

Mentions are found with small per-language patterns; a money amount counts
as a *price* only outside fee/threshold/discount context ("满99元包邮",
"运费10元", "原价399元" are not the product's price). Money amounts are
canonicalised with :func:`kbops.sources.sync.amounts`, the same reading the
sync uses for stale price mentions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kbops.schema import SourceRecord
from kbops.text import amounts

_CN_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_EN_NUMBERS = {"one": 1, "two": 2, "three": 3, "five": 5, "seven": 7, "ten": 10, "fourteen": 14, "fifteen": 15, "thirty": 30}
_NUM = r"(\d+(?:\.\d+)?|[零一二两三四五六七八九十百]+|one|two|three|five|seven|ten|fourteen|fifteen|thirty)"


def number(raw: str) -> str:
    """'7' / '七' / '十五' / 'seven' / '99.0' → canonical '7' / '15' / '99'."""
    raw = raw.strip().lower()
    if raw in _EN_NUMBERS:
        return str(_EN_NUMBERS[raw])
    if raw and all(ch in _CN_DIGITS or ch in "十百" for ch in raw):
        total, current = 0, 0
        for ch in raw:
            if ch == "百":
                total += (current or 1) * 100
                current = 0
            elif ch == "十":
                total += (current or 1) * 10
                current = 0
            else:
                current = _CN_DIGITS[ch]
        return str(total + current)
    try:
        value = Decimal(raw.replace(",", ""))
    except InvalidOperation:
        return raw
    return format(value.normalize(), "f") if value == value.to_integral() else f"{value:.2f}"


@dataclass(frozen=True)
class PolicyFact:
    name: str
    label: str
    unit: str
    patterns: tuple[re.Pattern[str], ...]


def _p(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


#: Store-wide facts stated in policy documents (and possibly quoted in answers).
POLICY_FACTS: tuple[PolicyFact, ...] = (
    PolicyFact(
        "return_window",
        "no-reason return window",
        "days",
        _p(
            _NUM + r"\s*天(?:内)?(?:可以|可)?无理由退(?:换)?货",
            r"无理由退(?:换)?货(?:期限|时间|期)?(?:为|是)\s*" + _NUM + r"\s*天",
            _NUM + r"[- ]days? (?:no[- ]reason |hassle[- ]free |free )?returns?",
            r"no[- ]reason returns? (?:within|for|up to) " + _NUM + r" days",
        ),
    ),
    PolicyFact(
        "quality_return_window",
        "quality-problem return window",
        "days",
        _p(
            _NUM + r"\s*天内(?:出现|发现|有)?质量问题",
            r"质量问题[^。；;]{0,6}?(?:签收后|收货后)?\s*" + _NUM + r"\s*天内",
            r"quality problem (?:appears |occurs |shows up )?within " + _NUM + r" days",
            r"quality[- ]problem (?:return or exchange |returns? )?within " + _NUM + r" days",
        ),
    ),
    PolicyFact(
        "free_shipping_threshold",
        "free-shipping threshold",
        "CNY",
        _p(
            r"满\s*" + _NUM + r"\s*元(?:即可|就|可)?(?:包邮|免运费)",
            r"(?:orders?|paid amount) (?:with a paid amount )?of " + _NUM + r"\s*(?:CNY|yuan|RMB)? or more (?:ship|get|qualify)",
            r"free (?:standard )?shipping (?:on|for) orders? (?:over|above|of|from) (?:¥|CNY\s?)?" + _NUM,
        ),
    ),
    PolicyFact(
        "shipping_fee",
        "shipping fee",
        "CNY",
        _p(
            r"收取\s*" + _NUM + r"\s*元运费",
            r"运费(?:为|是)?\s*" + _NUM + r"\s*元",
            r"(?:¥|CNY\s?)?" + _NUM + r"\s*(?:CNY|yuan|RMB)? (?:shipping|delivery) fee",
            r"(?:shipping|delivery) fee (?:of|is) (?:¥|CNY\s?)?" + _NUM,
        ),
    ),
    PolicyFact(
        "price_protection_window",
        "price-protection window",
        "days",
        _p(
            r"价保有效期(?:为|是)?(?:签收后)?\s*" + _NUM + r"\s*天",
            _NUM + r"\s*天(?:内)?价(?:格)?保(?:护)?",
            r"price protection is valid for " + _NUM + r" days",
            r"price protection (?:lasts|applies for|within) " + _NUM + r" days",
        ),
    ),
    PolicyFact(
        "invoice_window",
        "invoice request window",
        "days",
        _p(
            _NUM + r"\s*天内(?:都)?(?:可以|可)?(?:在订单详情页)?(?:申请|开具)(?:开具)?发票",
            r"超过\s*" + _NUM + r"\s*天(?:将)?(?:无法|不能)(?:补开|开具|申请)",
            r"invoice (?:on the order details page )?within " + _NUM + r" days",
        ),
    ),
    PolicyFact(
        "points_value",
        "points needed for 1 CNY",
        "points",
        _p(
            _NUM + r"\s*积分(?:可)?(?:抵扣|抵|兑换|相当于)\s*1\s*元",
            _NUM + r" points? (?:can be used as|=|equals?|are worth|is worth|redeem for) 1 (?:CNY|yuan|RMB)",
        ),
    ),
)

_MONEY = re.compile(
    r"(?:[¥￥]\s*|\b(?:RMB|CNY)\s?)(\d[\d,]*(?:\.\d{1,2})?)|(\d[\d,]*(?:\.\d{1,2})?)\s*(?:元|块钱|块|\s?CNY\b|\s?RMB\b|\s?yuan\b)",
    re.IGNORECASE,
)
# Words in the same clause before an amount that make it something other than the product's price.
_NOT_PRICE = re.compile(
    r"(?:运费|邮费|快递费|手续费|满|减|实付|每|差价|退|返|积分|抵|优惠|券|立减|原价|划线价|定金|累计|消费|补贴|押金|分期|每月|"
    r"fee|shipping|delivery|over|above|at least|off|refund|points?|coupon|deposit|was|originally|spend|spending|save|"
    r"or more|under|discount|per month|instal)",
    re.IGNORECASE,
)
_TAG = re.compile(r"<[^<>]{0,200}>")
_CLAUSE_BREAK = re.compile(r"[。；;！!？?\n]|(?<!\d)[.,，、](?!\d)")

_STOCK_COUNT = _p(
    r"(?:仅剩|只剩|还剩|剩余|库存(?:还有|只有|仅有|为|是)?)\s*(\d+)\s*(?:件|台|个|只|套|份)",
    r"only (\d+) (?:left|in stock|remaining)",
    r"(\d+) (?:units?|pieces?|items?) (?:left|in stock|remaining)",
)
_OUT_OF_STOCK = re.compile(r"缺货|无货|没货|售罄|卖完了|断货|out of stock|sold out", re.IGNORECASE)
_IN_STOCK = re.compile(r"(?<!到)(?:有现货|现货|库存充足|有货(?!吗|么|通知))|\b(?<!back )in stock\b(?! soon)", re.IGNORECASE)
_WARRANTY = _p(
    r"(\d+)\s*个月(?:的)?(?:质保|保修)",
    r"(?:质保|保修)(?:期)?(?:为|是|有)?\s*(\d+)\s*个月",
    r"(\d+)[- ]months? warranty",
    r"warranty (?:of|for|is|lasts) (\d+) months",
)
_WARRANTY_YEARS = _p(
    r"([一两二三四五]|\d+)\s*年(?:的)?(?:质保|保修)",
    r"(?:质保|保修)(?:期)?(?:为|是|有)?\s*([一两二三四五]|\d+)\s*年",
    r"(one|two|three|\d+)[- ]years? warranty",
    r"warranty (?:of|for|is|lasts) (one|two|three|\d+) years?",
)


def policy_mentions(text: str) -> dict[str, set[str]]:
    """The store-wide facts a text states: fact name → the values it gives."""
    found: dict[str, set[str]] = {}
    for fact in POLICY_FACTS:
        for pattern in fact.patterns:
            for m in pattern.finditer(text):
                found.setdefault(fact.name, set()).add(number(m.group(1)))
    return found


def price_mentions(text: str) -> set[str]:
    """Money amounts stated as a price (not a fee, threshold, discount or old price)."""
    out: set[str] = set()
    for m in _MONEY.finditer(text):
        raw = (m.group(1) or m.group(2)).replace(",", "")
        head = text[: m.start()]
        breaks = list(_CLAUSE_BREAK.finditer(head))
        clause = head[breaks[-1].end() :] if breaks else head
        tail = text[m.end() : m.end() + 12]
        if _NOT_PRICE.search(clause[-24:]) or re.match(r"\s*(?:包邮|免运费|运费|off|or more|shipping)", tail, re.IGNORECASE):
            continue
        out |= amounts(raw)
    return out


def stock_mentions(text: str) -> tuple[set[int], bool, bool]:
    """(stated counts, says out of stock, says in stock)."""
    counts = {int(m.group(1)) for p in _STOCK_COUNT for m in p.finditer(text)}
    out_of_stock = bool(_OUT_OF_STOCK.search(text))
    return counts, out_of_stock, bool(_IN_STOCK.search(_OUT_OF_STOCK.sub("", text))) and not out_of_stock


def warranty_mentions(text: str) -> set[int]:
    months = {int(m.group(1)) for p in _WARRANTY for m in p.finditer(text)}
    months |= {int(number(m.group(1))) * 12 for p in _WARRANTY_YEARS for m in p.finditer(text)}
    return months


@dataclass
class FactBook:
    """The current facts a batch of answers is checked against."""

    #: sku → {"price": ("299.00", ref), "stock": (142, ref), "warranty_months": (24, ref)}
    products: dict[str, dict[str, tuple[Any, str]]] = field(default_factory=dict)
    #: sku → older prices ("299.00" → "prices/price/LM-1001@1"), to say "the old price"
    old_prices: dict[str, dict[str, str]] = field(default_factory=dict)
    #: fact name → {value: [document refs stating it]}
    policy: dict[str, dict[str, list[str]]] = field(default_factory=dict)


def linked_skus(row: dict[str, Any]) -> set[str]:
    """SKUs an answer is about: product/price records it depends on, and SKUs in its evidence."""
    skus: set[str] = set()
    for ref in row.get("depends_on") or []:
        try:
            head, _version = ref.rsplit("@", 1)
            _source, kind, key = head.split("/", 2)
        except ValueError:
            continue
        if kind in ("product", "price"):
            skus.add(key)
    evidence = row.get("evidence") or {}
    if isinstance(evidence.get("sku"), str):
        skus.add(evidence["sku"])
    skus |= {s for s in evidence.get("skus") or [] if isinstance(s, str)}
    return skus


def load_factbook(db: Session, skus: Iterable[str]) -> FactBook:
    """Current product/price facts for ``skus`` and the store-wide facts of current policy documents."""
    book = FactBook()
    wanted = sorted(set(skus))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = db.execute(
            select(SourceRecord.source, SourceRecord.kind, SourceRecord.key, SourceRecord.version, SourceRecord.payload, SourceRecord.is_current, SourceRecord.deleted).where(
                SourceRecord.kind.in_(("product", "price")), SourceRecord.key.in_(chunk)
            )
        ).all()
        for source, kind, key, version, payload, current, deleted in rows:
            ref = f"{source}/{kind}/{key}@{version}"
            facts = book.products.setdefault(key, {})
            if kind == "price":
                value = next(iter(amounts(str(payload.get("price", "")))), None) if payload.get("price") is not None else None
                if value is None:
                    continue
                if current and not deleted:
                    facts["price"] = (value, ref)
                else:
                    book.old_prices.setdefault(key, {})[value] = ref
            elif current and not deleted:
                if isinstance(payload.get("stock"), int):
                    facts["stock"] = (payload["stock"], ref)
                if isinstance(payload.get("warranty_months"), int):
                    facts["warranty_months"] = (payload["warranty_months"], ref)
    for source, key, version, payload in db.execute(
        select(SourceRecord.source, SourceRecord.key, SourceRecord.version, SourceRecord.payload).where(
            SourceRecord.kind == "policy", SourceRecord.is_current.is_(True), SourceRecord.deleted.is_(False)
        )
    ):
        ref = f"{source}/policy/{key}@{version}"
        for name, values in policy_mentions(str(payload.get("text", ""))).items():
            for value in values:
                book.policy.setdefault(name, {}).setdefault(value, []).append(ref)
    return book


def conflicts(answer: str, skus: set[str], book: FactBook) -> list[str]:
    """Every fact the answer states that contradicts the current version, as 'what: answer says X, REF says Y'."""
    if not answer:
        return []
    answer = _TAG.sub("", answer)  # "<b>15天</b>无理由退货" still states 15 days
    out: list[str] = []
    labels = {f.name: (f.label, f.unit) for f in POLICY_FACTS}
    for name, stated in policy_mentions(answer).items():
        current = book.policy.get(name)
        if not current:
            continue
        for value in sorted(stated - set(current)):
            label, unit = labels[name]
            known = "; ".join(f"{ref} says {v} {unit}" for v, refs in sorted(current.items()) for ref in refs[:1])
            out.append(f"{label}: answer says {value} {unit}, {known}")
    products = {s: book.products[s] for s in sorted(skus) if s in book.products}
    if not products:
        return out
    prices = {facts["price"][0]: facts["price"][1] for facts in products.values() if "price" in facts}
    if prices:
        for value in sorted(price_mentions(answer) - set(prices)):
            old = next((f" (the old price, {ref})" for s in products for v, ref in book.old_prices.get(s, {}).items() if v == value), "")
            now = "; ".join(f"{ref} says {v}" for v, ref in prices.items())
            out.append(f"price: answer says {value}{old}, {now}")
    stocks = {facts["stock"][0]: facts["stock"][1] for facts in products.values() if "stock" in facts}
    if stocks:
        counts, says_out, says_in = stock_mentions(answer)
        for count in sorted(counts - set(stocks)):
            out.append(f"stock: answer says {count} left, " + "; ".join(f"{ref} says {v}" for v, ref in stocks.items()))
        if says_out and all(v > 0 for v in stocks):
            out.append("stock: answer says out of stock, " + "; ".join(f"{ref} says {v} in stock" for v, ref in stocks.items()))
        if says_in and all(v <= 0 for v in stocks):
            out.append("stock: answer says in stock, " + "; ".join(f"{ref} says {v} in stock" for v, ref in stocks.items()))
    warranties = {facts["warranty_months"][0]: facts["warranty_months"][1] for facts in products.values() if "warranty_months" in facts}
    if warranties:
        for months in sorted(warranty_mentions(answer) - set(warranties)):
            out.append(f"warranty: answer says {months} months, " + "; ".join(f"{ref} says {v} months" for v, ref in warranties.items()))
    return out
