"""Incremental chat mining against the KB database.

Only sessions not yet ``mined`` are read and analysed (exchange finding is the
per-session work); their exchanges and unanswered questions are stored in
``chat_exchanges`` (kind ``qa`` / ``handoff`` / ``no_answer``) and the session is
marked mined in the same transaction, so a re-run never re-mines a session and
a crash re-mines nothing twice. Grouping then runs over all stored exchanges
(cheap: sparse pair search over short texts), and a proposal is emitted only
for groups that gained an exchange in this run; candidates are idempotent
anyway (see kbops.kb.candidates).

Unanswered questions are grouped into ``chat_gaps`` and each topic's question
is asked of the release the bot serves (:func:`gap_coverage`, the bot's own
code): a topic the bot answers is ``covered``, otherwise ``open``; its
``kb_score`` is the bot's calibrated confidence.

The embedder comes from the caller (``Embedder.from_settings``). When its model
cannot be loaded (``ConfigError`` on first use), mining still runs: grouping
falls back to the lexical channel and gap topics stay open, with a logged warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.errors import ConfigError, ReleaseError
from kbops.extract.chats import Exchange, Gap, Unanswered, exchange_context, group_exchanges, group_gaps, group_proposal, mine_session, rank_key
from kbops.index.golden import handoff_fingerprints
from kbops.index.preview import answer_active
from kbops.index.similarity import DenseView, dense_view
from kbops.kb.candidates import Proposal
from kbops.schema import ChatExchange, ChatGap, ChatSession, SourceRecord, utcnow
from kbops.text import fingerprint

log = logging.getLogger("kbops.extract")
_CHUNK = 500


@dataclass
class MiningResult:
    sessions: int = 0
    exchanges: int = 0
    unanswered: int = 0
    gaps: int = 0
    proposals: list[Proposal] = field(default_factory=list)


def mine_chats(db: Session, settings: Settings, embedder: Any | None) -> MiningResult:
    """Mine the sessions not mined yet, regroup, propose for groups that grew, and refresh the gaps.

    ``embedder``: the shared embedder (``Embedder.from_settings(settings)``), or
    None for lexical-only grouping.
    """
    result = MiningResult()
    pending = list(db.scalars(select(ChatSession).where(ChatSession.mined.is_(False)).order_by(ChatSession.id)))
    if not pending:
        return result
    result.sessions = len(pending)
    rows: list[dict[str, Any]] = []
    touched: set[tuple[str, int]] = set()
    for session in pending:
        mined = mine_session(session.session_key, session.turns or [], session.sku)
        for ex in mined.exchanges:
            rows.append(_row(session.id, ex.turn, ex.lang, ex.question, ex.answer, "qa"))
            touched.add((session.session_key, ex.turn))
        for u in mined.unanswered:
            rows.append(_row(session.id, u.turn, u.lang, u.question, "", u.reason))
        result.exchanges += len(mined.exchanges)
        result.unanswered += len(mined.unanswered)
        session.mined = True
    db.flush()
    for start in range(0, len(rows), _CHUNK):
        db.execute(insert(ChatExchange), rows[start : start + _CHUNK])

    exchanges: list[Exchange] = []
    unanswered: list[Unanswered] = []
    known_handoffs = handoff_fingerprints(db)
    for stored, key, sku, turns in db.execute(
        select(ChatExchange, ChatSession.session_key, ChatSession.sku, ChatSession.turns)
        .join(ChatSession, ChatSession.id == ChatExchange.session_id)
        .order_by(ChatSession.session_key, ChatExchange.turn_index)
    ).tuples():
        if stored.kind == "qa":
            # The table stores the (rewritten) question; its source turns and scope are re-read from the session.
            turn = turns[stored.turn_index] if turns and stored.turn_index < len(turns) else {}
            original, context_turns, scope = exchange_context(turns, stored.turn_index, sku) if turn else ("", [], "general")
            exchanges.append(
                Exchange(key, stored.turn_index, stored.lang, stored.question, stored.answer, turn.get("sku") or sku, original, context_turns, scope)
            )
        elif fingerprint(stored.question) not in known_handoffs:  # a reviewer said no entry answers it: not a gap
            unanswered.append(Unanswered(key, stored.turn_index, stored.lang, stored.question, stored.kind))
    try:
        dense = _dense(embedder, [ex.question for ex in exchanges], settings)
        dense_unanswered = _dense(embedder, [u.question for u in unanswered], settings)
    except ConfigError as exc:  # the model loads on first use: this is where a broken one fails
        log.warning("chat mining groups by lexical similarity only: %s", exc)
        embedder, dense, dense_unanswered = None, None, None
    catalogue = product_skus(db)
    for group in group_exchanges(exchanges, dense):
        if not any((ex.session, ex.turn) in touched for ex in group):
            continue
        proposal = group_proposal(group, settings.min_chat_support, catalogue=catalogue)
        if proposal is not None:
            result.proposals.append(proposal)
    result.proposals.sort(key=rank_key)
    gaps = group_gaps(unanswered, dense_unanswered, background=[ex.question for ex in exchanges])
    result.gaps = refresh_gaps(db, settings, gaps, embedder)
    return result


def product_skus(db: Session) -> set[str]:
    """The store's catalogue: keys of the current product records (a chat's SKU names a known product)."""
    return set(db.scalars(select(SourceRecord.key).where(SourceRecord.kind == "product", SourceRecord.is_current.is_(True), SourceRecord.deleted.is_(False))))


def _row(session_id: int, turn: int, lang: str, question: str, answer: str, kind: str) -> dict[str, Any]:
    return dict(session_id=session_id, turn_index=turn, lang=lang, question=question, answer=answer, question_key=fingerprint(question), kind=kind)


def _dense(embedder: Any | None, texts: Sequence[str], settings: Settings) -> DenseView | None:
    if embedder is None or not texts:
        return None
    return dense_view(embedder, texts, settings.dense_weight)


def refresh_gaps(db: Session, settings: Settings, gaps: list[Gap], embedder: Any | None) -> int:
    """Replace the chat-mined rows of ``chat_gaps`` with ``gaps``, each answered from the active release; returns the open count.

    The bot's own handoff topics (``origin == 'bot'``, kbops/review/gaps.py) share the table and are kept."""
    coverage = gap_coverage(settings, [g.question for g in gaps], embedder)
    db.execute(delete(ChatGap).where(ChatGap.origin == "chat"))
    now = utcnow()
    rows = []
    for gap, cov in zip(gaps, coverage):
        rows.append(
            dict(
                topic_key=gap.topic_key, lang=gap.lang, question=gap.question, alt_questions=gap.alt_questions,
                support=gap.support, reasons=gap.reasons, evidence=gap.evidence, kb_score=round(cov.confidence, 4),
                status="covered" if cov.covered else "open", updated_at=now,
            )
        )
    for start in range(0, len(rows), _CHUNK):
        db.execute(insert(ChatGap), rows[start : start + _CHUNK])
    return sum(1 for r in rows if r["status"] == "open")


@dataclass(frozen=True)
class Coverage:
    """Whether the bot answers a gap topic's question now, and how sure it is (its calibrated confidence, 0 when no entry fits)."""

    covered: bool
    confidence: float


def gap_coverage(settings: Settings, questions: Sequence[str], embedder: Any | None) -> list[Coverage]:
    """Each question as the bot answers it from the active release (:func:`kbops.index.preview.answer_active`).

    Covered means the customer gets the knowledge: the bot answers, or asks
    which product they mean (``clarify``: every option answers). Not the
    approved entries' resemblance to the question: an entry approved and not
    published yet, or one the bot's calibrated confidence does not trust,
    leaves the topic open — the gap list is what customers still miss. When
    the bot's answer cannot be computed (no active release, no embedding
    model, a release built with another model), every topic stays open,
    with a warning: never "covered" on a guess.
    """
    if not questions:
        return []
    answers = None
    if embedder is None:
        log.warning("gap topics are left open: no embedding model to answer them as the bot does")
    else:
        try:
            answers = answer_active(settings, embedder, list(questions))
        except (ConfigError, ReleaseError) as exc:
            log.warning("gap topics are left open: the active release cannot answer them (%s)", exc)
    if answers is None:
        return [Coverage(False, 0.0)] * len(questions)
    return [Coverage(not a.handoff or a.reason == "clarify", a.confidence or 0.0) for a in answers]


def list_gaps(db: Session, *, status: str | None = "open", lang: str | None = None, limit: int = 50) -> list[ChatGap]:
    """Unanswered topics, most-asked first (for ``kbops review gaps``)."""
    query = select(ChatGap)
    if status:
        query = query.where(ChatGap.status == status)
    if lang:
        query = query.where(ChatGap.lang == lang)
    return list(db.scalars(query.order_by(ChatGap.support.desc(), ChatGap.id).limit(limit)))
