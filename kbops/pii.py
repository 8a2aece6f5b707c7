"""Scrub private data from chat and query text before it is stored or logged.

Phone numbers, e-mail addresses, ID and bank card numbers, order numbers,
street addresses and personal names, in Chinese and English formats, are
replaced by typed placeholders such as ``[PHONE]``. Names are recognised by
their context ("我叫…", "收货人：…", "王先生", "my name is …", "Mr. …"),
since a bare name cannot be told from an ordinary word. Placeholders the JDDC organisers already put
in their data (``[订单x]``, ``[数字x]``, ``[地址x]``…) are recognised as
placeholders, not content. Scrubbing runs before anything is written to the KB
database, so no private value is ever stored, logged or shown.
"""

from __future__ import annotations

import re

# Order matters: longer, more specific patterns first (an ID card number
# would otherwise be read as a phone number plus digits). Every leading run is
# bounded (an e-mail local part is at most 64 characters, a province name at
# most 10): an unbounded run backtracks quadratically on a long run of the
# same class (figures: bench/README.md, "Figures behind the code").
PRIVATE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("EMAIL", re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,}")),
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
    # international numbers with short area codes: +44 20 7946 0958
    ("PHONE", re.compile(r"\+\d{1,3}[ -]?(?:\(?\d{1,4}\)?[ -]){1,3}\d{3,4}[ -]?\d{2,4}(?!\d)")),
    ("ORDER", re.compile(r"(?<!\d)20\d{14,}(?!\d)")),
    (
        "ADDRESS",
        re.compile(
            r"[\u4e00-\u9fff]{2,10}(?:省|市|自治区)[\u4e00-\u9fff]{0,12}(?:市|区|县|镇)"
            r"[\u4e00-\u9fff\dA-Za-z]{0,20}?(?:路|街|道|巷|弄|村)[\d一二三四五六七八九十]+号"
            r"(?:院|[\d一二三四五六七八九十]+(?:栋|幢|号楼|号院|单元|室|层|号|楼)?)*"
        ),
    ),
    (
        "ADDRESS",
        re.compile(
            r"\b\d{1,5}[A-Za-z]?\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St\.?|Road|Rd\.?|Avenue|Ave\.?|Lane|Ln\.?|"
            r"Boulevard|Blvd\.?|Drive|Dr\.?|Way|Court|Ct\.?|Parkway|Pkwy|Place|Pl\.|Terrace|Highway|Hwy|Square|"
            r"Plaza|Crescent|Close)\b(?:,?\s*(?:Apt|Suite|Unit|Room|Rm|Flat)\.?\s*#?\w+)?"
        ),
    ),
]


_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_CJK = "\u4e00-\u9fff"
#: Names: only the name itself is replaced; the cue that revealed it stays ("收货人：[NAME]").
_NAME_PATTERNS: list[re.Pattern[str]] = [
    re.compile(
        rf"(?:我叫|我的名字是|名字是|名字叫|姓名\s*[:：是]?|收货人\s*[:：是]?|收件人\s*[:：是]?|联系人\s*[:：是]?|"
        rf"持卡人\s*[:：是]?|开户名\s*[:：是]?)\s*(?P<v>[{_SURNAMES}][{_CJK}]{{1,2}}|[A-Z][a-z]+(?: [A-Z][a-z]+){{0,2}})"
    ),
    re.compile(rf"(?:(?<![{_CJK}])|(?<=[小老]))(?P<v>[{_SURNAMES}][{_CJK}]?)(?=先生|女士|小姐|老师|师傅)"),
    re.compile(
        r"(?:\b[Mm]y name is|\b[Nn]ame\s*:|\b[Tt]his is|\b[Ss]igned|\b[Rr]egards,|\b[Cc]ontact person\s*:?|"
        r"\b(?:Mr|Mrs|Ms|Miss|Dr)\.?)\s+(?P<v>[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,2})"
    ),
]
# Words that follow "this is" / "my name is" in ordinary chat and are not names.
_NOT_NAMES = frozenset("The This That It Not Urgent Great Good Fine Ok Okay Ridiculous Lumi Order My Your".split())

#: Placeholders: ours (typed, upper case) and the JDDC organisers' ([订单x] …).
PLACEHOLDER = re.compile(
    r"\[(?:PHONE|EMAIL|ID|CARD|ORDER|ADDRESS|NAME)\]"
    r"|\[(?:订单|数字|地址|姓名|链接|金额|日期|时间|站点|电话|邮箱|身份证|身份证号|组织机构)x\]"
    r"|\{\{[^{}]{1,60}\}\}"
)


def _name_sub(match: re.Match[str]) -> str:
    value = match.group("v")
    first = value.split()[0] if value.split() else value
    if first in _NOT_NAMES:
        return match.group(0)
    start, end = match.span("v")
    whole = match.group(0)
    offset = match.start()
    return whole[: start - offset] + "[NAME]" + whole[end - offset :]


def scrub(text: str) -> str:
    """Replace private data in ``text`` with typed placeholders."""
    for label, pattern in PRIVATE_PATTERNS:
        text = pattern.sub(f"[{label}]", text)
    for pattern in _NAME_PATTERNS:
        text = pattern.sub(_name_sub, text)
    return text


def find_private(text: str) -> list[str]:
    """The kinds of private data present in ``text`` (for validation reasons)."""
    kinds = {label for label, pattern in PRIVATE_PATTERNS if pattern.search(text)}
    if any(_name_sub(m) != m.group(0) for p in _NAME_PATTERNS for m in p.finditer(text)):
        kinds.add("NAME")
    return sorted(kinds)


def has_placeholder(text: str) -> bool:
    return bool(PLACEHOLDER.search(text))
