"""Policy documents → candidates: each ``## heading`` is a question, its section the answer.

Convention (see examples/sample_store/README.md)::

    # 退换货政策
    ## 收到的商品不想要了，可以退货吗？
    也问：支持七天无理由退货吗｜买了不喜欢能退吗
    支持7天无理由退货……

The optional first line ``也问：…｜…`` / ``Also asked: … | …`` lists alternate
phrasings. Customers also ask generically ("What is your return policy?",
"退货政策是什么", "价保多少天", "我想开发票"), in words that are in the document's
*title*, not in any heading; so each document's topics, read from its title
(:func:`title_topics`), become rule-based alternate questions of the section
that answers them (:func:`generated_phrasings`), in the document's language.
They are part of the candidate like any alternate, so a reviewer sees and
judges them. Every candidate depends on the document's version, so an edited
policy withdraws its entries; sections whose text did not change come back
through the ``unchanged-text`` rule, changed ones go to a reviewer.
"""

from __future__ import annotations

import re

from kbops.kb.candidates import Proposal
from kbops.schema import SourceRecord
from kbops.text import detect_lang, fingerprint, normalize

_ALT = re.compile(r"^\s*(?:也问|又问|Also asked)\s*[:：]\s*(.+)$", re.IGNORECASE)
_ALT_SPLIT = re.compile(r"\s*[|｜]\s*")
_CJK_END = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]$")
_CJK_START = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def policy_sections(text: str) -> list[tuple[str, list[str], str]]:
    """(question, alternates, answer) for each level-2 section of a Markdown document."""
    sections: list[tuple[str, list[str], str]] = []
    heading: str | None = None
    body: list[str] = []

    def flush() -> None:
        if heading is None:
            return
        lines = [ln for ln in body if ln.strip()]
        alternates: list[str] = []
        if lines and (m := _ALT.match(lines[0])):
            alternates = [a for a in _ALT_SPLIT.split(m.group(1).strip()) if a]
            lines = lines[1:]
        sections.append((heading, alternates, _join_lines(lines)))

    for line in text.splitlines():
        if line.startswith("## "):
            flush()
            heading, body = line[3:].strip(), []
        elif line.startswith("# "):
            continue
        elif heading is not None:
            body.append(line)
    flush()
    return sections


def _join_lines(lines: list[str]) -> str:
    """Join a section's lines into one answer.

    Wrapped Chinese lines join without a space (Chinese has none between
    words); sub-headings (``### 注意``) become a lead-in (``注意：``).
    """
    answer = ""
    for raw in lines:
        line = raw.strip()
        if line.startswith("#"):
            line = line.lstrip("#").strip()
            line += "：" if _CJK_END.search(line) else ":"
        if not line.strip("：:"):
            continue
        if answer and not (_CJK_END.search(answer) and _CJK_START.match(line)):
            answer += " "
        answer += line
    return answer


# --- generic phrasings from the document's title ------------------------------------------

#: Whether policy candidates carry the generated phrasings (bench/bench_policy_questions.py turns it
#: off to measure what they add; nothing else should).
GENERATED_PHRASINGS = True

#: Words a title wraps its topic in ("退换货政策", "配送说明", "Shipping Information").
_ZH_TITLE_WRAP = re.compile(r"(?:政策|说明|规则|须知|条款|指南|规定|细则|介绍|常见问题|问题|服务)+$")
_EN_TITLE_WRAP = re.compile(r"^(?:our|the|your)\s+|\s+(?:policy|policies|information|info|rules|guide|terms(?: and conditions)?|faqs?)$", re.IGNORECASE)
_ZH_TOPIC_SPLIT = re.compile(r"\s*[与和及、/&]\s*")
_EN_TOPIC_SPLIT = re.compile(r"\s*(?:\band\b|&|/|,)\s*", re.IGNORECASE)
#: A period a section states ("7天", "3–5个工作日", "90 days", "3-5 working days").
_ZH_PERIOD = re.compile(r"\d+\s*(?:[–~\-至到]\s*\d+\s*)?个?(?:工作日|天|日)")
_EN_PERIOD = re.compile(r"\d+\s*(?:[–~\-]\s*\d+\s*)?(?:working |business )?days?\b", re.IGNORECASE)
_PUNCT = re.compile(r"[\s?？!！。.,，:：;；]+")

#: Shop topics customers name differently from the title, and the verb of "我想{verb}{topic}"
#: (None: nobody says "我想…" with it). Only topics a title or heading contains are used.
ZH_TOPICS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "退换货": (("退货", "换货"), None),
    "退货": ((), ""),
    "换货": ((), ""),
    "退款": ((), "申请"),
    "价格保护": (("价保", "保价"), "申请"),
    "价保": (("保价",), "申请"),
    "发票": (("开票",), "开"),
    "配送": (("发货", "快递", "物流"), None),
    "运费": (("包邮",), None),
    "会员": ((), "成为"),
    "积分": ((), "用"),
    "保修": ((), "申请"),
    "售后": ((), "申请"),
    "安装": ((), "预约"),
}
#: English topics: other names, and the "I want …" sentence (None: none).
EN_TOPICS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "returns": ((), "I want to return an item"),
    "exchanges": ((), "I want to exchange an item"),
    "refunds": ((), "I want a refund"),
    "price protection": ((), "I want to apply for price protection"),
    "invoices": ((), "I need an invoice"),
    "shipping": (("delivery",), None),
    "membership": ((), "I want to become a member"),
    "points": ((), "I want to use my points"),
    "warranty": ((), "I want to make a warranty claim"),
}


def title_topics(title: str, lang: str) -> list[str]:
    """The topics a policy title names: ``退换货政策`` → ``[退换货]``, ``会员与积分`` → ``[会员, 积分]``,
    ``Returns and Exchanges Policy`` → ``[returns, exchanges]`` (English lower-cased)."""
    if lang == "zh":
        core = _ZH_TITLE_WRAP.sub("", title.strip().lstrip("#").strip()) or title.strip()
        return [t for t in _ZH_TOPIC_SPLIT.split(core) if len(t) >= 2]
    core = _EN_TITLE_WRAP.sub("", title.strip().lstrip("#").strip().lower()).strip() or title.strip().lower()
    return [t.strip() for t in _EN_TOPIC_SPLIT.split(core) if len(t.strip()) >= 3]


def _singular(word: str) -> str:
    """``returns`` → ``return``, ``invoices`` → ``invoice`` (the last word; ``ss``/``us`` kept)."""
    return word[:-1] if word.endswith("s") and not word.endswith(("ss", "us")) else word


def _names(topic: str, lang: str) -> list[str]:
    """The topic and the other names customers use for it (``价格保护`` → ``价格保护, 价保, 保价``)."""
    table = ZH_TOPICS if lang == "zh" else EN_TOPICS
    return [topic, *table.get(topic, ((), None))[0]]


def _verb(name: str, lang: str) -> str | None:
    table = ZH_TOPICS if lang == "zh" else EN_TOPICS
    return table.get(name, ((), None))[1]


def _mentions(name: str, texts: list[str], lang: str) -> bool:
    """Whether the name occurs in the texts (English: its stem, ``membership`` in "member", lower case)."""
    if lang == "zh":
        return any(name in t for t in texts)
    stem = _singular(name.split()[0])[:6] if " " not in name else name
    return any(stem in t.lower() for t in texts)


def _general(name: str, lang: str) -> list[str]:
    """What customers ask about a topic as a whole."""
    verb = _verb(name, lang)
    if lang == "zh":
        return [f"{name}政策是什么", f"{name}怎么办理", name, *([f"我想{verb}{name}"] if verb is not None else [])]
    plural = name.endswith("s") and not name.endswith("ss")
    return [f"What is your {_singular(name)} policy?", f"How {'do' if plural else 'does'} {name} work?", name, *([verb] if verb is not None else [])]


def _period(name: str, lang: str) -> list[str]:
    """How-long questions, for the section that states the period."""
    if lang == "zh":
        return [f"{name}多少天", f"{name}期限是多久"]
    return [f"How many days for {_singular(name)}?", f"How long is the {_singular(name)} period?"]


def generated_phrasings(title: str, sections: list[tuple[str, list[str], str]], lang: str) -> list[list[str]]:
    """Generic questions for each section (same order as ``sections``), from the document's title.

    Each name of each title topic (:func:`title_topics`; other names from ``ZH_TOPICS``/``EN_TOPICS``,
    e.g. 价保 for 价格保护, 退货 and 换货 for 退换货) gets its general questions ("{topic}政策是什么",
    "{topic}怎么办理", "我想{verb}{topic}", the bare topic; "What is your {topic} policy?", "How do
    {topic} work?") on the first section whose question or alternates name it; a document's main topic
    (a title naming one) and names no question uses go to the first section, as documents lead with
    their main rule. Its how-long questions ("{topic}多少天", "How long is the {topic} period?") go to
    the first section that names it and whose answer states a period ("7天", "90 days"). A known topic
    that is not the title's but a section's own question names ("退款多久能到账？" in 退换货政策) gets
    the same on that section. The first section also carries the title itself. Nothing already asked
    (question, alternate, earlier phrasing) is repeated.
    """
    if not sections:
        return []
    period = _ZH_PERIOD if lang == "zh" else _EN_PERIOD
    out: list[list[str]] = [[] for _ in sections]
    seen = {_key(t) for q, alts, _ in sections for t in (q, *alts)}

    def add(index: int, phrasings: list[str]) -> None:
        for phrasing in phrasings:
            if _key(phrasing) not in seen:
                seen.add(_key(phrasing))
                out[index].append(phrasing)

    def place(name: str, home: int | None, group: list[str]) -> None:
        if home is None:
            home = next((i for i, (q, alts, _) in enumerate(sections) if _mentions(name, [q, *alts], lang)), 0)
        add(home, _general(name, lang))
        timed = (i for i, (q, alts, a) in enumerate(sections) if period.search(a) and any(_mentions(n, [q, *alts, a], lang) for n in group))
        if (index := next(timed, None)) is not None:
            add(index, _period(name, lang))

    add(0, [title.strip()])
    topics = title_topics(title, lang)
    covered: set[str] = set()
    for topic in topics:
        names = _names(topic, lang)
        for n, name in enumerate(names):
            # The main name stands for the whole group (退换货: 退货, 换货); another name only for itself.
            place(name, 0 if n == 0 and len(topics) == 1 else None, names if n == 0 else [name])
            covered.add(name)
    for topic in ZH_TOPICS if lang == "zh" else EN_TOPICS:
        if topic in covered:
            continue
        home = next((i for i, (q, _, _) in enumerate(sections) if _mentions(topic, [q], lang)), None)
        if home is not None:
            add(home, _general(topic, lang))
            if period.search(sections[home][2]):
                add(home, _period(topic, lang))
    return out


def _key(text: str) -> str:
    return _PUNCT.sub("", normalize(text))


def policy_proposals(doc: SourceRecord) -> list[Proposal]:
    if doc.deleted:
        return []
    title = doc.payload.get("title", doc.key)
    sections = policy_sections(doc.payload.get("text", ""))
    doc_lang = doc.payload.get("lang") or detect_lang(title + "".join(q + a for q, _, a in sections))
    extra = generated_phrasings(title, sections, doc_lang) if GENERATED_PHRASINGS and doc_lang in ("zh", "en") else [[] for _ in sections]
    out = []
    for (question, alternates, answer), generated in zip(sections, extra):
        lang = doc.payload.get("lang") or detect_lang(question + answer)
        if lang != doc_lang:
            generated = []
        out.append(
            Proposal(
                entry_key=f"policy:{doc.source}:{doc.key}:{fingerprint(question)[:12]}",
                origin="policy",
                kind="policy",
                lang=lang,
                question=question,
                answer=answer,
                alt_questions=alternates + generated,
                tags=["policy", title],
                evidence={"document": doc.key, "title": title, "version": doc.version},
                depends_on=[doc.ref],
            )
        )
    return out
