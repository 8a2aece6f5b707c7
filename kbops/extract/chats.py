"""Chat logs → candidates: what human agents answer again and again.

1. **Exchanges.** In each (already scrubbed) session, pair a customer turn
   that asks something general with the agent reply that answers it. Skipped:
   chit-chat ("在吗", "thanks"), context-bound fragments ("那怎么办", "什么意思"),
   order-specific questions ("我的快递到哪了", anything quoting an order, phone
   or address); in replies, filler and sign-offs ("请稍等", "还有其他问题吗"),
   requests for the order number, apologies, agent actions on one order
   ("这边帮您登记"). Sentences of a reply that carry a value only one order
   knows (a JDDC ``[数字x]``/``[日期x]``… placeholder, ``[ORDER]``) are dropped;
   a reply that is nothing but such sentences is not an answer. A customer
   question that was handed off, or that got no substantive reply, is kept as
   *unanswered* (input for "unanswered topics", :func:`group_gaps`).
2. **Grouping.** Near-identical questions across sessions are grouped by the
   KB's one question similarity (:func:`kbops.index.similarity.similar_pairs`):
   w·dense + (1−w)·lexical, where lexical is an idf-weighted cosine over words /
   CJK character uni+bigrams, dense is the shared embedder's cosine, and
   w = ``dense_weight`` × (1 − the [UNK] share of the two texts) — the bundled
   model reads no Chinese, so Chinese groups are lexical. Exchanges whose agents
   gave nearly the same (canned) reply group together too. Similar pairs come
   from sparse matrix products, so grouping costs about the number of similar
   pairs, not N².
3. **Proposal.** Support = distinct sessions. The representative question is
   the group's medoid; the answer is the best-supported one (the reply most
   other sessions' replies agree with), the most general on ties; other
   phrasings become alternate questions. Each proposal carries a quality score
   in [0, 1] (``evidence["quality"]``, with its parts) for review priority, and
   evidence links (session key + turn index + the scrubbed excerpt).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kbops.index.lexical import pair_matrix, pairs_above
from kbops.index.similarity import DenseView, similar_pairs
from kbops.kb.candidates import Proposal
from kbops.pii import PLACEHOLDER
from kbops.text import detect_lang, fingerprint, normalize, tokens

_SENTENCE_END = re.compile(r"(?<=[。！？!?~～\n])|(?<=[.;；])\s+|\s{2,}")
_CLAUSE = re.compile(r"[，,\s]+")
_EN_CLAUSE = re.compile(r",\s*")
_GREETING = re.compile(
    r"^(?:你好|您好|在吗|在不在|请问|亲|人工客服|人工|客服|hi|hello|hey|good (?:morning|afternoon|evening))[\s,，。.!！~～]*",
    re.IGNORECASE,
)
_QUESTION_CUES = re.compile(
    r"[？?]|吗|么|怎么|怎样|如何|能不能|能否|可不可以|可以|多久|多少|多长|什么|哪|是否|有没有|支持|为啥|为什么|"
    r"\b(?:how|what|when|where|which|can|could|do|does|is|are|will|why|want to (?:know|see|check)|need (?:to know|information|info|help)|"
    r"help me|tell me|show me|information (?:about|on)|info (?:about|on))\b",
    re.IGNORECASE,
)
_CHITCHAT = re.compile(
    r"^(?:在吗|在不在|在么|你好|您好|hi|hello|hey|好的|好|嗯+|哦|ok|okay|谢谢|谢了|多谢|thanks|thank you|"
    r"明白了|知道了|没有了|没了|是的|对|bye|再见|拜拜|人工|转人工|是人工吗|客服|怎么样了?|然后呢|还在吗|还在么|有人吗|"
    r"what|really|sure|why)[\s,，。.!！?？~～了啊呀哈的呢吗么]*$",
    re.IGNORECASE,
)
# Questions that only the customer's own order can answer, or that make no
# sense without the turns before them.
_ORDER_QUESTION = re.compile(
    r"我的(?:订单|快递|包裹|货|东西|件|商品|退款|钱|发票|售后|单)|我(?:买|下单|订|拍|退|申请|寄|提交)的|"
    r"到哪(?:了|里了|儿了)|怎么还(?:没|不)|还没(?:到|发|收到|退)|什么时候(?:能)?(?:到|发货|送|退|寄)|"
    r"几(?:号|点|天)(?:能)?到|今天(?:能|可以)?到|明天(?:能|可以)?到|帮我(?:查|看|问|催|改|取消|处理|退)|"
    r"这(?:个|单|件)?(?:订单|快递|包裹)|怎么样了|进度|催一?下|\b(?:my|our) (?:order|parcel|package|refund|delivery|item)|"
    r"\bwhere is\b|\d{6,}|\b(?:track|cancel|change|modify)\w* (?:the |this |that )?(?:order|purchase|parcel|package) ",
    re.IGNORECASE,
)
# Asking for a person is a handoff request, not a question the KB could answer.
_HUMAN_REQUEST = re.compile(r"(?:找|转|要|接)(?:个)?(?:人工|真人|客服)|人工客服|\b(?:human|real person|live agent|representative|speak to (?:an? )?(?:agent|person))\b", re.IGNORECASE)
_DEICTIC = re.compile(r"^(?:那|那么|那个|所以|然后|还有|还是|就是|那我|那要|那就|so|then|and|but|what about)(?![么样种款些])", re.IGNORECASE)
_FILLER = re.compile(
    r"请稍等|稍等|稍候|正在为您|马上为您|为您查询|帮您查询|查询一下|很高兴为您服务|有什么(?:问题|可以)|请问还有其他|还有其他|"
    r"不客气|祝您|感谢您|亲爱哒|您太客气|欢迎|^(?:您好|你好|亲|在的)[，,!！~～呢哦]*$|评价|满意度|点击表情|"
    r"善解人意|缘分|应该做的|不便|见谅|谅解|耐心等待|感谢您的理解|怠慢|辛苦您|久等|^(?:抱歉|不好意思|对不起)[~～。！!]*$|"
    r"请问您是咨询|咨询之前的问题|服务专员|工号|小红人|专属客服|为您转接|转接|"
    r"please wait|one moment|let me check|happy to help|how can i help|anything else|you're welcome|"
    r"have a (?:nice|great) day|thank(?:s| you) for (?:contacting|reaching|your patience|waiting)|sorry for|apolog|"
    r"^(?:hi|hello|hey)\b[^.?!]{0,40}[.!]?$",
    re.IGNORECASE,
)
# Replies that ask for the order or act on one order: not reusable knowledge.
_ORDER_ANSWER = re.compile(
    r"订单号|运单号|单号|提供(?:一?下)?|发(?:一?下|给我)|复制|截图|您的(?:订单|商品|快递|包裹|退款|售后|申请|服务单|问题)|"
    r"这边(?:帮|给|为|已|会|看|查|联系|反馈|登记|备注|申请|提交|操作)|(?:帮|给|为)您(?:登记|备注|申请|提交|催|联系|反馈|处理|操作|补|查|看|修改|取消|安排)|"
    r"已经?(?:为您|帮您|给您)|小妹|妹子|妹纸|请问是|这个商品吗|这个吗|是这个|"
    r"\b(?:your order|your parcel|your package|your refund|order number|i have (?:checked|updated|cancel)|i'(?:ve|ll) (?:check|update|cancel|escalat))",
    re.IGNORECASE,
)
# "抱歉，我们暂不支持货到付款…": the apology goes, the answer stays.
_APOLOGY = re.compile(r"^(?:非常|十分|很)?(?:抱歉|不好意思|对不起)[，,、~～\s]*|^(?:sorry|i'm sorry|unfortunately)[,\s]+", re.IGNORECASE)
_APOLOGY_ANY = re.compile(
    r"(?:真的|确实|实在)?(?:是)?(?:很|非常|十分)?(?:抱歉|不好意思)(?:的)?(?:呢|哦|呀|啦)?[，,~～。！!]?|给您添麻烦了?[，,]?|耽误您的?时间了?|"
    r"理解您的意思|嗯嗯|刚才很"
)
_CLARIFYING = re.compile(r"(?:吗|么|是吧|对吧)[。.]?$|[？?]$")
_HANDOFF_REPLY = re.compile(r"转接|转人工|专属客服|transfer(?:ring)? you|escalat", re.IGNORECASE)
# Placeholders whose value only one order or customer knows. A sentence that
# carries one is not reusable; JDDC's [数字x] hides the number the answer is about.
_SPECIFIC = re.compile(
    r"\[(?:ORDER|PHONE|EMAIL|ADDRESS|ID|CARD|NAME)\]|\[(?:订单|地址|姓名|电话|邮箱|身份证号?|数字|金额|日期|时间|站点|链接|组织机构)x\]|"
    r"\[商品快照\]|\[[^\]]{1,12}\]|\{\{[^{}]{1,60}\}\}"
)
_ADDRESS_TERMS = re.compile(r"^(?:亲爱的客户|亲爱的|亲爱滴|亲亲|亲|您好|你好)[，,~～!！\s]*|[，,\s]*(?:亲爱的|亲亲|亲)[~～!！。]*$")
# Characters that carry no topic: a question made only of these is context-bound.
_ZH_FUNCTION = set("我你您他她它的了吗呢啊呀吧哦么嘛哈啦是不没在这那个些么什怎样哪为啥就都还也给帮下一有要可以能会吧对好请问多少")
SIMILARITY = 0.5
SAME_ANSWER = 0.8
AGREE = 0.5
MAX_QUESTION_CHARS = 120
MAX_ANSWER_CHARS = 400


@dataclass
class Exchange:
    session: str
    turn: int
    lang: str
    question: str
    answer: str
    sku: str | None = None


@dataclass
class Unanswered:
    """A general customer question no agent answered: handed off, or no substantive reply."""

    session: str
    turn: int
    lang: str
    question: str
    reason: str  # handoff | no_answer


@dataclass
class SessionMining:
    exchanges: list[Exchange] = field(default_factory=list)
    unanswered: list[Unanswered] = field(default_factory=list)


def mine_session(session_key: str, turns: Sequence[dict[str, Any]], sku: str | None = None) -> SessionMining:
    """Exchanges and unanswered questions of one normalised, scrubbed session."""
    out = SessionMining()
    for i, turn in enumerate(turns):
        if turn.get("role") != "customer":
            continue
        question = question_part(turn.get("text", ""))
        if not question:
            continue
        lang = detect_lang(question)
        if lang == "und":
            continue
        nxt = turns[i + 1] if i + 1 < len(turns) else None
        reply = nxt.get("text", "") if nxt is not None and nxt.get("role") == "agent" else ""
        handed_off = bool(turn.get("handoff")) or bool(_HANDOFF_REPLY.search(reply))
        answer = answer_part(reply) if reply and not handed_off else ""
        if answer and detect_lang(answer) == lang:
            out.exchanges.append(Exchange(session_key, i, lang, question, answer, turn.get("sku") or sku))
        elif handed_off or not (reply and _ORDER_ANSWER.search(reply)):
            out.unanswered.append(Unanswered(session_key, i, lang, question, "handoff" if handed_off else "no_answer"))
    return out


def session_exchanges(session_key: str, turns: Sequence[dict[str, Any]]) -> list[Exchange]:
    """General question → answering reply pairs from one normalised session."""
    return mine_session(session_key, turns).exchanges


def _sentences(text: str) -> list[str]:
    return [s.strip(" ，,") for s in _SENTENCE_END.split(text) if s and s.strip(" ，,")]


def _informative(text: str) -> int:
    """Topic-bearing characters (CJK) or words (English) in a question."""
    core = PLACEHOLDER.sub("", normalize(text))
    if detect_lang(core) == "zh":
        return sum(1 for ch in core if "\u4e00" <= ch <= "\u9fff" and ch not in _ZH_FUNCTION)
    return len(tokens(core))


def question_part(text: str) -> str:
    """The general question in a customer turn, or "" when it has none.

    Greetings and chit-chat are removed; an order-specific, context-bound or
    topic-less question gives "".
    """
    if len(text) > 4 * MAX_QUESTION_CHARS:
        return ""  # a wall of text is a complaint or a paste, not an FAQ question
    kept = []
    for sentence in _sentences(text):
        sentence = _GREETING.sub("", sentence).strip()
        if not sentence or _CHITCHAT.match(sentence) or not _QUESTION_CUES.search(sentence):
            continue
        if _SPECIFIC.search(sentence) and not re.search(r"[?？]", sentence):
            continue  # "my name is [NAME]." introduces; it does not ask
        zh = detect_lang(sentence) == "zh"
        splitter = _CLAUSE if zh else _EN_CLAUSE
        clauses = [c for c in splitter.split(sentence) if c and not _CHITCHAT.match(c) and not _GREETING.fullmatch(c)]
        sentence = ("，" if zh else ", ").join(clauses) or sentence
        if not zh:
            sentence = sentence[:1].upper() + sentence[1:]
        kept.append(sentence)
    question = ("".join(kept) if detect_lang(text) == "zh" else " ".join(kept)).strip()
    if not question or len(question) > MAX_QUESTION_CHARS:
        return ""
    if _SPECIFIC.search(question) or _ORDER_QUESTION.search(question) or _DEICTIC.match(question) or _HUMAN_REQUEST.search(question):
        return ""
    minimum = 3 if detect_lang(question) == "zh" else 2
    return question if _informative(question) >= minimum else ""


def answer_part(text: str) -> str:
    """The reusable part of an agent reply, or "" when it is filler or about one order."""
    kept = []
    for sentence in _sentences(text):
        if _FILLER.search(sentence):
            continue
        if _ORDER_ANSWER.search(sentence):
            return ""  # asks for the order or acts on it: the whole reply is about one order
        if _SPECIFIC.search(sentence):
            continue
        sentence = _APOLOGY_ANY.sub("", _APOLOGY.sub("", _ADDRESS_TERMS.sub("", sentence))).strip(" ，,~～")
        if len(normalize(sentence)) < 4:
            continue  # nothing left once the apology is gone
        if sentence:
            kept.append(sentence)
    if kept and all(_CLARIFYING.search(s) for s in kept):
        return ""  # the agent asked back ("您是想取消拼购吗？"): not an answer
    zh = detect_lang(text) == "zh"
    answer = ""
    for sentence in kept:
        if answer and zh:
            answer += sentence if answer[-1] in "。！？!?～~，,；;" else "，" + sentence
        else:
            answer = f"{answer} {sentence}" if answer else sentence
    answer = answer.strip().rstrip("，,、；; ")
    if zh and answer and answer[-1] not in "。！？!?～~）)":
        answer += "。"
    core = normalize(answer)
    if len(core) < (8 if zh else 20) or len(answer) > MAX_ANSWER_CHARS:
        return ""
    return answer


# --- grouping -------------------------------------------------------------------


def group_exchanges(
    exchanges: Sequence[Exchange], dense: DenseView | None = None, *, similarity: float = SIMILARITY
) -> list[list[Exchange]]:
    """Leader clustering of exchanges (input order decides the leaders).

    Two exchanges belong together when their questions are similar (fused
    cosine ≥ ``similarity``) or their agents gave nearly the same reply
    (lexical cosine ≥ SAME_ANSWER): agents answer a recurring question with a
    canned reply, a stronger signal than the customers' wording. Languages are
    never mixed. ``dense`` rows follow ``exchanges``.
    """
    return _leader_groups(
        exchanges,
        [ex.question for ex in exchanges],
        [ex.answer for ex in exchanges],
        [ex.lang for ex in exchanges],
        dense,
        similarity,
    )


def _leader_groups(
    items: Sequence[Any],
    questions: Sequence[str],
    answers: Sequence[str] | None,
    langs: Sequence[str],
    dense: DenseView | None,
    similarity: float,
    background: Sequence[str] = (),
) -> list[list[Any]]:
    q_pairs = similar_pairs(questions, dense, similarity, background)
    a_pairs = pairs_above(pair_matrix(answers), SAME_ANSWER) if answers is not None else {}
    neighbours: dict[int, dict[int, float]] = defaultdict(dict)
    for (i, j), s in list(q_pairs.items()) + list(a_pairs.items()):
        if langs[i] == langs[j] and s > neighbours[i].get(j, 0.0):
            neighbours[i][j] = s
    leader_of: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    for i in range(len(items)):
        best, best_sim = None, 0.0
        for j, s in neighbours.get(i, {}).items():
            if j in members and s > best_sim:  # j leads a group
                best, best_sim = j, s
        if best is None:
            members[i] = [i]
            leader_of[i] = i
        else:
            members[best].append(i)
            leader_of[i] = best
    return [[items[k] for k in group] for group in members.values()]


# --- proposals ------------------------------------------------------------------


def _medoid(texts: Sequence[str]) -> tuple[int, np.ndarray]:
    m = pair_matrix(texts, max_df=1.0)
    sims = np.asarray((m @ m.T).todense())
    scores = sims.sum(axis=1)
    best = max(range(len(texts)), key=lambda i: (round(float(scores[i]), 6), -len(texts[i]), texts[i]))
    return best, sims


_SPECIFICITY = re.compile(r"\d|您的|这边|帮您|给您|为您|your|I will|I'll", re.IGNORECASE)


def generality(answer: str) -> float:
    """1.0 for a policy-like reply; less for one full of numbers and second-person actions."""
    return max(0.0, 1.0 - 0.2 * len(_SPECIFICITY.findall(answer)))


_INSTRUCTION = re.compile(r"[-—>]|“|页面|点击|进入|选择|申请|上传|\b(?:click|go to|select|open|settings|page|tap)\b", re.IGNORECASE)
#: How the quality score weighs its parts (each in [0, 1]). Support and how much
#: the answer says dominate: on JDDC, replies of 25+ characters and replies that
#: give a procedure ("我的-客户服务-发票服务") were the ones a reviewer approved.
QUALITY_WEIGHTS = {"support": 0.3, "agreement": 0.15, "generality": 0.15, "cohesion": 0.1, "informative": 0.3}


def informativeness(answer: str) -> float:
    """How much an answer says: topic-bearing characters/words (saturating), plus a procedure bonus."""
    core = normalize(answer)
    if detect_lang(core) == "zh":
        amount = sum(1 for ch in core if "\u4e00" <= ch <= "\u9fff" and ch not in _ZH_FUNCTION) / 30
    else:
        amount = len(tokens(core)) / 15
    return min(1.0, amount + (0.25 if _INSTRUCTION.search(answer) else 0.0))


def group_proposal(group: Sequence[Exchange], min_support: int) -> Proposal | None:
    """The candidate for one group, or None below ``min_support`` distinct sessions."""
    sessions = sorted({ex.session for ex in group})
    if len(sessions) < min_support:
        return None
    group = sorted(group, key=lambda ex: (ex.session, ex.turn))
    questions = [ex.question for ex in group]
    q_index, q_sims = _medoid(questions)
    question = questions[q_index]
    # Answer: the reply most other sessions' replies agree with; the most general on ties.
    answers = [ex.answer for ex in group]
    a_matrix = pair_matrix(answers, max_df=1.0)
    a_sims = np.asarray((a_matrix @ a_matrix.T).todense())
    agree_sessions = []
    for i in range(len(group)):
        agree_sessions.append({group[j].session for j in range(len(group)) if a_sims[i, j] >= AGREE} | {group[i].session})
    a_index = max(
        range(len(group)),
        key=lambda i: (len(agree_sessions[i]), generality(answers[i]), -abs(len(answers[i]) - 60), answers[i]),
    )
    answer = answers[a_index]
    seen = {fingerprint(question)}
    alternates = []
    for q in questions:
        if fingerprint(q) not in seen:
            seen.add(fingerprint(q))
            alternates.append(q)
    support = len(sessions)
    agreement = len(agree_sessions[a_index]) / support
    cohesion = float(np.mean(q_sims[q_index])) if len(group) > 1 else 1.0
    parts = {
        "support": round(min(1.0, math.log2(1 + support) / math.log2(1 + 8)), 3),
        "agreement": round(agreement, 3),
        "generality": round(generality(answer), 3),
        "cohesion": round(cohesion, 3),
        "informative": round(informativeness(answer), 3),
    }
    quality = round(sum(QUALITY_WEIGHTS[k] * v for k, v in parts.items()), 3)
    first = group[0]
    chosen = group[a_index]
    return Proposal(
        entry_key=f"chat:{first.lang}:{fingerprint(first.question)[:16]}",
        origin="chat",
        kind="faq",
        lang=first.lang,
        question=question,
        answer=answer,
        alt_questions=alternates[:8],
        tags=["chat"],
        evidence={
            "sessions": sessions,
            "skus": sorted({ex.sku for ex in group if ex.sku}),
            "quality": quality,
            "quality_parts": parts,
            "answer_from": {"session": chosen.session, "turn": chosen.turn},
            "excerpts": [
                {"session": ex.session, "turn": ex.turn, "question": ex.question, "answer": ex.answer}
                for ex in ([chosen] + [e for e in group if e is not chosen])[:5]
            ],
        },
        support=support,
    )


# --- gaps -----------------------------------------------------------------------


@dataclass
class Gap:
    """An unanswered topic: similar questions no agent answered generally."""

    topic_key: str
    lang: str
    question: str
    alt_questions: list[str]
    support: int
    reasons: dict[str, int]
    evidence: list[dict[str, Any]]


def group_gaps(
    items: Sequence[Unanswered], dense: DenseView | None = None, min_support: int = 1, background: Sequence[str] = ()
) -> list[Gap]:
    """Group unanswered questions into topics, most-asked first.

    ``background``: other customer questions (the answered ones) to weigh words
    by: among a handful of unanswered questions that all say "货到付款", that
    word would otherwise look common and weigh nothing.
    """
    groups = _leader_groups(items, [u.question for u in items], None, [u.lang for u in items], dense, SIMILARITY, background)
    out = []
    for group in groups:
        group = sorted(group, key=lambda u: (u.session, u.turn))
        sessions = {u.session for u in group}
        if len(sessions) < min_support:
            continue
        questions = [u.question for u in group]
        index, _ = _medoid(questions)
        reasons: dict[str, int] = defaultdict(int)
        for u in group:
            reasons[u.reason] += 1
        alternates = list(dict.fromkeys(q for q in questions if q != questions[index]))[:8]
        out.append(
            Gap(
                topic_key=f"gap:{group[0].lang}:{fingerprint(group[0].question)[:16]}",
                lang=group[0].lang,
                question=questions[index],
                alt_questions=alternates,
                support=len(sessions),
                reasons=dict(reasons),
                evidence=[{"session": u.session, "turn": u.turn, "question": u.question, "reason": u.reason} for u in group[:5]],
            )
        )
    out.sort(key=lambda g: (-g.support, g.topic_key))
    return out


def iter_proposals(groups: Iterable[Sequence[Exchange]], min_support: int) -> Iterable[Proposal]:
    for group in groups:
        proposal = group_proposal(group, min_support)
        if proposal is not None:
            yield proposal
