"""Bot gaps: the bot's own handoffs become gap topics a reviewer can answer.

The most direct signal of missing knowledge is a question the bot handed off
(or answered with low confidence). :func:`refresh_bot_gaps` reads those from
``query_log`` (stored scrubbed), groups them exactly as chat gaps are grouped
(:func:`kbops.extract.chats.group_gaps`, the one similarity of
:mod:`kbops.index.similarity`), asks each topic's question of the release the bot
serves, as mining does (:func:`kbops.extract.mining.gap_coverage`), and keeps
them in ``chat_gaps`` with ``origin = 'bot'``: ``open`` while the bot cannot
answer them, ``covered`` once it does (the next refresh after a publish that
answers them; approving the answer is not enough).

A reviewer answers a topic with :func:`answer_gap`: the entry is proposed as a
candidate (origin ``gap``) and goes through the normal gate and routing, so it
waits for review like any other proposal. The gap remembers the entry key
(``answer_key``).

Or a reviewer says what the topic's questions are with :func:`label_gap`: an
existing entry answers them (the KB knew; the bot missed it), or none should be
answered (out of scope: the bot was right to hand off). Either way they become
golden questions — customers' own phrasings with a known outcome, which the
golden gate keeps and calibration fits on (kbops/index/calibration.py): the
store's reviewed handoffs. Asked to, an entry's label also teaches the entry
those phrasings (its alternates, kept across its revisions); a handoff label
dismisses the topic, and labelled handoffs are no gap again.

Ranking (:func:`ranked_gaps`): frequency × recency, ``support × 0.5^(age / HALF_LIFE_DAYS)``
with age from the topic's ``last_seen`` (chat topics: their refresh time).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.errors import ConfigError, GapNotFound, ReviewError
from kbops.extract.chats import Unanswered, group_gaps
from kbops.extract.mining import Coverage, gap_coverage
from kbops.index import similarity
from kbops.index.golden import HANDOFF, MAX_QUESTION_CHARS, handoff_fingerprints, relabel
from kbops.kb.audit import record_audit
from kbops.kb.candidates import Proposal, propose
from kbops.kb.entries import add_reviewer_questions, forget_reviewer_questions, new_phrasings
from kbops.kb.routing import route_candidates
from kbops.review.accounts import require_reviewer
from kbops.schema import Candidate, ChatGap, KbEntry, QueryLogEntry, utcnow
from kbops.text import detect_lang, fingerprint
from kbops.validate import validate_candidates

log = logging.getLogger("kbops.review")

#: Days of query log read for bot gaps.
BOT_GAP_DAYS = 30
#: An answered query whose calibrated confidence is below this counts as low-confidence: the bot
#: answered although it reckoned at least a one-in-four chance of being wrong. The confidence is a
#: probability (calibrated per language), so one bar means the same in both languages.
LOW_CONFIDENCE = 0.75
#: Rows logged before the confidence was (migration 0011): answered with a raw score below
#: ``handoff_threshold + LOW_CONFIDENCE_MARGIN`` counts as low-confidence.
LOW_CONFIDENCE_MARGIN = 0.05
#: Recency half-life of the gap ranking, in days.
HALF_LIFE_DAYS = 7.0
#: Handoff reasons that say nothing about missing knowledge (the bot was catching up with a release).
_NOT_A_GAP = {"updating"}
#: At most this many logged queries are grouped per refresh (newest first).
MAX_QUERIES = 20_000
#: The status of a topic a reviewer labelled out of scope (:func:`label_gap` with no entry).
DISMISSED = "dismissed"


@dataclass
class BotGapResult:
    queries: int = 0
    topics: int = 0
    open: int = 0
    covered: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(query_id: int) -> str:
    # group_gaps sorts a topic's members by this key: zero-padded, the oldest query comes first,
    # so a topic keeps its key (built on its first member) while newer questions join it.
    return f"q{query_id:012d}"


def refresh_bot_gaps(db: Session, settings: Settings, embedder: Any | None, *, days: int = BOT_GAP_DAYS, now: datetime | None = None) -> BotGapResult:
    """Regroup the bot's handed-off and low-confidence queries of the last ``days`` into ``origin='bot'`` gaps.

    ``embedder``: the shared embedder, or None for lexical grouping only (also the
    fallback when its model cannot be loaded). A topic a reviewer answered
    (``answer_key`` set) is kept even when its questions left the window, so
    its coverage can still be seen."""
    now = now or utcnow()
    result = BotGapResult()
    rows = list(
        db.execute(
            select(
                QueryLogEntry.id, QueryLogEntry.at, QueryLogEntry.question, QueryLogEntry.handoff, QueryLogEntry.reason,
                QueryLogEntry.score, QueryLogEntry.confidence,
            )
            .where(QueryLogEntry.at >= now - timedelta(days=days))
            .order_by(QueryLogEntry.id.desc())
            .limit(MAX_QUERIES)
        ).tuples()
    )
    low = settings.handoff_threshold + LOW_CONFIDENCE_MARGIN
    known_handoffs = handoff_fingerprints(db)  # a reviewer said no entry answers them: known, not missing
    items: list[Unanswered] = []
    seen_at: dict[str, datetime] = {}
    answered: list[str] = []
    for qid, at, question, handoff, reason, score, confidence in reversed(rows):
        lang = detect_lang(question or "")
        if lang == "und" or (handoff and fingerprint(question or "") in known_handoffs):  # answered, it is the bot's mistake
            continue
        if handoff and reason not in _NOT_A_GAP:
            items.append(Unanswered(_key(qid), 0, lang, question, reason or "no_match"))
        elif not handoff and (confidence < LOW_CONFIDENCE if confidence is not None else (score is None or score < low)):
            items.append(Unanswered(_key(qid), 0, lang, question, "low_confidence"))
        else:
            answered.append(question)
            continue
        seen_at[question] = max(at, seen_at.get(question, at))
    result.queries = len(items)
    dense = None
    if embedder is not None and items:
        try:
            dense = similarity.dense_view(embedder, [u.question for u in items], settings.dense_weight)
        except ConfigError as exc:
            log.warning("bot gaps group by lexical similarity only: %s", exc)
            embedder = None
    gaps = group_gaps(items, dense, background=answered)
    existing = {g.topic_key: g for g in db.scalars(select(ChatGap).where(ChatGap.origin == "bot"))}
    grouped = {f"bot:{g.topic_key}" for g in gaps}
    # Topics a reviewer answered or dismissed are kept even when their questions left the window (or, labelled
    # handoffs, no longer count): the list under --all says what became of them.
    keep = grouped | {k for k, g in existing.items() if g.answer_key or g.status == DISMISSED}
    db.execute(delete(ChatGap).where(ChatGap.origin == "bot", ChatGap.topic_key.not_in(keep)))
    kept_answered = [g for k, g in existing.items() if g.answer_key and g.status != DISMISSED and k not in grouped]
    coverage = gap_coverage(settings, [g.question for g in gaps] + [g.question for g in kept_answered], embedder)
    for gap, cov in zip(gaps, coverage):
        key = f"bot:{gap.topic_key}"
        row = existing.get(key) or ChatGap(topic_key=key, origin="bot", answer_key=None)
        asked = [seen_at[q] for q in [gap.question, *gap.alt_questions, *(e["question"] for e in gap.evidence)] if q in seen_at]
        row.lang, row.question, row.alt_questions, row.support = gap.lang, gap.question, gap.alt_questions, gap.support
        row.reasons, row.evidence = gap.reasons, [{"query": e["session"], "question": e["question"], "reason": e["reason"]} for e in gap.evidence]
        row.last_seen = max(asked) if asked else now
        _score(row, cov, now)
        db.add(row)
    for row, cov in zip(kept_answered, coverage[len(gaps) :]):
        _score(row, cov, now)
    db.flush()
    statuses = list(db.scalars(select(ChatGap.status).where(ChatGap.origin == "bot")))
    result.topics, result.open, result.covered = len(statuses), statuses.count("open"), statuses.count("covered")
    return result


def _score(row: ChatGap, coverage: Coverage, now: datetime) -> None:
    row.kb_score = round(coverage.confidence, 4)
    if row.status != DISMISSED:  # a reviewer's word, not the bot's: it stays
        row.status = "covered" if coverage.covered else "open"
    row.updated_at = now


def ranked_gaps(
    db: Session, *, origin: str | None = None, status: str | None = "open", lang: str | None = None, now: datetime | None = None, limit: int = 50
) -> list[tuple[ChatGap, float]]:
    """Gap topics with their rank, highest first: ``support × 0.5^(days since last asked / HALF_LIFE_DAYS)``."""
    now = now or utcnow()
    query = select(ChatGap)
    if origin:
        query = query.where(ChatGap.origin == origin)
    if status:
        query = query.where(ChatGap.status == status)
    if lang:
        query = query.where(ChatGap.lang == lang)
    ranked = []
    for gap in db.scalars(query):
        seen = gap.last_seen or gap.updated_at
        age = max((now - seen).total_seconds() / 86400, 0.0) if seen else 0.0
        ranked.append((gap, gap.support * 0.5 ** (age / HALF_LIFE_DAYS)))
    ranked.sort(key=lambda gr: (-gr[1], gr[0].id))
    return ranked[:limit]


def get_gap(db: Session, gap_id: int) -> ChatGap:
    gap = db.get(ChatGap, gap_id)
    if gap is None:
        raise GapNotFound(f"no gap topic {gap_id}; see `kbops review gaps`", gap_id=gap_id)
    return gap


def answer_gap(
    db: Session, settings: Settings, embedder: Any, gap_id: int, *, question: str | None, answer: str, by: str, door: str = "cli"
) -> Candidate:
    """Write an entry that answers gap ``gap_id``: proposed as a candidate, through the gate and routing, in the caller's transaction.

    ``question`` defaults to the topic's question; the topic's other phrasings
    become alternate questions. Returns the candidate (``queued`` for review,
    or ``invalid`` with the gate's reasons)."""
    if not (by or "").strip():
        raise ReviewError("answering a gap needs your name: pass --by NAME")
    if not (answer or "").strip():
        raise ReviewError("answering a gap needs the answer text: pass --answer TEXT", gap_id=gap_id)
    gap = get_gap(db, gap_id)
    text = (question or "").strip() or gap.question
    alternates = [q for q in [gap.question, *(gap.alt_questions or [])] if q != text][:8]
    entry_key = gap.answer_key or f"faq/{gap.topic_key}"
    candidate = propose(
        db,
        Proposal(entry_key=entry_key, origin="gap", kind="faq", lang=gap.lang, question=text, answer=answer.strip(),
                 alt_questions=alternates, support=max(gap.support, 1)),
        run_id=None,
    )
    if candidate is None:
        raise ReviewError(f"gap {gap_id} was already answered with exactly this text (entry {entry_key})", gap_id=gap_id)
    gap.answer_key = entry_key
    record_audit(db, actor=by.strip(), door=door, action="gap_answer", after={"gap": gap.topic_key, "entry_key": entry_key, "question": text},
                 note=f"gap {gap_id} ({gap.origin}, asked {gap.support}x)")
    db.flush()
    validate_candidates(db, settings, embedder, candidate_ids=[candidate.id])
    if candidate.status == "valid":
        route_candidates(db, settings, candidate_ids=[candidate.id])
    return candidate


@dataclass
class GapLabel:
    """What :func:`label_gap` did: the golden questions it added (of the topic's phrasings), the phrasings the entry
    was taught (an entry's label), and the topic's status after it."""

    gap_id: int
    entry_key: str | None
    phrasings: int
    golden_added: int
    taught: list[str]
    status: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def answering_entry(db: Session, key: str, lang: str, asked: str, **data: Any) -> KbEntry:
    """The entry a reviewer says answers a question (``asked``: what is labelled, for the error): active, and in the
    question's language (``lang``; ``und`` fits any) — what a golden question may expect. Shared by gap labels and
    spot checks (kbops/review/spot_check.py)."""
    target = db.scalar(select(KbEntry).where(KbEntry.entry_key == key))
    if target is None or target.status != "active":
        raise ReviewError(
            f"no active entry {key!r}" + (f" (it is {target.status})" if target is not None else "")
            + "; pick one from `kbops export FILE` or the review page, or label it --handoff",
            entry_key=key, **data,
        )
    if lang not in (target.lang, "und"):
        raise ReviewError(f"{asked} is asked in {lang} but entry {key!r} answers in {target.lang}; pick an entry of the same language",
                          entry_key=key, **data)
    return target


def topic_phrasings(gap: ChatGap) -> list[str]:
    """The customers' phrasings of a topic (its question, the others grouped with it, its examples), each once."""
    return new_phrasings((), [gap.question, *(gap.alt_questions or []), *(e.get("question", "") for e in gap.evidence or [])])


def label_gap(db: Session, gap_id: int, *, entry_key: str | None, by: str, door: str = "cli", teach: bool = False) -> GapLabel:
    """Say what gap ``gap_id``'s questions are, in the caller's transaction: ``entry_key`` answers them, or (None)
    no entry should — the bot must hand them off.

    The topic's phrasings become golden questions with that outcome (the golden
    gate keeps it; calibration fits on them once a language has enough). With an
    entry (active, in the topic's language), the topic remembers it; with
    ``teach`` the phrasings also join the entry's alternate questions as a
    reviewer's phrasings (kept across its revisions), so the next publish answers
    them and the topic becomes ``covered``. Not by default: measured
    (bench/bench_reviewed_handoffs.py), taught customers' phrasings drew other
    questions to the taught entries on both near-neighbour help desks (README,
    "Reviewed handoffs"). Without an entry, the topic is ``dismissed`` and its
    questions are no gap while the bot hands them off. ``by`` must be a reviewer
    account once the KB has any."""
    name = require_reviewer(db, by, "labelling a gap", gap_id=gap_id)
    gap = get_gap(db, gap_id)
    phrasings = [q for q in topic_phrasings(gap) if len(q) <= MAX_QUESTION_CHARS]  # a golden question's limit
    key = (entry_key or "").strip() or None
    target = answering_entry(db, key, gap.lang, f"gap {gap_id}", gap_id=gap_id) if key is not None else None
    if target is None and teach:
        raise ReviewError("only an entry can be taught a topic's phrasings: pass --entry KEY with --teach", gap_id=gap_id)
    # The reviewer's latest word on these phrasings wins: a label they gave them before (another entry, or a
    # handoff) is taken back — its golden questions and the phrasings another entry was taught.
    outcome = key or HANDOFF
    note = f"gap {gap_id} ({gap.origin}, asked {gap.support}x) is answered by {key}" if key else f"gap {gap_id} ({gap.origin}, asked {gap.support}x) is out of scope"
    forget_reviewer_questions(db, phrasings, keep_entry=target.id if target is not None else None, actor=name, door=door, note=note)
    added = relabel(db, phrasings, outcome, by=name)
    taught: list[str] = []
    if target is not None and teach:
        taught = add_reviewer_questions(db, target, phrasings, actor=name, door=door, action="gap_label", note=note)
    else:
        record_audit(db, actor=name, door=door, action="gap_label", entry_id=target.id if target is not None else None,
                     after={"gap": gap.topic_key, "entry_key": outcome, "questions": phrasings}, note=note)
    if target is not None:
        gap.answer_key = key
        if gap.status == DISMISSED:
            gap.status = "open"  # a gap until the bot answers it
    else:
        gap.answer_key = None
        gap.status = DISMISSED
    db.flush()
    return GapLabel(gap_id, key, len(phrasings), added, taught, gap.status)
