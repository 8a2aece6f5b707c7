"""Chat logs → candidates: what human agents answer again and again.

1. In each (already scrubbed) session, pair a customer turn that asks
   something general with the agent reply that answers it; skip chit-chat
   ("在吗", "thanks"), filler replies ("请稍等，正在为您查询"), and anything
   order-specific (a reply mentioning an order, phone or address placeholder).
2. Group near-identical questions across sessions (lexical similarity on
   words / CJK character n-grams), count support as distinct sessions, and
   propose the group's most central question and answer, keeping the other
   phrasings as alternate questions. Groups below ``min_chat_support`` wait
   for more evidence.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass

from kbops.extract.candidates import Proposal
from kbops.text import detect_lang, fingerprint, normalize, tokens

_SENTENCE_END = re.compile(r"(?<=[。！？!?~～\n])|(?<=[.;；])\s+")
_CLAUSE = re.compile(r"[，,\s]+")
_EN_CLAUSE = re.compile(r",\s*")
_GREETING = re.compile(r"^(?:你好|您好|在吗|在不在|请问|亲|hi|hello|hey|good (?:morning|afternoon|evening))[\s,，。.!！~～]*", re.IGNORECASE)
_QUESTION_CUES = re.compile(
    r"[？?]|吗|怎么|如何|能不能|可不可以|可以|多久|多少|什么|哪|是否|有没有|支持|"
    r"\b(?:how|what|when|where|which|can|could|do|does|is|are|will|why)\b",
    re.IGNORECASE,
)
_CHITCHAT = re.compile(
    r"^(?:在吗|在不在|你好|您好|hi|hello|hey|好的|好|嗯|哦|ok|okay|谢谢|谢了|多谢|thanks|thank you|"
    r"明白了|知道了|没有了|没了|bye|再见|拜拜)[\s,，。.!！~～了啊呀哈]*$",
    re.IGNORECASE,
)
_FILLER = re.compile(
    r"请稍等|稍等|正在为您查询|正在查询|帮您查询|很高兴为您服务|有什么(?:问题|可以)|请问还有其他|还有其他|"
    r"不客气|祝您|感谢您|亲爱哒|您太客气|欢迎|^(?:您好|你好|亲)[，,!！~～]*$|"
    r"please wait|one moment|let me check|happy to help|how can i help|anything else|you're welcome|"
    r"have a (?:nice|great) day|thank(?:s| you) for (?:contacting|reaching|your patience|waiting)|"
    r"^(?:hi|hello|hey)\b[^.?!]{0,40}[.!]?$",
    re.IGNORECASE,
)
_ORDER_SPECIFIC = re.compile(r"\[(?:ORDER|PHONE|EMAIL|ADDRESS|ID|CARD|NAME)\]|\[(?:订单|地址|姓名|电话)x\]")
SIMILARITY = 0.45
SAME_ANSWER = 0.8


@dataclass
class Exchange:
    session: str
    turn: int
    lang: str
    question: str
    answer: str
    sku: str | None = None


def session_exchanges(session_key: str, turns: list[dict[str, str]]) -> list[Exchange]:
    """General question → answering reply pairs from one normalised session."""
    out = []
    for i, turn in enumerate(turns[:-1]):
        nxt = turns[i + 1]
        if turn["role"] != "customer" or nxt["role"] != "agent":
            continue
        question = _question_part(turn["text"])
        answer = _answer_part(nxt["text"])
        if not question or not answer or _ORDER_SPECIFIC.search(question + answer):
            continue
        lang = detect_lang(question)
        if lang == "und" or detect_lang(answer) != lang:
            continue
        out.append(Exchange(session_key, i, lang, question, answer))
    return out


def _sentences(text: str) -> list[str]:
    return [s.strip(" ，,") for s in _SENTENCE_END.split(text) if s and s.strip(" ，,")]


def _question_part(text: str) -> str:
    """The question-like sentences of a customer turn (greetings and chit-chat removed)."""
    kept = []
    for sentence in _sentences(text):
        sentence = _GREETING.sub("", sentence).strip()
        if not sentence or _CHITCHAT.match(sentence) or not _QUESTION_CUES.search(sentence):
            continue
        # Drop greeting clauses inside the sentence too ("在吗，可以到付吗" → "可以到付吗").
        zh = detect_lang(sentence) == "zh"
        splitter = _CLAUSE if zh else _EN_CLAUSE
        clauses = [c for c in splitter.split(sentence) if c and not _CHITCHAT.match(c) and not _GREETING.fullmatch(c)]
        sentence = ("，" if zh else ", ").join(clauses) or sentence
        if not zh:
            sentence = sentence[:1].upper() + sentence[1:]
        kept.append(sentence)
    question = "".join(kept) if detect_lang(text) == "zh" else " ".join(kept)
    return question if len(normalize(question)) >= 4 else ""


def _answer_part(text: str) -> str:
    """The agent reply without greetings, filler and sign-offs."""
    kept = [s for s in _sentences(text) if not _FILLER.search(s)]
    answer = ("".join(kept) if detect_lang(text) == "zh" else " ".join(kept)).strip()
    return answer if len(normalize(answer)) >= 6 else ""


def _vectors(texts: list[str]) -> list[dict[str, float]]:
    """idf-weighted, L2-normalised token sets: rare words ("专票", "Hong Kong") weigh most."""
    sets = [set(tokens(t)) for t in texts]
    df: dict[str, int] = defaultdict(int)
    for s in sets:
        for tok in s:
            df[tok] += 1
    n = len(sets)
    out = []
    for s in sets:
        weights = {tok: math.log((n + 1) / (df[tok] + 0.5)) for tok in s}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        out.append({tok: w / norm for tok, w in weights.items()})
    return out


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(tok, 0.0) for tok, w in a.items())


def group_exchanges(exchanges: list[Exchange]) -> list[list[Exchange]]:
    """Greedy leader clustering of exchanges.

    Two exchanges belong together when their questions are similar
    (idf-weighted cosine ≥ SIMILARITY) or when the agents gave nearly the same
    reply (cosine ≥ SAME_ANSWER): agents answer a recurring question with a
    canned reply, which is a stronger signal than the customers' wording.
    """
    groups: list[tuple[dict[str, float], dict[str, float], list[Exchange]]] = []
    by_lang: dict[str, list[tuple[dict[str, float], dict[str, float], list[Exchange]]]] = defaultdict(list)
    q_vecs = _vectors([ex.question for ex in exchanges])
    a_vecs = _vectors([ex.answer for ex in exchanges])
    for ex, qv, av in zip(exchanges, q_vecs, a_vecs):
        best, best_sim = None, 0.0
        for group in by_lang[ex.lang]:
            q_sim = _cosine(qv, group[0])
            a_sim = _cosine(av, group[1])
            sim = max(q_sim if q_sim >= SIMILARITY else 0.0, a_sim if a_sim >= SAME_ANSWER else 0.0)
            if sim > best_sim:
                best, best_sim = group, sim
        if best is None:
            best = (qv, av, [])
            by_lang[ex.lang].append(best)
            groups.append(best)
        best[2].append(ex)
    return [members for _, _, members in groups]


def _medoid(texts: list[str]) -> int:
    vecs = _vectors(texts)
    scores = [sum(_cosine(v, o) for o in vecs) for v in vecs]
    return max(range(len(texts)), key=lambda i: (scores[i], -len(texts[i])))


def group_proposal(group: list[Exchange], min_support: int) -> Proposal | None:
    sessions = sorted({ex.session for ex in group})
    if len(sessions) < min_support:
        return None
    questions = [ex.question for ex in group]
    question = questions[_medoid(questions)]
    answer = group[_medoid([ex.answer for ex in group])].answer
    seen = {fingerprint(question)}
    alternates = []
    for q in questions:
        if fingerprint(q) not in seen:
            seen.add(fingerprint(q))
            alternates.append(q)
    first = min(group, key=lambda ex: (ex.session, ex.turn))
    return Proposal(
        entry_key=f"chat:{group[0].lang}:{fingerprint(first.question)[:16]}",
        origin="chat",
        kind="faq",
        lang=group[0].lang,
        question=question,
        answer=answer,
        alt_questions=alternates[:8],
        tags=["chat"],
        evidence={
            "sessions": sessions,
            "skus": sorted({ex.sku for ex in group if ex.sku}),
            "excerpts": [
                {"session": ex.session, "turn": ex.turn, "question": ex.question, "answer": ex.answer}
                for ex in group[:5]
            ],
        },
        support=len(sessions),
    )
