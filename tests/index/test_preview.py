"""Impact preview on the sample store: figures correct by construction.

The log is built by hand: 3 asks of a gift-wrapping question today (handed off),
1 ask of another phrasing 3 days ago (handed off), 2 asks of a question the KB
answers, 1 old ask outside the window. An entry about gift wrapping must then
answer exactly the 4 gift-wrapping asks (3 of them handed off today) and
nothing else, for one item and for a whole release.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from kbops.db import session_scope
from kbops.index import release as rel
from kbops.index.preview import build_replay, item_impact, logged_queries, release_diff
from kbops.pipeline import build_release, decide, ingest, publish
from kbops.review.gaps import answer_gap, ranked_gaps, refresh_bot_gaps
from kbops.schema import QueryLogEntry, ReviewItem, utcnow
from tests.helpers import list_items

GIFT = "Do you offer gift wrapping?"
GIFT_OTHER = "do you offer gift wrapping"
PRICE = "How much is the Lumi Smart Rice Cooker?"


@pytest.fixture
def logged(settings, embedder):
    ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    publish(settings)
    now = utcnow()
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0)
    today = noon if noon <= now else now
    with session_scope(settings) as db:
        for _ in range(3):
            db.add(QueryLogEntry(question=GIFT, handoff=True, reason="no_match", score=0.2, at=today))
        db.add(QueryLogEntry(question=GIFT_OTHER, handoff=True, reason="no_match", score=0.2, at=now - timedelta(days=3)))
        for _ in range(2):
            db.add(QueryLogEntry(question=PRICE, handoff=False, score=0.95, entry_id=1, at=today))
        db.add(QueryLogEntry(question="Do you offer gift wrapping in red?", handoff=True, reason="no_match", score=0.2, at=now - timedelta(days=30)))
    return settings


def test_logged_queries_group_by_text_within_the_window(logged):
    with session_scope(logged) as db:
        q = logged_queries(db, days=7)
    rows = dict(zip(q.questions, zip(q.asks, q.handoffs, q.handoffs_today)))
    assert rows == {GIFT: (3, 3, 3), PRICE: (2, 0, 0), GIFT_OTHER: (1, 1, 0)}
    assert q.questions[0] == GIFT  # most asked first


def test_one_item_would_answer_exactly_the_gift_wrapping_asks(logged, embedder):
    with session_scope(logged) as db:
        replay = build_replay(logged_queries(db, days=7), embedder, logged)
    impact = item_impact(replay, [GIFT, "Can I get my order gift wrapped?"], embedder)
    assert (impact.would_answer, impact.questions, impact.newly_answered, impact.handed_off_today, impact.changed) == (4, 2, 4, 3, 0)
    assert [e["question"] for e in impact.examples] == [GIFT, GIFT_OTHER]
    none = item_impact(replay, ["Is the warranty transferable to a new owner?"], embedder)
    assert none.would_answer == 0 and none.examples == []
    lexical_only = item_impact(build_replay(replay.queries, None, logged), [GIFT], None)
    assert lexical_only.would_answer == 4


def test_a_release_with_the_answer_newly_answers_the_gift_wrapping_asks(logged, embedder):
    settings = logged
    with session_scope(settings) as db:
        refresh_bot_gaps(db, settings, embedder)
        [(gap, _)] = ranked_gaps(db, origin="bot")
        cand = answer_gap(db, settings, embedder, gap.id, question=GIFT, answer="Yes: choose gift wrapping at checkout.", by="wang")
        item_id = db.query(ReviewItem.id).filter(ReviewItem.candidate_id == cand.id).scalar()
    decide(settings, [item_id], "approve", by="lin")
    active_id = rel.active_release_id(settings.index_dir)
    built = build_release(settings, embedder=embedder)
    assert built.release_id != active_id
    with session_scope(settings) as db:
        queries = logged_queries(db, days=7)
    load = rel.load_release
    diff = release_diff(load(settings.index_dir, built.release_id), load(settings.index_dir, active_id), embedder, settings, queries)
    assert (diff.questions, diff.asks, diff.newly_answered, diff.changed, diff.new_handoffs, diff.unchanged) == (3, 6, 4, 0, 0, 2)
    assert [e["question"] for e in diff.examples["newly_answered"]] == [GIFT, GIFT_OTHER]
    assert diff.examples["newly_answered"][0]["after"] == "Yes: choose gift wrapping at checkout."
    assert rel.active_release_id(settings.index_dir) == active_id  # a preview activates nothing
