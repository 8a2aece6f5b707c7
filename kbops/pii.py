"""Scrub private data from chat and query text before it is stored or logged.

Phone numbers, e-mail addresses, ID and bank card numbers, order numbers and
street addresses, in Chinese and English formats, are replaced by typed
placeholders such as ``[PHONE]``. Placeholders the JDDC organisers already put
in their data (``[订单x]``, ``[数字x]``, ``[地址x]``…) are recognised as
placeholders, not content. Scrubbing runs before anything is written to the KB
database, so no private value is ever stored, logged or shown.
"""

from __future__ import annotations

import re

# Order matters: longer, more specific patterns first (an ID card number
# would otherwise be read as a phone number plus digits).
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("EMAIL", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")),
    ("ID", re.compile(r"(?<!\d)[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?!\d)")),
    (
        "ORDER",
        re.compile(
            r"(?:(?:订单|单号|订单号|订单编号)\s*[:：#]?\s*|order\s*(?:number|no\.?|id)?\s*[:#]?\s*)"
            r"[A-Za-z]{0,4}[-_]?\d[\dA-Za-z-]{5,}",
            re.IGNORECASE,
        ),
    ),
    ("CARD", re.compile(r"(?<!\d)(?:\d[ -]?){15,18}\d(?!\d)")),
    ("PHONE", re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)")),
    ("PHONE", re.compile(r"(?<![\d\w])(?:\+\d{1,3}[ -]?)?(?:\(\d{2,4}\)[ -]?|\d{3,4}[ -])\d{3,4}[ -]?\d{4}(?!\d)")),
    ("ORDER", re.compile(r"(?<!\d)20\d{14,}(?!\d)")),
    (
        "ADDRESS",
        re.compile(
            r"[\u4e00-\u9fff]{2,}(?:省|市|自治区)[\u4e00-\u9fff]{0,12}(?:市|区|县|镇)"
            r"[\u4e00-\u9fff\dA-Za-z]{0,20}?(?:路|街|道|巷|弄|村)[\d一二三四五六七八九十]+号"
            r"(?:院|[\d一二三四五六七八九十]+(?:栋|幢|号楼|号院|单元|室|层|号|楼)?)*"
        ),
    ),
    (
        "ADDRESS",
        re.compile(
            r"\b\d{1,5}[A-Za-z]?\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St\.?|Road|Rd\.?|Avenue|Ave\.?|Lane|Ln\.?|"
            r"Boulevard|Blvd\.?|Drive|Dr\.?|Way|Court|Ct\.?)\b(?:,?\s*(?:Apt|Suite|Unit|Room|Rm|Flat)\.?\s*#?\w+)?"
        ),
    ),
]

#: Placeholders: ours (typed, upper case) and the JDDC organisers' ([订单x] …).
PLACEHOLDER = re.compile(
    r"\[(?:PHONE|EMAIL|ID|CARD|ORDER|ADDRESS|NAME)\]"
    r"|\[(?:订单|数字|地址|姓名|链接|金额|日期|时间|站点|电话|邮箱|身份证|组织机构)x\]"
    r"|\{\{[^{}]{1,60}\}\}"
)


def scrub(text: str) -> str:
    """Replace private data in ``text`` with typed placeholders."""
    for label, pattern in _PATTERNS:
        text = pattern.sub(f"[{label}]", text)
    return text


def find_private(text: str) -> list[str]:
    """The kinds of private data present in ``text`` (for validation reasons)."""
    return sorted({label for label, pattern in _PATTERNS if pattern.search(text)})


def has_placeholder(text: str) -> bool:
    return bool(PLACEHOLDER.search(text))
