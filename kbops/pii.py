"""Scrub private data from chat and query text before it is stored or logged.

Phone numbers (mobile, landline, international; spaces, dashes or dots; the
last digits after "尾号"/"ending in"), e-mail addresses (also with a non-ASCII
local part or domain), ID, passport and bank card numbers (and their last
digits), order numbers, WeChat IDs, QQ numbers, one-time codes, passwords and
pick-up codes after their cue, IP addresses, Chinese licence plates, street
addresses (Chinese with or without a province/city prefix, English and
European) and personal names, in Chinese and English formats, are replaced by
typed placeholders such as ``[PHONE]``. Scrubbing runs before anything is written to
the KB database (chat turns, exchanges, candidates, the query log, golden
questions, audit snapshots), and the validation gate's ``private_data`` rule
asks :func:`find_private`, the same detector, so no private value is stored,
logged, exported or served.

How it finds them:

* **Normalise first.** Detection reads an NFKC view of the text (full-width
  ``１３８…`` and ``ｘｘ＠ｑｑ．ｃｏｍ`` read as ASCII; zero-width characters
  dropped; Unicode dashes read as ``-``) and replaces the matching spans *in the
  original text*, so what is kept stays exactly as written.
* **Spans, merged, then a follow-on pass.** Every pattern's matches are
  collected, overlapping ones merged, and an address is then extended over a
  remainder that follows it (``[ADDRESS]SOHO现代城5号楼1203室``: the building
  and room after the street, also after an earlier partial scrub).
* **Names by context.** A bare name cannot be told from an ordinary word, so
  names are recognised by their cue ("我叫…", "我是…", "收货人：…", "王先生",
  "my name is …", "I'm …", "Mr. …"); only the name is replaced, the cue stays.
  :func:`scrub_session` learns the names a session gives and scrubs them in
  every turn of that session, both roles ("王芳您好" after "我叫王芳").
* **Linear.** Every run in every pattern is bounded, and the nested address
  parts are atomic groups, so a 1 MB input costs a few passes over it, never
  backtracking (figures: bench/README.md, "Figures behind the code").

Placeholders the JDDC organisers already put in their data (``[订单x]``,
``[数字x]``, ``[地址x]``…) are recognised as placeholders, not content.

Why these patterns and not Microsoft Presidio's recognizers (``bench/bench_pii.py``, same
sets, same machine: tests/data/planted_private.jsonl, 118 values in 22 classes, zh + en; 233
benign texts: tests/data/benign_texts.jsonl plus the sample store's policies, products and
prices): these patterns find 118/118 with 0 false positives at ~0.45 M chars/s (since
then the set has 137 values in 26 classes, all found, 0 false positives on 252 benign texts,
0.65 M chars/s against 0.71 M before secrets, number tails, IPs and plates); the previous
patterns found 28/118 (1 false positive, 1.3 M chars/s); presidio-analyzer 2.2.366's pattern
recognizers (no NLP model: spaCy models cannot be downloaded here) find 44/118 with 3 false
positives (a 400 hotline, a price) at ~0.05 M chars/s. Presidio has no WeChat, QQ, Chinese ID,
Chinese or European address or name-by-cue recognizer, reads no full-width forms, pulls in
spaCy (~390 MB installed) and its e-mail recognizer tries to download the public-suffix list
on first use; it is not a dependency. Our recall is in-sample (the patterns were written for
these classes); the benign set, the sample store and tests/test_pii.py's older cases guard the
other side, and on the JDDC 0.1 % sample (12,136 turns) the new patterns change one turn more
than the old ones did (an address, "一路十号").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_NUM = "[0-9一二三四五六七八九十百千零〇两]"
_NUMD = "[-0-9一二三四五六七八九十百千零〇两]"
_SEP = "[-. ]"

# Chinese: admin units, roads, and what follows a street number (building, unit, floor, room).
_ADMIN = rf"(?>[{_CJK}]{{1,8}}?(?:特别行政区|自治区|自治州|自治县|开发区|高新区|新区|街道|地区|省|市|区|县|旗|镇|乡|盟))"
_ROAD = rf"[{_CJK}A-Za-z0-9]{{1,10}}?(?:大街|大道|胡同|路|街|巷|弄)"
_UNIT = "(?:号楼|号院|号|栋|幢|座|单元|楼|层|室|户|房|期)"
_TAIL = rf"(?>(?:[-#]?[A-Za-z]?{_NUMD}{{1,8}}[A-Za-z]?{_UNIT}?|[A-Za-z](?:座|栋|幢|区)|附{_NUM}{{1,4}}号)){{0,6}}"
_ESTATE = "(?:小区|花园|家园|公寓|大厦|广场|新村|中心|大楼|苑|园|城|府|湾|庭|阁|塔)"

# European street words. Lower-case forms only where they cannot be an English word.
_EU_BEFORE_NAME = (
    "rue|allée|chemin|impasse|quai|boulevard|avenue|calle|rua|carrer|avenida|"
    "Rue|Allée|Chemin|Impasse|Quai|Boulevard|Avenue|Place|Cours|Via|Viale|Piazza|Corso|Calle|Rua|Carrer|Avenida|Largo|Strada"
)
_EU_NAME_FIRST = "Via|Viale|Piazza|Corso|Calle|Avenida|Avda\\.|Paseo|Rua|Carrer|Rue|Strada|Largo|Travessa"
_EU_COMPOUND = "straße|strasse|str\\.|weg|gasse|platz|allee|damm|chaussee|straat|laan|gracht|plein|steeg|kade|vej|gade|gatan|vägen|veien|gata"
_NOT_A_COUNT = r"(?!\s*(?:days?|hours?|weeks?|months?|years?|working|business|items?|pcs|pieces|%|元|yuan|CNY|RMB|USD|EUR|GBP))"
_EN_CAP = "[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]"

# A secret's value: 4-32 printable characters that end in a letter, digit or symbol (not a sentence's full stop).
_SECRET_VALUE = r"[A-Za-z0-9!@#$%^&*_+=~.-]{3,31}[A-Za-z0-9!@#$%^&*_+=~](?![A-Za-z0-9])"
_TAIL_CUE_ZH = r"(?:尾号|后四位|后4位|末四位|末4位|最后四位)(?:是|为|:|：)?\s*"
# The English cues of a number's last digits: "(phone) ending in", "last four digits (of my phone) are".
_PHONE_WORD = r"(?:phone|mobile|cell)(?:\s+number)?"
_ENDING = r"(?:ending|ends)\s+(?:in|with)"
_LAST_FOUR = r"last\s+(?:four|4)\s+digits"
_ARE = r"(?:\s+(?:are|is)|\s*:)?"
_FOUR_DIGITS = r"\s*(?P<v>\d{4})(?!\d)"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}(?![0-9]|\.[0-9])"
_PLATE_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"

# Patterns whose leading run is costly to try at every position (each runs only when the text has what it needs, _NEEDS).
_EMAIL = re.compile(r"[\w.%+-]{1,64}@(?:[\w-]{1,63}\.){1,8}(?:[A-Za-z]{2,63}|[^\W\d_]{2,63})")
_EMAIL_SPELLED = re.compile(r"[\w.+-]{1,64} ?[(\[]at[)\]] ?[\w-]{1,63}(?: ?(?:\.|[(\[]dot[)\]]) ?[\w-]{1,63}){1,4}", re.IGNORECASE)
# Chinese street addresses: [admin units] road + number [+ building, unit, room].
_ZH_STREET = re.compile(rf"{_ADMIN}{{0,4}}{_ROAD}{_NUM}{{1,5}}(?:号(?!线)|弄|巷)(?:院)?{_TAIL}")
# A building and room on their own, or after an estate name: 金地花园11号楼2单元301, 5号楼1203室, 3栋1201.
_ZH_BUILDING = re.compile(rf"(?<![0-9])(?:[{_CJK}A-Za-z]{{1,10}}?{_ESTATE}{_NUM}{{0,3}}(?:期|区)?)?{_NUM}{{1,4}}(?:号楼|栋|幢)(?:{_NUM}{{1,2}}单元)?-?[0-9]{{2,5}}(?:室|号|房)?")

# Order matters only for the label of overlapping matches: the earlier, longer one names the span.
# Every run is bounded (an e-mail local part is at most 64 characters, a road name at most 10):
# an unbounded run backtracks quadratically on a long run of the same class.
PRIVATE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("EMAIL", _EMAIL),
    ("EMAIL", _EMAIL_SPELLED),
    ("ID", re.compile(r"(?<!\d)[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?!\d)")),
    ("ID", re.compile(r"(?:身份证|证件)号?码?\s*(?:是|为|:)?\s*(?P<v>\d{15}(?:\d{2}[\dXx])?)(?![\dXx])")),
    (
        "ORDER",
        re.compile(
            r"(?:(?:订单|单号|订单号|订单编号)\s*[:#]?\s*|order\s*(?:number|no\.?|id)?\s*[:#]?\s*)"
            r"[A-Za-z]{0,4}[-_]?\d[\dA-Za-z-]{5,}",
            re.IGNORECASE,
        ),
    ),
    ("CARD", re.compile(r"(?<!\d)(?:\d[ -]?){15,18}\d(?!\d)")),
    ("PHONE", re.compile(rf"(?<!\d)(?:(?:\+|00)?86{_SEP}?)?1[3-9]\d{_SEP}?\d{{4}}{_SEP}?\d{{4}}(?!\d)")),
    # Landlines with an area code, after anything but a digit or a Latin letter (座机010-…, (010)…, (415) 555-0188).
    ("PHONE", re.compile(rf"(?<![0-9A-Za-z])(?:\+\d{{1,3}}{_SEP}?)?(?:\( ?\d{{2,5}} ?\)|0\d{{2,4}}){_SEP}?\d{{3,4}}{_SEP}?\d{{3,4}}(?!\d)")),
    # North American numbers written 415.555.0123 / 415-555-0123.
    # (China's 400/800 numbers are companies' hotlines, never a person's: knowledge may quote them.)
    ("PHONE", re.compile(r"(?<![0-9A-Za-z-])(?![48]00[-.])\d{3}[-.]\d{3}[-.]\d{4}(?!\d)")),
    # International numbers with short area codes: +44 20 7946 0958, +44.20.7946.0011.
    ("PHONE", re.compile(rf"\+\d{{1,3}}{_SEP}?(?:\(?\d{{1,4}}\)?{_SEP}){{1,3}}\d{{3,4}}{_SEP}?\d{{2,4}}(?!\d)")),
    ("ORDER", re.compile(r"(?<!\d)20\d{14,}(?!\d)")),
    (
        "WECHAT",
        re.compile(
            r"(?i:(?<![A-Za-z])(?:微信|薇信|威信|v信|weixin|we-?chat|vx|wx)(?![A-Za-z]))\s*(?:号码?|账号|帐号|(?i:id))?\s*"
            r"(?:[:：是为]\s*(?P<v>[A-Za-z0-9][-_A-Za-z0-9]{5,29})|(?:is\s+)?(?P<w>(?=[A-Za-z]{0,29}[-_0-9])[A-Za-z0-9][-_A-Za-z0-9]{5,29}))"
        ),
    ),
    ("WECHAT", re.compile(r"(?<![A-Za-z0-9])wxid_[A-Za-z0-9]{4,30}")),
    ("QQ", re.compile(r"(?i:(?<![A-Za-z])(?:qq|扣扣|企鹅))(?:号码?|\s*(?i:number|no\.?)|\s*#)?\s*(?:是|为|:|：|(?i:is))?\s*(?P<v>[1-9]\d{4,11})(?!\d)")),
    (
        "PASSPORT",
        re.compile(
            r"(?i:护照|通行证|passport)(?:号码?|\s*(?i:number|no\.?)|\s*#)?\s*(?:是|为|:|：|(?i:is))?\s*"
            r"(?P<v>(?=[A-Z0-9]{0,8}[0-9])[A-Z0-9]{6,9})(?![A-Za-z0-9])"
        ),
    ),
    ("PASSPORT", re.compile(r"(?<![A-Za-z0-9])(?:[EG]\d{8}|E[A-HJ-NP-Z]\d{7})(?![A-Za-z0-9])")),
    # Secrets a customer types into a chat (a one-time code, a password, a pick-up code): after their cue only.
    # Without "是/为/:" the value must hold a digit, so "验证码5分钟内有效" and "密码需为8到20位" are left alone.
    (
        "SECRET",
        re.compile(
            r"(?:验证码|校验码|动态码|动态密码|短信码|取件码|取货码|提货码|收货码|提取码|密码|口令|PIN码)\s*"
            rf"(?:[是为:：]\s*(?P<v>{_SECRET_VALUE})|(?P<w>(?=[A-Za-z!@#$%^&*_+=~.-]{{0,31}}[0-9]){_SECRET_VALUE}))"
        ),
    ),
    # English: "code is 918273", "PIN: 4821". The value must hold a digit or a symbol: "my password is locked" and
    # "the code is sent" are no secrets, so a password of letters alone is not found (the price of no false positive).
    (
        "SECRET",
        re.compile(
            r"(?:(?i:\b(?:(?:verification|security|confirmation|login|log-in|one[- ]time|sms|pickup|pick-up|access|otp|2fa)\s+code"
            r"|pass(?:word|code)|otp))|\bPIN(?:\s+(?i:code|number))?)(?:\s*[:=]|\s+(?i:is|was))\s*"
            rf"(?P<v>(?=[A-Za-z]{{0,31}}[0-9!@#$%^&*_+=~]){_SECRET_VALUE})"
        ),
    ),
    # The last digits of a phone or card ("手机尾号5678", "card ending in 4417"): with a name, enough to find the customer.
    ("PHONE", re.compile(rf"(?:手机|电话|号码|手机号)(?:号码?)?的?{_TAIL_CUE_ZH}(?P<v>\d{{3,4}})(?!\d)")),
    ("CARD", re.compile(rf"{_TAIL_CUE_ZH}(?P<v>\d{{3,4}})(?!\d)")),
    # English: of a phone when the cue says so, else of a card ("the card ending in 4417", "last 4 digits: 0932").
    ("PHONE", re.compile(rf"(?i:\b{_PHONE_WORD}\s+{_ENDING}|\b{_LAST_FOUR}\s+of\s+(?:my|the)\s+{_PHONE_WORD}{_ARE}){_FOUR_DIGITS}")),
    ("CARD", re.compile(rf"(?i:\b{_ENDING}|\b{_LAST_FOUR}(?:\s+of\s+(?:my|the)\s+[a-z]+(?:\s+[a-z]+)?)?{_ARE}){_FOUR_DIGITS}")),
    # IPv4: after an "IP" cue, or with two-digit octets first and later (a version such as 2.1.0.3 or v3.10.2.15 is not one).
    ("IP", re.compile(rf"(?i:\bIP(?:v4)?\b)\s*(?:(?i:address)|地址)?\s*(?:是|为|:|：|(?i:is))?\s*(?P<v>{_IPV4})")),
    ("IP", re.compile(rf"(?<![0-9A-Za-z.])(?=\d{{2,3}}\.(?:\d{{1,3}}\.){{0,2}}\d{{2,3}}(?![0-9]))(?P<v>{_IPV4})")),
    # IPv6: the full eight groups, or a "::" between groups.
    (
        "IP",
        re.compile(
            r"(?<![0-9A-Za-z:])(?=[0-9A-Fa-f:]{0,38}[0-9])"
            r"(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,6}(?::[0-9A-Fa-f]{1,4}){1,6})(?![0-9A-Za-z:])"
        ),
    ),
    # Chinese licence plates: 京A·12345, 沪AD12345 (new energy), 粤B8F6X2.
    ("PLATE", re.compile(rf"(?<![A-Za-z0-9])(?P<v>[{_PLATE_PROVINCES}][A-HJ-NP-Z][·•. ]?(?=[A-HJ-NP-Z]{{0,5}}[0-9])[A-HJ-NP-Z0-9]{{5,6}})(?![A-Za-z0-9])")),
    ("ADDRESS", _ZH_STREET),
    ("ADDRESS", _ZH_BUILDING),
    # After an address cue, whatever carries a number and an address unit (寄到…3号楼, 地址：…602室).
    (
        "ADDRESS",
        re.compile(
            r"(?:地址|住址|寄到|送到|寄往|发到|送货到|住在)\s*(?:是|为|:|在)?\s*"
            r"(?P<v>(?=[^\s,。;!?、\n]{0,30}?[0-9][^\s,。;!?、\n]{0,3}(?:号|室|栋|幢|单元|弄))[^\s,。;!?、\n]{2,40})"
        ),
    ),
    # English streets: 42 Baker Street, 350 Fifth Avenue.
    (
        "ADDRESS",
        re.compile(
            r"\b\d{1,5}[A-Za-z]?\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St\.?|Road|Rd\.?|Avenue|Ave\.?|Lane|Ln\.?|"
            r"Boulevard|Blvd\.?|Drive|Dr\.?|Way|Court|Ct\.?|Parkway|Pkwy|Place|Pl\.|Terrace|Highway|Hwy|Square|"
            r"Plaza|Crescent|Close)\b(?:,?\s*(?:Apt|Suite|Unit|Room|Rm|Flat)\.?\s*#?\w+)?"
        ),
    ),
    # European streets: 12 rue de la Paix, Via Roma 10, Hauptstraße 5; and the flat/unit before them.
    ("ADDRESS", re.compile(rf"(?<![\w.,])\d{{1,5}}(?: ?(?:bis|ter|[A-Za-z]))?,? (?:{_EU_BEFORE_NAME}) [\w'’.-]{{1,30}}(?: [\w'’.-]{{1,30}}){{0,4}}")),
    (
        "ADDRESS",
        re.compile(
            rf"(?<![\w])(?:{_EU_NAME_FIRST}) (?:{_EN_CAP}[\w'’.-]{{0,30}} |(?:de|del|della|di|da|do|dos|das|la|las|los|le|les|du|des) ){{1,5}}"
            rf"\d{{1,5}}[A-Za-z]?(?![\w]){_NOT_A_COUNT}"
        ),
    ),
    ("ADDRESS", re.compile(rf"(?<![\w])[A-ZÄÖÜ][a-zäöüß]{{1,30}}(?:{_EU_COMPOUND}) ?\d{{1,5}}[a-zA-Z]?(?![\w]){_NOT_A_COUNT}")),
    ("ADDRESS", re.compile(r"(?<![A-Za-z])(?:(?:Flat|Apt\.?|Apartment|Suite|Unit|Rm\.?) ?#?\d{1,5}|Room #?\d{3,5})[A-Za-z]?(?![\w])")),
    # UK postcodes: SW1A 1AA.
    ("ADDRESS", re.compile(r"(?<![A-Za-z0-9])[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}(?![A-Za-z0-9])")),
]

#: Patterns whose leading run is costly to try at every position run only when the text has what they need.
_NEEDS: dict[str, re.Pattern[str]] = {
    _EMAIL.pattern: re.compile("@"),
    _EMAIL_SPELLED.pattern: re.compile(r"[(\[]at[)\]]", re.IGNORECASE),
    _ZH_STREET.pattern: re.compile(rf"(?:大街|大道|胡同|路|街|巷|弄){_NUM}"),
    _ZH_BUILDING.pattern: re.compile("号楼|栋|幢"),
}



#: What may follow an address and is part of it: building, unit, floor, room (Chinese), flat/suite (English).
_ADDRESS_TAIL = re.compile(
    rf"[ ,]{{0,2}}(?:[{_CJK}A-Za-z0-9]{{0,16}}?{_NUMD}{{1,8}}[A-Za-z]?(?:号楼|号院|栋|幢|座|单元|楼|层|室|号|户|房|期){_TAIL}"
    rf"|[{_CJK}A-Za-z]{{0,12}}?[A-Za-z]座"
    r"|(?:Apt|Apartment|Suite|Unit|Flat|Room|Rm|#)\.? ?#?[A-Za-z0-9]{1,6}(?![\w]))"
)
#: Address cues a span may start with (the regexes read from the leftmost CJK run); they stay readable.
_ADDRESS_LEAD = re.compile(r"住在|地址|住址|寄到|送到|寄往|发到|放在|改成|改为|是|在|到|:|址")

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_COMPOUND_SURNAMES = "欧阳|司马|上官|诸葛|东方|慕容|令狐|皇甫|尉迟|公孙|长孙|夏侯|端木|独孤|南宫|西门|宇文|司徒"
# A Chinese given name never takes a particle or a common verb; stopping there keeps "我是李宁的粉丝" → "李宁".
_NAME_CHAR = rf"(?![的了吗呢啊吧是在和与跟要想说也都就还不没很会能可以这那个们买问请])[{_CJK}]"
_ZH_NAME = rf"(?:(?:{_COMPOUND_SURNAMES}){_NAME_CHAR}{{1,2}}|[{_SURNAMES}]{_NAME_CHAR}{{1,2}})"
_EN_NAME = rf"{_EN_CAP}+(?:[ -]{_EN_CAP}+){{0,2}}"
#: Names: only the name itself is replaced; the cue that revealed it stays ("收货人：[NAME]").
_NAME_PATTERNS: list[re.Pattern[str]] = [
    re.compile(
        r"(?:我叫|我的名字是|名字是|名字叫|我是|本人|姓名|收货人|收件人|联系人|签收人|持卡人|开户名|户名)"
        rf"\s*(?:写的是|填的是|叫|是|:)?\s*(?P<v>{_ZH_NAME}|{_EN_NAME})"
    ),
    re.compile(rf"(?:(?<![{_CJK}])|(?<=[小老]))(?P<v>[{_SURNAMES}][{_CJK}]?)(?=先生|女士|小姐|老师|师傅)"),
    re.compile(
        r"(?:\b[Mm]y name is|\b[Nn]ame\s*:|\b[Tt]his is|\b[Ss]igned|\b[Rr]egards,|\b[Cc]ontact person\s*:?|\bI'?m|\bI am|\b[Cc]all me|\bDear|"
        rf"\b(?:Mr|Mrs|Ms|Miss|Dr)\.?)\s+(?P<v>{_EN_NAME})"
    ),
]
# Words that follow "this is" / "I'm" / "dear" in ordinary chat and are not names.
_NOT_NAMES = frozenset(
    "The This That It Not Urgent Great Good Fine Ok Okay Ridiculous Lumi Order My Your A An In On At From With For To "
    "Sorry Just Still Looking Interested Chinese English American British French German Going Trying Here Back Afraid "
    "Glad Very So Really New Also Calling Writing Asking Wondering Happy Sure Unable Having Getting Waiting Planning "
    "Thinking Hoping Using Buying Ordering Customer Customers Sir Madam Valued Friend Friends Team Support All Sirs "
    "Service Manager Please Thanks Thank Hi Hello Regarding About Done Ready Available Confused Disappointed".split()
)

#: Placeholders: ours (typed, upper case) and the JDDC organisers' ([订单x] …).
LABELS = ("PHONE", "EMAIL", "ID", "CARD", "ORDER", "ADDRESS", "NAME", "WECHAT", "QQ", "PASSPORT", "SECRET", "IP", "PLATE")
PLACEHOLDER = re.compile(
    rf"\[(?:{'|'.join(LABELS)})\]"
    r"|\[(?:订单|数字|地址|姓名|链接|金额|日期|时间|站点|电话|邮箱|身份证|身份证号|组织机构)x\]"
    r"|\{\{[^{}]{1,60}\}\}"
)
#: A placeholder with the label of the field it fills ("咨询订单号:[订单x]", "订单金额:[金额x]", "phone: [PHONE]").
_FIELD = re.compile(rf"\[?(?:[{_CJK}A-Za-z]{{1,8}}\s*[:：]\s*)?(?:{PLACEHOLDER.pattern})")


def drop_placeholders(text: str) -> str:
    """``text`` without its placeholders and the field labels before them: what is left is what was asked.

    A chat client pastes an order card into the customer's turn ("咨询订单号:[订单x] 订单金额:[金额x]
    下单时间:[日期x] 商品降价了"); the values are scrubbed, and the labels say nothing of the question."""
    return _FIELD.sub(" ", text) if "[" in text or "{{" in text else text


_CJK_THEN_ASCII = re.compile(rf"([{_CJK}]+)[A-Za-z0-9._%+-]+@")
#: Our typed placeholders alone: where one stands, a private value was scrubbed (kbops.kb.candidates scrubs every proposal).
SCRUBBED = re.compile(rf"\[({'|'.join(LABELS)})\]")
_ADDRESS_PLACEHOLDER = re.compile(r"\[ADDRESS\]|\[地址x\]")

# Characters NFKC leaves alone (ASCII, C1 controls, unified CJK ideographs): the view copies them as they are.
_MAY_CHANGE = re.compile(r"[^\x00-\x9f\u4e00-\u9fff]")
_FOLDS = {**dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63", "-"), "\u2018": "'", "\u2019": "'"}


@lru_cache(maxsize=4096)
def _fold(ch: str) -> str:
    """One character as the detector reads it: NFKC, dashes as '-', curly apostrophes as "'", invisible format characters dropped."""
    if ch in _FOLDS:
        return _FOLDS[ch]
    if unicodedata.category(ch) == "Cf":
        return ""
    return unicodedata.normalize("NFKC", ch)


def _view(text: str) -> tuple[str, list[int] | None]:
    """The normalised text the patterns read, and for each of its characters the index in ``text``.

    None as the map means position i of the view is position i of ``text`` (every
    folded character is one character: full-width forms, dashes), the usual case.
    """
    changes = [(m.start(), _fold(m.group())) for m in _MAY_CHANGE.finditer(text)]
    changes = [(i, folded) for i, folded in changes if folded != text[i]]
    if not changes:
        return text, None
    parts: list[str] = []
    last = 0
    for i, folded in changes:
        parts.append(text[last:i])
        parts.append(folded)
        last = i + 1
    parts.append(text[last:])
    if all(len(folded) == 1 for _, folded in changes):
        return "".join(parts), None
    index: list[int] = []
    last = 0
    for i, folded in changes:
        index.extend(range(last, i))
        index.extend([i] * len(folded))
        last = i + 1
    index.extend(range(last, len(text)))
    return "".join(parts), index


def _name_value(value: str) -> bool:
    first = value.split()[0] if value.split() else value
    return first not in _NOT_NAMES


def _raw_spans(view: str, names: re.Pattern[str] | None) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    for label, pattern in PRIVATE_PATTERNS:
        need = _NEEDS.get(pattern.pattern)
        if need is not None and not need.search(view):
            continue
        for m in pattern.finditer(view):
            group = next((g for g in ("v", "w") if g in pattern.groupindex and m.group(g) is not None), None)
            start, end = m.span(group) if group else m.span()
            if label == "EMAIL" and _CJK_THEN_ASCII.match(view, start, end):
                # "发到wang88@163.com": the words before an ASCII local part are not part of it.
                start = _CJK_THEN_ASCII.match(view, start, end).end(1)  # type: ignore[union-attr]
            if label == "ADDRESS" and group is None:
                # The leftmost CJK run may begin with the cue ("寄到海淀区…"); start after the last cue near the start.
                lead = [m.end() for m in _ADDRESS_LEAD.finditer(view, start, min(end, start + 12))]
                if lead and lead[-1] < end - 3:
                    start = lead[-1]
            if end > start:
                spans.append((start, end, label))
    for pattern in _NAME_PATTERNS:
        for m in pattern.finditer(view):
            if _name_value(m.group("v")):
                spans.append((*m.span("v"), "NAME"))
    if names is not None:
        spans.extend((*m.span(), "NAME") for m in names.finditer(view))
    return spans


def _merge(spans: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping spans (and touching ones of one kind) as one; the earlier, longer one names it."""
    out: list[tuple[int, int, str]] = []
    for start, end, label in sorted(spans, key=lambda s: (s[0], -s[1])):
        if out and (start < out[-1][1] or (start == out[-1][1] and label == out[-1][2])):
            out[-1] = (out[-1][0], max(out[-1][1], end), out[-1][2])
        elif end > start:
            out.append((start, end, label))
    return out


def _extend_address(view: str, end: int) -> int:
    """Follow-on: the rest of an address (building, room, flat) after the part a pattern matched."""
    while True:
        tail = _ADDRESS_TAIL.match(view, end)
        if not tail or tail.end() == end:
            return end
        end = tail.end()


def _spans(view: str, names: re.Pattern[str] | None = None) -> list[tuple[int, int, str]]:
    """Merged private spans of ``view``, each address extended over its remainder."""
    spans = [(s, _extend_address(view, e) if label == "ADDRESS" else e, label) for s, e, label in _merge(_raw_spans(view, names))]
    # A placeholder left by an earlier scrub still anchors the remainder that follows it.
    for m in _ADDRESS_PLACEHOLDER.finditer(view):
        end = _extend_address(view, m.end())
        if end > m.end():
            spans.append((m.start(), end, "ADDRESS"))
    return _merge(spans)


def _names_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern for names learned in a session (longest first; Latin names as whole words)."""
    alternatives = []
    for name in sorted({n for n in names if n}, key=lambda n: (-len(n), n)):
        escaped = re.escape(unicodedata.normalize("NFKC", name))
        alternatives.append(rf"(?<![A-Za-z]){escaped}(?![a-z])" if name[:1].isascii() else escaped)
    return re.compile("|".join(alternatives)) if alternatives else None


def scrub(text: str, names: Iterable[str] = ()) -> str:
    """Replace private data in ``text`` with typed placeholders.

    ``names``: names known to be private in this text's context (see
    :func:`scrub_session`); every occurrence is replaced too.
    """
    if not text:
        return text
    view, index = _view(text)
    spans = _spans(view, _names_pattern(names))
    if not spans:
        return text
    out: list[str] = []
    last = 0
    for start, end, label in spans:
        if index is not None:  # back to the original text's positions
            start, end = index[start], index[end - 1] + 1
        if start < last:
            start = last
        out.append(text[last:start])
        out.append(f"[{label}]")
        last = end
    out.append(text[last:])
    return "".join(out)


def learn_names(texts: Iterable[str]) -> set[str]:
    """Names the texts give by a cue ("我叫王芳", "I'm Harriet Quill"), with their given names.

    A given name is learned too (晓雨 of 林晓雨, Harriet of Harriet Quill), since an
    agent greets the customer by it; a one-character surname alone (张 of 张先生) is not.
    """
    names: set[str] = set()
    for text in texts:
        view, _ = _view(text or "")
        for pattern in _NAME_PATTERNS:
            for m in pattern.finditer(view):
                value = m.group("v")
                if not _name_value(value) or len(value) < 2:
                    continue
                names.add(value)
                if value[:1].isascii():
                    names.update(w for w in re.split(r"[ -]", value) if len(w) >= 3 and w not in _NOT_NAMES)
                else:
                    surname = next((s for s in _COMPOUND_SURNAMES.split("|") if value.startswith(s)), value[:1])
                    given = value[len(surname) :]
                    if len(given) >= 2:
                        names.add(given)
    return names


def scrub_session(texts: Sequence[str]) -> list[str]:
    """Scrub every turn of one conversation, and the names it gives in every turn of it (both roles)."""
    names = learn_names(texts)
    return [scrub(t, names) for t in texts]


def find_private(text: str) -> list[str]:
    """The kinds of private data present in ``text`` (for validation reasons); [] when none."""
    if not text:
        return []
    view, _ = _view(text)
    return sorted({label for _, _, label in _spans(view)})


def has_placeholder(text: str) -> bool:
    return bool(PLACEHOLDER.search(text))
