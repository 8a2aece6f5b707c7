"""The gaps page (/review/gaps): bot handoffs listed as topics, answered with a form that goes through the gate."""

from __future__ import annotations

from sqlalchemy import select

from kbops.db import session_scope
from kbops.review import accounts
from kbops.schema import Candidate, ChatGap, QueryLogEntry, ReviewItem
from tests.serve.test_review_web import PASSWORD, client_for, csrf_of


def test_a_reviewer_regroups_handoffs_and_answers_a_gap_from_the_page(settings):
    with session_scope(settings) as db:
        accounts.add_reviewer(db, "wang", PASSWORD)
        for q in ("Do you offer gift wrapping?", "do you offer gift wrapping", "Can I get gift wrapping?"):
            db.add(QueryLogEntry(question=q, handoff=True, reason="no_match", score=0.1, release_id="r1"))
    client = client_for(settings, "wang")
    page = client.get("/review/gaps")
    assert page.status_code == 200 and "No open gap topics" in page.text
    r = client.post("/review/gaps/refresh", data={"csrf": csrf_of(page.text)}, follow_redirects=True)
    assert "3 question(s), 1 open" in r.text and "asked 3×" in r.text
    with session_scope(settings) as db:
        gap_id = db.scalar(select(ChatGap.id).where(ChatGap.origin == "bot"))
    assert f'id="gap-{gap_id}"' in r.text
    refused = client.post(f"/review/gaps/{gap_id}/answer", data={"csrf": csrf_of(r.text), "answer": "  "}, follow_redirects=False)
    assert refused.status_code == 400 and "write the answer" in refused.text
    done = client.post(f"/review/gaps/{gap_id}/answer", data={"csrf": csrf_of(r.text), "question": "Do you offer gift wrapping?",
                                                              "answer": "Yes: choose gift wrapping at checkout."}, follow_redirects=True)
    assert "passed the gate and is queued" in done.text
    with session_scope(settings) as db:
        cand = db.scalar(select(Candidate).where(Candidate.origin == "gap"))
        item = db.scalar(select(ReviewItem).where(ReviewItem.candidate_id == cand.id))
        assert item.state == "open" and db.get(ChatGap, gap_id).answer_key == cand.entry_key
    assert "gift wrapping" in client.get("/review/").text  # waits in the queue like any proposal
    assert client.post("/review/gaps/99999/answer", data={"csrf": csrf_of(r.text), "answer": "x"}).status_code == 404


def test_a_reviewer_labels_gaps_from_the_page_out_of_scope_or_answered_by_an_entry(settings):
    from kbops.index.golden import golden_pairs
    from kbops.schema import KbEntry

    with session_scope(settings) as db:
        accounts.add_reviewer(db, "wang", PASSWORD)
        db.add(ChatGap(topic_key="bot:gap:en:mars", origin="bot", lang="en", question="Do you ship to Mars?", alt_questions=["Can I get it on Mars?"], support=2))
        db.add(ChatGap(topic_key="bot:gap:en:ship", origin="bot", lang="en", question="How long does shipping take?", support=1))
        db.add(KbEntry(entry_key="import:delivery", origin="import", kind="faq", lang="en", question="How long is delivery?", answer="2-3 days.",
                       fingerprint="x", approved_by="wang", approved_via="cli"))
        mars, ship = (db.scalar(select(ChatGap.id).where(ChatGap.topic_key == k)) for k in ("bot:gap:en:mars", "bot:gap:en:ship"))
    client = client_for(settings, "wang")
    page = client.get("/review/gaps")
    assert f'action="/review/gaps/{mars}/label"' in page.text and "Out of scope" in page.text
    csrf = csrf_of(page.text)
    assert client.post(f"/review/gaps/{mars}/label", data={"csrf": csrf, "outcome": "maybe"}).status_code == 400
    missing = client.post(f"/review/gaps/{ship}/label", data={"csrf": csrf, "outcome": "entry", "entry_key": "import:nope"})
    assert missing.status_code == 400 and "no active entry" in missing.text
    gone = client.post(f"/review/gaps/{mars}/label", data={"csrf": csrf, "outcome": "handoff"}, follow_redirects=True)
    assert gone.status_code == 200 and f"gap {mars} dismissed: 2 phrasing(s)" in gone.text and f'id="gap-{mars}"' not in gone.text
    done = client.post(f"/review/gaps/{ship}/label", data={"csrf": csrf, "outcome": "entry", "entry_key": "import:delivery", "teach": "1"},
                       follow_redirects=True)
    assert "labelled as answered by import:delivery" in done.text
    with session_scope(settings) as db:
        assert sorted(golden_pairs(db)) == [("Can I get it on Mars?", None), ("Do you ship to Mars?", None), ("How long does shipping take?", "import:delivery")]
        assert db.get(ChatGap, mars).status == "dismissed"
        entry = db.scalar(select(KbEntry).where(KbEntry.entry_key == "import:delivery"))
        assert entry.alt_questions == ["How long does shipping take?"] == entry.reviewer_questions
    assert "a reviewer said no entry answers it" in client.get("/review/gaps?show=all").text


def test_a_card_says_how_many_logged_questions_it_would_answer(settings):
    from tests.serve.test_review_web import make_item

    with session_scope(settings) as db:
        accounts.add_reviewer(db, "wang", PASSWORD)
        for _ in range(3):
            db.add(QueryLogEntry(question="Do you offer gift wrapping?", handoff=True, reason="no_match", score=0.1, release_id="r1"))
        db.add(QueryLogEntry(question="How long is delivery?", handoff=False, score=0.9, release_id="r1", entry_id=1))
    item = make_item(settings, question="Do you offer gift wrapping?", answer="Yes, at checkout.", lang="en")
    other = make_item(settings, question="Is the warranty transferable?", answer="No.", lang="en")
    page = client_for(settings, "wang").get("/review/").text
    card = page.split(f'id="item-{item}"')[1].split("</article>")[0]
    assert "would answer <strong>3</strong> questions customers asked last week (3 handed off today)" in card
    assert "would answer" not in page.split(f'id="item-{other}"')[1].split("</article>")[0]


def test_mined_checks_and_context_turns_are_shown_escaped_on_the_card(settings):
    from tests.serve.test_review_web import XSS, make_item

    with session_scope(settings) as db:
        accounts.add_reviewer(db, "wang", PASSWORD)
    item = make_item(settings, evidence={"checks": ["self-contained", "3 sessions agree", XSS], "context_turns": ["我买的电饭煲", "内胆涂层掉了"]})
    page = client_for(settings, "wang").get(f"/review/items/{item}").text
    assert "✓ self-contained" in page and "✓ 3 sessions agree" in page and "内胆涂层掉了" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "checks" not in page.split('class="other"')[-1] if 'class="other"' in page else True


def test_the_decided_tab_says_when_an_approval_went_live(settings, embedder):
    from kbops.pipeline import decide, publish
    from tests.serve.test_review_web import make_item

    with session_scope(settings) as db:
        accounts.add_reviewer(db, "wang", PASSWORD)
    item = make_item(settings, question="Do you offer gift wrapping?", answer="Yes: choose gift wrapping at checkout.", lang="en")
    decide(settings, [item], "approve", by="wang")
    client = client_for(settings, "wang")
    row = client.get("/review/decided").text.split(f">#{item}<")[1].split("</tr>")[0]
    assert "waits for the next publish" in row
    result = publish(settings)
    row = client.get("/review/decided").text.split(f">#{item}<")[1].split("</tr>")[0]
    assert "live since" in row and result["activate"]["release_id"] in row
