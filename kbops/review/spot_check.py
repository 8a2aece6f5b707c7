"""Spot checks: a random sample of the bot's answers, each labelled right or wrong by a reviewer.

The bot's confidence is calibrated on a store's labelled customers' questions
(golden questions, kbops/index/calibration.py) once a language has enough.
Labels of its misses alone — the gap topics a reviewer labels
(kbops/review/gaps.py) — are a biased sample: they never hold a question it
answered confidently, and a mapping fitted on them does not reach its target on
them (bench/bench_reviewed_handoffs.py). A random sample of what it *answered*,
checked by a reviewer, is the other half: how often its answers are right, at
every confidence.

:func:`sample_answers` draws logged answers (``query_log``, stored scrubbed) of
the last days, at random in proportion to how often each question was asked
(a sample of traffic, not of distinct questions), leaving out questions that
already have a golden label. :func:`label_answer` turns a reviewer's verdict
into a golden question: right — the entry it answered with; wrong — the entry
that answers it, or a handoff. The reviewer's latest word on a question wins
(:func:`kbops.index.golden.relabel`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kbops.errors import QueryNotFound, ReviewError
from kbops.index.golden import HANDOFF, MAX_QUESTION_CHARS, relabel
from kbops.kb.audit import record_audit
from kbops.review.accounts import require_reviewer
from kbops.review.gaps import answering_entry
from kbops.schema import GoldenQuestion, KbEntry, QueryLogEntry, utcnow
from kbops.text import detect_lang, fingerprint

#: Answers drawn by default: enough for a reviewer's sitting.
SAMPLE = 20
#: Days of query log drawn from by default.
DAYS = 7
#: At most this many logged answers are read per draw (newest first).
MAX_ROWS = 50_000


@dataclass
class SpotItem:
    """One logged answer to check: the question as logged (scrubbed), the entry it was answered with and how sure
    the bot was."""

    query_id: int
    at: datetime
    lang: str
    question: str
    entry_key: str | None
    answer: str | None
    confidence: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AnswerLabel:
    """What :func:`label_answer` did: the question's golden outcome (an entry key, or ``handoff``), and whether it
    was new."""

    query_id: int
    question: str
    verdict: str
    outcome: str
    golden_added: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_answers(
    db: Session, *, count: int = SAMPLE, days: int = DAYS, lang: str | None = None, now: datetime | None = None, seed: int | None = None
) -> list[SpotItem]:
    """Up to ``count`` of the bot's answers of the last ``days``, drawn at random by asks, one per question, none of a
    question already labelled (golden). ``seed`` makes a draw repeatable."""
    now = now or utcnow()
    rows = list(
        db.execute(
            select(QueryLogEntry.id, QueryLogEntry.at, QueryLogEntry.question, QueryLogEntry.entry_id, QueryLogEntry.confidence)
            .where(QueryLogEntry.at >= now - timedelta(days=days), QueryLogEntry.handoff.is_(False), QueryLogEntry.entry_id.is_not(None))
            .order_by(QueryLogEntry.id.desc())
            .limit(MAX_ROWS)
        ).tuples()
    )
    labelled = {fingerprint(q) for q in db.scalars(select(GoldenQuestion.question))}
    random.Random(seed).shuffle(rows)
    picked: list[tuple[int, datetime, str, int | None, float | None]] = []
    seen: set[str] = set()
    for row in rows:
        question = row[2] or ""
        fp = fingerprint(question)
        if fp in seen or fp in labelled or (lang and detect_lang(question) != lang) or len(question) > MAX_QUESTION_CHARS:
            continue
        seen.add(fp)
        picked.append(row)
        if len(picked) >= count:
            break
    entries = {e.id: e for e in db.scalars(select(KbEntry).where(KbEntry.id.in_({r[3] for r in picked if r[3] is not None})))}
    out = []
    for qid, at, question, eid, confidence in picked:
        entry = entries.get(eid) if eid is not None else None
        out.append(SpotItem(qid, at, detect_lang(question), question, entry.entry_key if entry else None, entry.answer if entry else None, confidence))
    return out


def label_answer(
    db: Session, query_id: int, *, right: bool, entry_key: str | None = None, by: str, door: str = "cli"
) -> AnswerLabel:
    """A reviewer's verdict on logged answer ``query_id``, kept as a golden question, in the caller's transaction.

    ``right``: the entry it was answered with answers it. Otherwise ``entry_key``
    names the entry that does (active, in the question's language), or None: no
    entry should — the bot must hand it off."""
    name = require_reviewer(db, by, "checking an answer", query_id=query_id)
    row = db.get(QueryLogEntry, query_id)
    if row is None:
        raise QueryNotFound(f"no logged query {query_id}; see `kbops review answers`", query_id=query_id)
    if right and entry_key:
        raise ReviewError("an answer is either right or answered by another entry: pass --right or --entry KEY, not both", query_id=query_id)
    if right:
        entry = db.get(KbEntry, row.entry_id) if row.entry_id is not None else None
        if row.handoff or entry is None:
            raise ReviewError(f"query {query_id} was handed off, not answered; label it with --entry KEY or --handoff", query_id=query_id)
        if entry.status != "active":
            raise ReviewError(f"query {query_id} was answered with {entry.entry_key}, which is {entry.status} now; label it with --entry KEY",
                              query_id=query_id, entry_key=entry.entry_key)
        outcome, verdict = entry.entry_key, "right"
    elif entry_key:
        entry = answering_entry(db, entry_key.strip(), detect_lang(row.question), f"query {query_id}", query_id=query_id)
        outcome, verdict = entry.entry_key, "wrong"
    else:
        outcome, verdict = HANDOFF, "wrong"
    added = relabel(db, [row.question], outcome, by=name)
    record_audit(db, actor=name, door=door, action="answer_label", entry_id=row.entry_id,
                 after={"query_id": query_id, "verdict": verdict, "entry_key": outcome}, note=f"logged answer {query_id} checked: {verdict}")
    db.flush()
    return AnswerLabel(query_id, row.question, verdict, outcome, added)
