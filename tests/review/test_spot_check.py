"""Spot checks: a random sample of the bot's answers, labelled right or wrong, becomes golden questions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from kbops.db import session_scope
from kbops.errors import QueryNotFound, ReviewError
from kbops.index.golden import golden_pairs
from kbops.review.accounts import add_reviewer
from kbops.review.spot_check import label_answer, sample_answers
from kbops.schema import AuditEvent, KbEntry, QueryLogEntry, utcnow


@pytest.fixture
def logged(settings):
    """Two entries and a query log: answers (one asked five times), handoffs, an old answer."""
    with session_scope(settings) as db:
        for key, lang, q, a in (("import:delivery", "en", "How long is delivery?", "2-3 days."), ("import:fee", "zh", "退货要运费吗", "质量问题免运费。")):
            db.add(KbEntry(entry_key=key, origin="import", kind="faq", lang=lang, question=q, answer=a, fingerprint=key, approved_by="lin", approved_via="cli"))
        db.flush()
        ids = {e.entry_key: e.id for e in db.scalars(select(KbEntry))}
        for _ in range(5):
            db.add(QueryLogEntry(question="how long does shipping take", entry_id=ids["import:delivery"], handoff=False, score=0.8, confidence=0.9))
        db.add(QueryLogEntry(question="退货运费谁出", entry_id=ids["import:fee"], handoff=False, score=0.7, confidence=0.8))
        db.add(QueryLogEntry(question="Do you ship to Mars?", entry_id=ids["import:delivery"], handoff=True, reason="no_match", score=0.3))
        db.add(QueryLogEntry(question="is delivery free", entry_id=ids["import:delivery"], handoff=False, score=0.6, confidence=0.7,
                             at=utcnow() - timedelta(days=30)))
    return settings


def test_a_sample_holds_answers_of_the_period_one_per_question_and_none_labelled(logged):
    with session_scope(logged) as db:
        items = sample_answers(db, seed=1)
        assert sorted(i.question for i in items) == ["how long does shipping take", "退货运费谁出"]  # no handoff, nothing older than 7 days
        assert {(i.question, i.entry_key, i.lang) for i in items} >= {("退货运费谁出", "import:fee", "zh")}
        assert [i.question for i in sample_answers(db, lang="zh")] == ["退货运费谁出"]
        assert len(sample_answers(db, count=1, seed=2)) == 1
        assert sorted(i.question for i in sample_answers(db, days=60)) == ["how long does shipping take", "is delivery free", "退货运费谁出"]


def test_a_verdict_becomes_a_golden_question_and_the_latest_wins(logged):
    with session_scope(logged) as db:
        shipping = db.scalar(select(QueryLogEntry.id).where(QueryLogEntry.question == "how long does shipping take").limit(1))
        fee = db.scalar(select(QueryLogEntry.id).where(QueryLogEntry.question == "退货运费谁出"))
        right = label_answer(db, shipping, right=True, by="lin")
        assert (right.verdict, right.outcome, right.golden_added) == ("right", "import:delivery", 1)
        wrong = label_answer(db, fee, right=False, by="lin")
        assert (wrong.verdict, wrong.outcome) == ("wrong", "handoff")
    with session_scope(logged) as db:
        assert sorted(golden_pairs(db)) == [("how long does shipping take", "import:delivery"), ("退货运费谁出", None)]
        assert sample_answers(db) == [], "labelled questions are not drawn again"
        again = label_answer(db, fee, right=True, by="wang")  # a second reviewer's word replaces the first's
        assert again.outcome == "import:fee"
    with session_scope(logged) as db:
        assert sorted(golden_pairs(db)) == [("how long does shipping take", "import:delivery"), ("退货运费谁出", "import:fee")]
        assert [e.after["verdict"] for e in db.scalars(select(AuditEvent).where(AuditEvent.action == "answer_label").order_by(AuditEvent.id))] == [
            "right", "wrong", "right"]


def test_a_verdict_that_cannot_be_kept_is_refused_and_changes_nothing(logged):
    with session_scope(logged) as db:
        mars = db.scalar(select(QueryLogEntry.id).where(QueryLogEntry.question == "Do you ship to Mars?"))
        fee = db.scalar(select(QueryLogEntry.id).where(QueryLogEntry.question == "退货运费谁出"))
    cases = [
        (dict(query_id=mars, right=True, by="lin"), "was handed off"),
        (dict(query_id=fee, right=False, entry_key="import:nope", by="lin"), "no active entry 'import:nope'"),
        (dict(query_id=fee, right=False, entry_key="import:delivery", by="lin"), "asked in zh but entry"),
        (dict(query_id=fee, right=True, entry_key="import:fee", by="lin"), "not both"),
        (dict(query_id=fee, right=True, by=""), "needs your name"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ReviewError, match=message), session_scope(logged) as db:
            label_answer(db, **kwargs)
    with pytest.raises(QueryNotFound), session_scope(logged) as db:
        label_answer(db, 10_000, right=True, by="lin")
    with session_scope(logged) as db:
        add_reviewer(db, "lin", "a-long-enough-password")
    with pytest.raises(ReviewError, match="not a reviewer account"), session_scope(logged) as db:
        label_answer(db, fee, right=True, by="somebody")
    with session_scope(logged) as db:
        assert golden_pairs(db) == []
