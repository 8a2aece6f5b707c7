"""Bot gaps: the bot's handoffs become gap topics, a reviewer answers one, the next publish covers it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from kbops.db import session_scope
from kbops.extract.mining import refresh_gaps
from kbops.pipeline import decide, ingest, publish
from kbops.review.gaps import answer_gap, ranked_gaps, refresh_bot_gaps
from kbops.schema import ChatGap, QueryLogEntry, ReviewItem, utcnow
from kbops.serve.query_log import log_answer
from kbops.serve.retriever import Retriever
from tests.helpers import list_items

ASKED = ["Do you offer gift wrapping?", "Do you offer gift wrapping for presents?", "do you offer gift wrapping"]


@pytest.fixture
def serving(settings, embedder):
    """The sample store synced, everything approved, published."""
    ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    publish(settings)
    return settings


def _bot_gaps(settings, status=None):
    with session_scope(settings) as db:
        return [(g, r) for g, r in ranked_gaps(db, origin="bot", status=status)]


def test_a_handoff_becomes_a_gap_topic_answered_and_covered_after_publish(serving, embedder):
    settings = serving
    bot = Retriever(settings, embedder=embedder)
    answers = [bot.search(q) for q in ASKED]
    assert all(a.handoff for a in answers), "the sample store says nothing about gift wrapping"
    for a in answers:
        log_answer(settings, a)
    log_answer(settings, bot.search("How much is the Lumi Smart Rice Cooker?"))  # answered: never a gap

    with session_scope(settings) as db:
        result = refresh_bot_gaps(db, settings, embedder)
    assert result.queries == 3 and result.open == 1
    [(gap, rank)] = _bot_gaps(settings, "open")
    assert gap.support == 3 and gap.origin == "bot" and gap.question in ASKED and gap.lang == "en"
    assert sorted(e["question"] for e in gap.evidence) == sorted(ASKED) and gap.reasons == {"no_match": 3}
    assert gap.last_seen is not None and 2.9 < rank <= 3.0

    with session_scope(settings) as db:
        cand = answer_gap(db, settings, embedder, gap.id, question=None, answer="Yes: choose gift wrapping at checkout and add a card message.", by="wang")
        assert cand.status == "queued" and cand.origin == "gap"
        item = db.scalar(select(ReviewItem).where(ReviewItem.candidate_id == cand.id))
        item_id, key = item.id, cand.entry_key
        assert db.get(ChatGap, gap.id).answer_key == key
    decide(settings, [item_id], "approve", by="lin")
    with session_scope(settings) as db:  # approved but not published yet: the bot still hands it off
        refresh_bot_gaps(db, settings, embedder)
        assert db.get(ChatGap, gap.id).status == "open"
    publish(settings)
    served = Retriever(settings, embedder=embedder).search(gap.question)
    assert not served.handoff
    with session_scope(settings) as db:
        refresh_bot_gaps(db, settings, embedder)
        row = db.get(ChatGap, gap.id)
        assert (row.status, row.answer_key) == ("covered", key) and row.kb_score == pytest.approx(served.confidence, abs=1e-4)
    assert _bot_gaps(settings, "open") == []


def test_ranking_is_frequency_times_recency(settings):
    now = utcnow()
    with session_scope(settings) as db:
        for key, support, days in (("bot:a", 4, 14), ("bot:b", 2, 0), ("bot:c", 3, 7)):
            db.add(ChatGap(topic_key=key, origin="bot", lang="en", question=key, support=support, last_seen=now - timedelta(days=days)))
    with session_scope(settings) as db:
        ranked = [(g.topic_key, round(r, 2)) for g, r in ranked_gaps(db, now=now)]
    assert ranked == [("bot:b", 2.0), ("bot:c", 1.5), ("bot:a", 1.0)]


def test_updating_handoffs_and_confident_answers_are_not_gaps(settings):
    with session_scope(settings) as db:
        db.add(QueryLogEntry(question="Do you ship to Mars?", handoff=True, reason="updating", score=None))
        db.add(QueryLogEntry(question="How long is delivery?", handoff=False, reason=None, score=0.95))
        db.add(QueryLogEntry(question="Is the warranty transferable?", handoff=False, reason=None, score=settings.handoff_threshold + 0.01))
    with session_scope(settings) as db:
        result = refresh_bot_gaps(db, settings, None)
        [gap] = db.scalars(select(ChatGap))
    assert result.queries == 1 and gap.reasons == {"low_confidence": 1} and gap.question == "Is the warranty transferable?"


def test_an_answer_the_bot_was_unsure_of_is_a_gap_by_its_confidence_not_its_raw_score(settings):
    """The bot answers by calibrated confidence: a high raw score with confidence 0.6 is a low-confidence
    answer, a raw score under ``handoff_threshold`` with confidence 0.97 is not (rows logged before
    migration 0011 have no confidence and keep the raw-score rule)."""
    with session_scope(settings) as db:
        db.add(QueryLogEntry(question="Can I get a VAT invoice?", handoff=False, reason=None, score=0.76, confidence=0.6))
        db.add(QueryLogEntry(question="电热水壶有货吗", handoff=False, reason=None, score=0.5, confidence=0.97))
        db.add(QueryLogEntry(question="Is the warranty transferable?", handoff=False, reason=None, score=0.5, confidence=None))
    with session_scope(settings) as db:
        result = refresh_bot_gaps(db, settings, None)
        gaps = sorted(g.question for g in db.scalars(select(ChatGap)))
    assert result.queries == 2 and gaps == ["Can I get a VAT invoice?", "Is the warranty transferable?"]


def test_refreshing_chat_gaps_keeps_bot_gaps(settings):
    with session_scope(settings) as db:
        db.add(ChatGap(topic_key="bot:gap:en:x", origin="bot", lang="en", question="Do you offer gift wrapping?", support=2))
    with session_scope(settings) as db:
        refresh_gaps(db, settings, [], None)
    with session_scope(settings) as db:
        assert [g.topic_key for g in db.scalars(select(ChatGap))] == ["bot:gap:en:x"]
