"""The spot-check page (/review/answers): a random sample of the bot's answers, each verdict a golden question."""

from __future__ import annotations

from sqlalchemy import select

from kbops.db import session_scope
from kbops.index.golden import golden_pairs
from kbops.review import accounts
from kbops.schema import KbEntry, QueryLogEntry
from tests.serve.test_review_web import PASSWORD, XSS, client_for, csrf_of


def test_a_reviewer_checks_answers_from_the_page(settings):
    with session_scope(settings) as db:
        accounts.add_reviewer(db, "wang", PASSWORD)
        for key, q in (("import:delivery", "How long is delivery?"), ("import:returns", "Can I return it?")):
            db.add(KbEntry(entry_key=key, origin="import", kind="faq", lang="en", question=q, answer=f"About {key}.", fingerprint=key,
                           approved_by="wang", approved_via="cli"))
        db.flush()
        delivery = db.scalar(select(KbEntry.id).where(KbEntry.entry_key == "import:delivery"))
        for q in ("how long does shipping take", "can I send it back", XSS):
            db.add(QueryLogEntry(question=q, entry_id=delivery, handoff=False, score=0.8, confidence=0.9))
        ids = dict(db.execute(select(QueryLogEntry.question, QueryLogEntry.id)).tuples().all())
    client = client_for(settings, "wang")
    page = client.get("/review/answers")
    assert page.status_code == 200 and "Spot check" in page.text and "how long does shipping take" in page.text
    assert XSS not in page.text, "a customer's question is shown escaped"
    csrf = csrf_of(page.text)
    assert client.post(f"/review/answers/{ids['can I send it back']}/label", data={"csrf": csrf, "verdict": "maybe"}).status_code == 400
    assert client.post("/review/answers/99999/label", data={"csrf": csrf, "verdict": "right"}).status_code == 404
    done = client.post(f"/review/answers/{ids['how long does shipping take']}/label", data={"csrf": csrf, "verdict": "right"}, follow_redirects=True)
    assert "right; golden question → import:delivery" in done.text
    client.post(f"/review/answers/{ids['can I send it back']}/label", data={"csrf": csrf, "verdict": "entry", "entry_key": "import:returns"})
    client.post(f"/review/answers/{ids[XSS]}/label", data={"csrf": csrf, "verdict": "handoff"})
    with session_scope(settings) as db:
        assert sorted(golden_pairs(db), key=str) == sorted(
            [("how long does shipping take", "import:delivery"), ("can I send it back", "import:returns"), (XSS, None)], key=str)
    assert "No answers to check" in client.get("/review/answers").text
