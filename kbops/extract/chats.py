"""Chat logs → candidates: what human agents answer again and again.

1. **Exchanges.** In each (already scrubbed) session, pair a customer turn
   that asks something general with the agent reply that answers it.
   Greetings and chit-chat are cut; what is left is screened by
   :mod:`kbops.extract.chat_scope` (every cue list lives there): one-order,
   merchant-side, complaint, garbled and statement turns are dropped (counted
   in ``SessionMining.dropped``); a follow-up is rewritten with the topic of an
   earlier customer turn (the typed question and that turn kept as evidence) or
   dropped, by ``context``. In replies, filler and sign-offs ("请稍等",
   "还有其他问题吗"), requests for the order number and agent actions on one
   order are removed; a reply that then asks back, hedges, acts on one order,
   is addressed to a seller, restates the question or is off topic is not an
   answer. A general question that was handed off or got no real answer is
   kept as *unanswered* (input for "unanswered topics", :func:`group_gaps`).
2. **Grouping.** Near-identical questions across sessions are grouped by the
   KB's one question similarity (:func:`kbops.index.similarity.similar_pairs`):
   w·dense + (1−w)·lexical, where lexical is an idf-weighted cosine over words /
   CJK character uni+bigrams, dense is the shared embedder's cosine, and
   w = ``dense_weight`` × (1 − the [UNK] share of the two texts) — the bundled
   model reads no Chinese, so Chinese groups are lexical. Exchanges whose agents
   gave nearly the same (canned) reply group together too. Similar pairs come
   from sparse matrix products, so grouping costs about the number of similar
   pairs, not N².
3. **Proposal.** Only exchanges whose subject a reader can know back a
   candidate (:func:`usable_exchanges`: a service topic, a catalogued SKU, or
   a second session). Support = distinct sessions. The representative question
   is the group's medoid (a typed one over a rewrite); the answer is the
   best-supported one (the reply most other sessions' replies agree with), the
   most informative and general on ties; other phrasings become alternate
   questions. Each proposal carries a quality score in [0, 1]
   (``evidence["quality"]``, with its parts; weights fitted on labelled tune
   data), the checks it passed in words (``evidence["checks"]``), the earlier
   turns a rewritten question came from (``evidence["context_turns"]``) and
   evidence links (session key + turn index + the scrubbed excerpt). Review
   order: :func:`rank_key`.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kbops.extract import chat_scope
from kbops.index.lexical import pair_matrix, pairs_above
from kbops.index.similarity import DenseView, similar_pairs
from kbops.kb.candidates import Proposal
from kbops.pii import PLACEHOLDER
from kbops.text import detect_lang, fingerprint, normalize, tokens

_SENTENCE_END = re.compile(r"(?<=[。！？!?~～\n])|(?<=[.;；])\s+|\s{2,}")
_CLAUSE = re.compile(r"[，,\s]+")
_EN_CLAUSE = re.compile(r",\s*")
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
    #: The question as the customer typed it, when ``question`` was rewritten from earlier turns.
    original: str = ""
    #: The earlier customer turns a rewritten question took its topic from.
    context_turns: list[str] = field(default_factory=list)
    #: ``general``, or ``listing``: about the item on screen (an FAQ only for a known SKU).
    scope: str = "general"


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
    #: Customer questions kept out, by reason (one_order, merchant_side, context, non-answer kinds …).
    dropped: dict[str, int] = field(default_factory=lambda: defaultdict(int))


#: How a follow-up question is handled: rewritten from earlier turns, or dropped.
CONTEXT_MODES = ("rewrite", "drop")
_EARLIER = 3  # customer turns a follow-up may take its topic from


def mine_session(session_key: str, turns: Sequence[dict[str, Any]], sku: str | None = None, *, context: str = "rewrite") -> SessionMining:
    """Exchanges and unanswered questions of one normalised, scrubbed session.

    A customer question is kept only when it is general (:func:`chat_scope.question_scope`):
    one order, merchant-side, complaint and garbled questions are dropped (counted in
    ``dropped``). A follow-up is rewritten from the earlier customer turns
    (``context="rewrite"``, :func:`chat_scope.carry_topic`) or dropped (``"drop"``).
    A reply that asks back, hedges, acts on one order, restates or is off topic
    (:func:`chat_scope.answer_problem`) leaves the question unanswered: a gap signal.
    """
    out = SessionMining()
    earlier: list[str] = []
    for i, turn in enumerate(turns):
        if turn.get("role") != "customer":
            continue
        text = turn.get("text", "")
        screened = screen_question(text, earlier[-_EARLIER:], bool(turn.get("sku") or sku), context)
        earlier.append(text)
        if isinstance(screened, str):
            if screened:
                out.dropped[screened] += 1
            continue
        question, original, source, scope = screened
        lang = detect_lang(question)
        if lang == "und":
            continue
        nxt = turns[i + 1] if i + 1 < len(turns) else None
        reply = nxt.get("text", "") if nxt is not None and nxt.get("role") == "agent" else ""
        handed_off = bool(turn.get("handoff")) or bool(chat_scope.HANDOFF_REPLY.search(reply))
        answer = answer_part(reply) if reply and not handed_off else ""
        problem = chat_scope.answer_problem(question, answer) if answer else ""
        if answer and not problem and detect_lang(answer) == lang:
            out.exchanges.append(
                Exchange(session_key, i, lang, question, answer, turn.get("sku") or sku, original, [source] if source else [], scope)
            )
            continue
        if problem:
            out.dropped["answer_" + problem] += 1
        if scope == "general" and (handed_off or problem or not (reply and chat_scope.ORDER_ANSWER.search(reply))):
            out.unanswered.append(Unanswered(session_key, i, lang, question, "handoff" if handed_off else "no_answer"))
    return out


def exchange_context(turns: Sequence[dict[str, Any]], index: int, sku: str | None = None, context: str = "rewrite") -> tuple[str, list[str], str]:
    """``(original, context_turns, scope)`` of the question at ``turns[index]``, as :func:`mine_session` saw it.

    For exchanges read back from the database, which stores only the (rewritten) question.
    """
    turn = turns[index]
    earlier = [t.get("text", "") for t in turns[:index] if t.get("role") == "customer"][-_EARLIER:]
    screened = screen_question(turn.get("text", ""), earlier, bool(turn.get("sku") or sku), context)
    if isinstance(screened, str):
        return "", [], "general"
    _, original, source, scope = screened
    return original, [source] if source else [], scope


def screen_question(text: str, earlier: Sequence[str], has_sku: bool, context: str = "rewrite") -> tuple[str, str, str, str] | str:
    """A customer turn's general question as ``(question, original, source_turn, scope)``, or why not.

    Returns a reason string instead ("" for no question at all, else a
    :func:`chat_scope.question_scope` verdict). ``original`` and ``source_turn``
    are set when a follow-up was rewritten from ``earlier`` (customer turns, oldest first).
    """
    question = _clean_question(text)
    if not question:
        return ""
    scope = chat_scope.question_scope(question, has_sku)
    if scope == "context":
        if context != "rewrite":
            return "context"
        rewritten, source = chat_scope.carry_topic(question, list(earlier))
        if not rewritten:
            return "context"
        return (rewritten, question, source, "general") if rewritten != question else (question, "", "", "general")
    if scope in ("general", "listing"):
        return question, "", "", scope
    return scope


def session_exchanges(session_key: str, turns: Sequence[dict[str, Any]]) -> list[Exchange]:
    """General question → answering reply pairs from one normalised session."""
    return mine_session(session_key, turns).exchanges


def _sentences(text: str) -> list[str]:
    return [s.strip(" ，,") for s in _SENTENCE_END.split(text) if s and s.strip(" ，,")]


def _informative(text: str) -> int:
    """Topic-bearing characters (CJK) or words (English) in a question."""
    core = PLACEHOLDER.sub("", normalize(text))
    if detect_lang(core) == "zh":
        return sum(1 for ch in core if "\u4e00" <= ch <= "\u9fff" and ch not in chat_scope.ZH_FUNCTION)
    return len(tokens(core))


def question_part(text: str) -> str:
    """The general, self-contained question in a customer turn, or "" when it has none.

    Greetings and chit-chat are removed; an order-specific, context-bound,
    listing-bound, merchant-side or topic-less question gives "".
    """
    question = _clean_question(text)
    return question if question and chat_scope.question_scope(question, False) == "general" else ""


def _clean_question(text: str) -> str:
    """The question sentences of a customer turn without greetings and chit-chat, or "" when none has a topic."""
    if len(text) > 4 * MAX_QUESTION_CHARS:
        return ""  # a wall of text is a complaint or a paste, not an FAQ question
    kept = []
    for sentence in _sentences(text):
        sentence = chat_scope.GREETING.sub("", sentence).strip()
        if not sentence or chat_scope.CHITCHAT.match(sentence) or not chat_scope.QUESTION_CUES.search(sentence):
            continue
        if chat_scope.SPECIFIC.search(sentence) and not re.search(r"[?？]", sentence):
            continue  # "my name is [NAME]." introduces; it does not ask
        zh = detect_lang(sentence) == "zh"
        splitter = _CLAUSE if zh else _EN_CLAUSE
        clauses = [c for c in splitter.split(sentence) if c and not chat_scope.CHITCHAT.match(c) and not chat_scope.GREETING.fullmatch(c)]
        sentence = ("，" if zh else ", ").join(clauses) or sentence
        if not zh:
            sentence = sentence[:1].upper() + sentence[1:]
        kept.append(sentence)
    question = ("".join(kept) if detect_lang(text) == "zh" else " ".join(kept)).strip()
    if not question or len(question) > MAX_QUESTION_CHARS:
        return ""
    if chat_scope.SPECIFIC.search(question) or chat_scope.HUMAN_REQUEST.search(question):
        return ""
    minimum = 3 if detect_lang(question) == "zh" else 2
    return question if _informative(question) >= minimum else ""


def answer_part(text: str) -> str:
    """The reusable part of an agent reply, or "" when it is filler or about one order."""
    kept = []
    for sentence in _sentences(text):
        if chat_scope.FILLER.search(sentence):
            continue
        if chat_scope.ORDER_ANSWER.search(sentence):
            return ""  # asks for the order or acts on it: the whole reply is about one order
        if chat_scope.SPECIFIC.search(sentence):
            continue
        sentence = chat_scope.APOLOGY_ANY.sub("", chat_scope.APOLOGY.sub("", chat_scope.ADDRESS_TERMS.sub("", sentence))).strip(" ，,~～")
        if len(normalize(sentence)) < 4:
            continue  # nothing left once the apology is gone
        if sentence:
            kept.append(sentence)
    if kept and all(chat_scope.CLARIFYING.search(s) for s in kept):
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




def generality(answer: str) -> float:
    """1.0 for a policy-like reply; less for one full of numbers and second-person actions."""
    return max(0.0, 1.0 - 0.2 * len(chat_scope.SPECIFICITY.findall(answer)))


#: How the quality score weighs its parts (each in [0, 1]): fitted by
#: ``bench/eval_mining.py`` (:func:`kbops.extract.mining_eval.fit_weights`,
#: logistic, non-negative) on the *tune* split of bench/labels/jddc_strict.tsv
#: only. Support, topic and typed get 0 there because they do not vary among the
#: tune candidates (all support 1, all naming a topic): recurrence ranks through
#: :func:`rank_key` instead, not through this score.
QUALITY_WEIGHTS = {"support": 0.0, "agreement": 0.279, "generality": 0.103, "cohesion": 0.252, "informative": 0.366, "topic": 0.0, "typed": 0.0}


def rank_key(p: Proposal) -> tuple[int, float, str]:
    """Review order: more distinct sessions first, then the quality score (sort ascending by this key)."""
    return (-p.support, -float(p.evidence.get("quality", 0.0)), p.entry_key)


def informativeness(answer: str) -> float:
    """How much an answer says: topic-bearing characters/words (saturating), plus a procedure bonus."""
    core = normalize(answer)
    if detect_lang(core) == "zh":
        amount = sum(1 for ch in core if "\u4e00" <= ch <= "\u9fff" and ch not in chat_scope.ZH_FUNCTION) / 30
    else:
        amount = len(tokens(core)) / 15
    return min(1.0, amount + (0.25 if chat_scope.INSTRUCTION.search(answer) else 0.0))


def usable_exchanges(group: Sequence[Exchange], catalogue: Collection[str] = ()) -> list[Exchange]:
    """The exchanges of a group that may back an FAQ.

    * A question naming a shop service topic (:data:`chat_scope.TOPICS_ZH` /
      ``TOPICS_EN``: invoices, refunds, delivery …), or grouped with one that does, always.
    * A product question (no service topic) when its session's SKU is in the
      store's ``catalogue`` (the reader knows the product: the candidate is
      that product's FAQ), or when customers asked it in at least two sessions.
    * A question about "this item" (``scope == "listing"``) when its SKU is in
      the catalogue or customers of the same SKU asked it in two sessions: in
      one session it has no referent a reader could know.

    Why: on the JDDC tune split, every product and listing question of an
    unknown, one-session item was a one-listing answer (bench/labels/README.md).
    """
    by_sku: dict[str, set[str]] = defaultdict(set)
    for ex in group:
        if ex.sku:
            by_sku[ex.sku].add(ex.session)
    general = [ex for ex in group if ex.scope == "general"]
    # One phrasing that names the topic settles it for the group ("send something back" joins "return policy").
    named = any(chat_scope.topic_of(ex.question) for ex in general)
    product_sessions = {ex.session for ex in general}
    out = []
    for ex in group:
        known = bool(ex.sku) and ex.sku in catalogue
        if ex.scope == "listing":
            if known or (ex.sku and len(by_sku[ex.sku]) >= 2):
                out.append(ex)
        elif named or known or len(product_sessions) >= 2:
            out.append(ex)
    return out


def group_proposal(
    group: Sequence[Exchange], min_support: int, weights: dict[str, float] | None = None, catalogue: Collection[str] = ()
) -> Proposal | None:
    """The candidate for one group, or None below ``min_support`` distinct sessions.

    ``weights``: the quality score's weights (default :data:`QUALITY_WEIGHTS`,
    fitted on the tune split of bench/labels/jddc_strict.tsv). ``catalogue``:
    the store's product SKUs (:func:`usable_exchanges`).
    """
    group = usable_exchanges(group, catalogue)
    sessions = sorted({ex.session for ex in group})
    if not group or len(sessions) < min_support:
        return None
    group = sorted(group, key=lambda ex: (ex.session, ex.turn))
    questions = [ex.question for ex in group]
    q_index, q_sims = _medoid(questions)
    # A question the customer typed beats a rewrite as the representative, when the group has one.
    typed = [i for i, ex in enumerate(group) if not ex.original]
    if typed and group[q_index].original:
        q_index = max(typed, key=lambda i: (round(float(q_sims[i].sum()), 6), -len(questions[i])))
    question = questions[q_index]
    # Answer: the reply most other sessions' replies agree with; then the most informative and general.
    answers = [ex.answer for ex in group]
    a_matrix = pair_matrix(answers, max_df=1.0)
    a_sims = np.asarray((a_matrix @ a_matrix.T).todense())
    agree_sessions = []
    for i in range(len(group)):
        agree_sessions.append({group[j].session for j in range(len(group)) if a_sims[i, j] >= AGREE} | {group[i].session})
    a_index = max(
        range(len(group)),
        key=lambda i: (len(agree_sessions[i]), round(informativeness(answers[i]) * generality(answers[i]), 3), -abs(len(answers[i]) - 60), answers[i]),
    )
    answer = answers[a_index]
    seen = {fingerprint(question)}
    alternates = []
    for q in questions:
        if fingerprint(q) not in seen:
            seen.add(fingerprint(q))
            alternates.append(q)
    support = len(sessions)
    agreeing = len(agree_sessions[a_index])
    cohesion = float(np.mean(q_sims[q_index])) if len(group) > 1 else 1.0
    chosen = group[a_index]
    rep = group[q_index]
    parts = {
        "support": round(min(1.0, math.log2(1 + support) / math.log2(1 + 8)), 3),
        "agreement": round(agreeing / support, 3),
        "generality": round(generality(answer), 3),
        "cohesion": round(cohesion, 3),
        "informative": round(informativeness(answer), 3),
        "topic": 1.0 if chat_scope.topic_of(question) else 0.0,
        "typed": 0.0 if rep.original else 1.0,
    }
    quality = quality_score(parts, weights)
    checks = [
        f"rewritten from an earlier turn ({rep.original})" if rep.original else "self-contained",
        _scope_check(rep, group, catalogue),
        "informative answer",
        f"{agreeing} session{'s' if agreeing != 1 else ''} agree" if agreeing > 1 else "1 session",
    ]
    first = group[0]
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
            "checks": checks,
            "context_turns": list(rep.context_turns),
            "excerpts": [
                {"session": ex.session, "turn": ex.turn, "question": ex.question, "answer": ex.answer}
                for ex in ([chosen] + [e for e in group if e is not chosen])[:5]
            ],
        },
        support=support,
    )


def _scope_check(rep: Exchange, group: Sequence[Exchange], catalogue: Collection[str]) -> str:
    topic = chat_scope.topic_of(rep.question)
    if rep.scope == "general" and topic:
        return f"general scope ({topic})"
    if rep.sku and rep.sku in catalogue:
        return f"product question, SKU {rep.sku} in the catalogue"
    return f"product question asked in {len({e.session for e in group})} sessions"


def quality_score(parts: dict[str, float], weights: dict[str, float] | None = None) -> float:
    """Review priority in [0, 1]: the weighted parts, weights normalised to sum 1."""
    w = weights or QUALITY_WEIGHTS
    total = sum(w.values()) or 1.0
    return round(sum(w.get(k, 0.0) * v for k, v in parts.items()) / total, 3)


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


def iter_proposals(groups: Iterable[Sequence[Exchange]], min_support: int, catalogue: Collection[str] = ()) -> Iterable[Proposal]:
    for group in groups:
        proposal = group_proposal(group, min_support, catalogue=catalogue)
        if proposal is not None:
            yield proposal
