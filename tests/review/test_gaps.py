"""Bot gaps: the bot's handoffs become gap topics, a reviewer answers or labels one, the next publish covers it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from kbops.db import session_scope
from kbops.errors import GapNotFound, ReviewError
from kbops.extract.mining import refresh_gaps
from kbops.index.golden import golden_pairs
from kbops.pipeline import decide, ingest, publish
from kbops.review.accounts import add_reviewer
from kbops.review.gaps import answer_gap, label_gap, ranked_gaps, refresh_bot_gaps, topic_phrasings
from kbops.schema import AuditEvent, ChatGap, KbEntry, QueryLogEntry, ReviewItem, utcnow
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


def _log_handoffs(settings, bot, questions):
    for q in questions:
        answer = bot.search(q)
        assert answer.handoff, f"the sample store's bot hands off {q!r}"
        log_answer(settings, answer)


def _return_shipping_entry(settings):
    """The Chinese returns policy's section that says who pays for a return's shipping."""
    with session_scope(settings) as db:
        rows = db.scalars(select(KbEntry).where(KbEntry.entry_key.startswith("policy:policies:returns.zh.md"), KbEntry.status == "active"))
        return next(e for e in rows if "运费" in e.answer)


def test_a_topic_labelled_with_an_entry_becomes_golden_questions_the_entry_learns(serving, embedder):
    """The KB knew the answer and the bot missed it: the reviewer names the entry. The topic's phrasings become
    golden questions expecting it and join its questions; after the next publish the bot answers them and the
    topic is covered."""
    settings = serving
    asked = ["退货运费谁出", "退货运费由谁出"]
    _log_handoffs(settings, Retriever(settings, embedder=embedder), asked)
    target = _return_shipping_entry(settings)
    with session_scope(settings) as db:
        refresh_bot_gaps(db, settings, embedder)
    gaps = [g for g, _ in _bot_gaps(settings, "open")]
    assert sorted(q for g in gaps for q in topic_phrasings(g)) == sorted(asked)  # one topic or two, as grouping reads them
    with session_scope(settings) as db:
        labels = [label_gap(db, g.id, entry_key=target.entry_key, by="lin", teach=True) for g in gaps]
    assert {(d.entry_key, d.status) for d in labels} == {(target.entry_key, "open")}
    assert sum(d.golden_added for d in labels) == 2 and sorted(q for d in labels for q in d.taught) == sorted(asked)
    gap = gaps[0]
    with session_scope(settings) as db:
        assert sorted(q for q, k in golden_pairs(db) if k == target.entry_key) == sorted(asked)
        entry = db.get(KbEntry, target.id)
        assert set(asked) <= set(entry.alt_questions) and sorted(entry.reviewer_questions) == sorted(asked)
        assert entry.revision == target.revision + len(gaps) and entry.answer == target.answer
        assert {db.get(ChatGap, g.id).answer_key for g in gaps} == {target.entry_key}
        events = db.scalars(select(AuditEvent).where(AuditEvent.action == "gap_label")).all()
        assert {(e.actor, e.entry_id) for e in events} == {("lin", target.id)} and len(events) == len(gaps)
    publish(settings)
    bot = Retriever(settings, embedder=embedder)
    assert all(not a.handoff and a.hits[0].entry_key == target.entry_key for a in (bot.search(q) for q in asked))
    with session_scope(settings) as db:
        refresh_bot_gaps(db, settings, embedder)
        assert {db.get(ChatGap, g.id).status for g in gaps} == {"covered"}
    with session_scope(settings) as db:  # labelling again adds nothing twice
        again = label_gap(db, gap.id, entry_key=target.entry_key, by="lin", teach=True)
    assert (again.golden_added, again.taught) == (0, [])


def test_a_topic_labelled_out_of_scope_is_dismissed_and_its_questions_are_no_gap_again(serving, embedder):
    settings = serving
    bot = Retriever(settings, embedder=embedder)
    _log_handoffs(settings, bot, ["Do you ship to Mars?", "Do you deliver to Mars?"])
    with session_scope(settings) as db:
        refresh_bot_gaps(db, settings, embedder)
    [(gap, _)] = _bot_gaps(settings, "open")
    with session_scope(settings) as db:
        done = label_gap(db, gap.id, entry_key=None, by="wang", door="web")
    assert (done.entry_key, done.golden_added, done.status, done.taught) == (None, 2, "dismissed", [])
    with session_scope(settings) as db:
        assert sorted(q for q, k in golden_pairs(db) if k is None) == ["Do you deliver to Mars?", "Do you ship to Mars?"]
    _log_handoffs(settings, bot, ["do you ship to mars", "Do you offer gift wrapping?"])  # asked again, and something new
    with session_scope(settings) as db:
        result = refresh_bot_gaps(db, settings, embedder)
    assert result.queries == 1, "the labelled questions are known handoffs, not gaps"
    assert [g.question for g, _ in _bot_gaps(settings, "open")] == ["Do you offer gift wrapping?"]
    assert [(g.id, g.status) for g, _ in _bot_gaps(settings, "dismissed")] == [(gap.id, "dismissed")]


def test_labelling_a_gap_refuses_what_it_cannot_do_and_changes_nothing(serving, embedder):
    settings = serving
    with session_scope(settings) as db:
        db.add(ChatGap(topic_key="bot:gap:zh:x", origin="bot", lang="zh", question="退货运费谁出", support=1))
        english = db.scalar(select(KbEntry.entry_key).where(KbEntry.lang == "en", KbEntry.status == "active"))
    [(gap, _)] = _bot_gaps(settings)
    cases = [
        (dict(entry_key="policy:nope", by="lin"), "no active entry 'policy:nope'"),
        (dict(entry_key=english, by="lin"), "asked in zh but entry"),
        (dict(entry_key=None, by=" "), "needs your name"),
        (dict(entry_key=None, by="lin", teach=True), "only an entry can be taught"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ReviewError, match=message), session_scope(settings) as db:
            label_gap(db, gap.id, **kwargs)
    with pytest.raises(GapNotFound), session_scope(settings) as db:
        label_gap(db, gap.id + 1000, entry_key=None, by="lin")
    with session_scope(settings) as db:
        add_reviewer(db, "lin", "a-long-enough-password", role="reviewer")
    with pytest.raises(ReviewError, match="not a reviewer account"), session_scope(settings) as db:
        label_gap(db, gap.id, entry_key=None, by="somebody")
    with session_scope(settings) as db:
        assert golden_pairs(db) == [] and db.get(ChatGap, gap.id).status == "open"


def test_a_reviewer_who_labels_a_topic_again_takes_the_earlier_label_back(serving, embedder):
    """The latest word on a topic's phrasings wins: its earlier golden questions go, and so do the phrasings an
    entry was taught (only those: what the entry asked of its own stays); a dismissed topic labelled with an
    entry is open again until a publish answers it."""
    settings = serving
    with session_scope(settings) as db:
        db.add(ChatGap(topic_key="bot:gap:zh:fee", origin="bot", lang="zh", question="退货运费谁出", alt_questions=["退货运费由谁出"], support=2))
        first, second = db.scalars(select(KbEntry).where(KbEntry.lang == "zh", KbEntry.status == "active").order_by(KbEntry.id).limit(2))
        first_id, second_id, first_alts = first.id, second.id, list(first.alt_questions)
    [(gap, _)] = _bot_gaps(settings)
    with session_scope(settings) as db:
        label_gap(db, gap.id, entry_key=first.entry_key, by="lin", teach=True)
    with session_scope(settings) as db:
        done = label_gap(db, gap.id, entry_key=None, by="wang")
        assert (done.status, done.golden_added) == ("dismissed", 2)
        assert sorted(golden_pairs(db)) == [("退货运费由谁出", None), ("退货运费谁出", None)]
        entry = db.get(KbEntry, first_id)
        assert entry.alt_questions == first_alts and entry.reviewer_questions == []
    with session_scope(settings) as db:
        done = label_gap(db, gap.id, entry_key=second.entry_key, by="lin", teach=True)
        assert done.status == "open" and db.get(ChatGap, gap.id).answer_key == second.entry_key
        assert sorted(golden_pairs(db)) == [("退货运费由谁出", second.entry_key), ("退货运费谁出", second.entry_key)]
        assert sorted(db.get(KbEntry, second_id).reviewer_questions) == ["退货运费由谁出", "退货运费谁出"]
        assert db.get(KbEntry, first_id).reviewer_questions == []


def test_a_labelled_handoff_the_bot_answers_is_a_gap_again(settings):
    """A question a reviewer said must be handed off is no gap while the bot hands it off; answered (with low
    confidence), it is the bot's mistake and is listed."""
    from kbops.index.golden import add_golden

    with session_scope(settings) as db:
        add_golden(db, [("Do you ship to Mars?", "handoff")], by="lin")
        db.add(QueryLogEntry(question="Do you ship to Mars?", handoff=True, reason="no_match", score=0.2))
    with session_scope(settings) as db:
        assert refresh_bot_gaps(db, settings, None).queries == 0
        db.add(QueryLogEntry(question="Do you ship to Mars?", handoff=False, reason=None, score=0.7, confidence=0.6))
    with session_scope(settings) as db:
        assert refresh_bot_gaps(db, settings, None).queries == 1
        assert [g.reasons for g in db.scalars(select(ChatGap))] == [{"low_confidence": 1}]


def test_an_entry_label_without_teach_changes_no_entry_and_keeps_the_topic_open(serving, embedder):
    """By default a label is the store's word, not a change to what the bot serves: golden questions, the topic's
    entry remembered, the entry as it was."""
    settings = serving
    with session_scope(settings) as db:
        db.add(ChatGap(topic_key="bot:gap:zh:fee", origin="bot", lang="zh", question="退货运费谁出", alt_questions=["退货运费由谁出"], support=2))
    target = _return_shipping_entry(settings)
    [(gap, _)] = _bot_gaps(settings)
    with session_scope(settings) as db:
        done = label_gap(db, gap.id, entry_key=target.entry_key, by="lin")
        assert (done.golden_added, done.taught, done.status) == (2, [], "open")
        entry = db.get(KbEntry, target.id)
        assert (entry.revision, entry.alt_questions, entry.reviewer_questions) == (target.revision, target.alt_questions, [])
        assert db.get(ChatGap, gap.id).answer_key == target.entry_key
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "gap_label")).one()
        assert (event.entry_id, event.after["entry_key"]) == (target.id, target.entry_key)
