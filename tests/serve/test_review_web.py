"""The review page (/review): sign-in, roles, CSRF, escaping, decisions, concurrency, bad input.

Every test drives the real app (kbops.serve.api.create_app, which mounts the
page) with FastAPI's TestClient against a real KB database: SQLite, and
PostgreSQL when KBOPS_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import dataclasses
import html
import re
import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from kbops.db import session_scope
from kbops.errors import AccountError, AlreadyDecided, CandidateNotFound, ConfigError, InvalidDecision, ReviewError, ReviewItemNotFound
from kbops.review import accounts
from kbops.schema import AuditEvent, Candidate, ChatSession, KbEntry, ReviewItem, SourceRecord
from kbops.serve.api import create_app
from kbops.text import fingerprint
from tests.serve.live import LiveServer

PASSWORD = "correct horse"
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


# --- factories --------------------------------------------------------------------------


def make_item(settings, *, question="退货要多久到账？", answer="退款在审核通过后1-3个工作日原路退回。", lang="zh", origin="chat",
              kind="faq", tags=("chat",), evidence=None, priority=1.0, warnings=(), alt_questions=(), entry_key=None) -> int:
    """A queued candidate and its open review item, as routing leaves them."""
    with session_scope(settings) as db:
        n = db.query(Candidate).count() + 1
        key = entry_key or f"test:{lang}:{n}"
        cand = Candidate(entry_key=key, origin=origin, kind=kind, lang=lang, question=question, answer=answer,
                         alt_questions=list(alt_questions), tags=list(tags), evidence=evidence or {}, fingerprint=fingerprint(question),
                         content_hash=f"h{n}", status="queued")
        db.add(cand)
        db.flush()
        item = ReviewItem(candidate_id=cand.id, entry_key=key, origin=origin, kind=kind, lang=lang, question=question, answer=answer,
                          alt_questions=list(alt_questions), evidence=evidence or {}, warnings=list(warnings), priority=priority)
        db.add(item)
        db.flush()
        return item.id


def make_entry(settings, *, key="faq:zh:shipping", question="多久发货？", answer="下单后48小时内发货。", lang="zh") -> int:
    with session_scope(settings) as db:
        entry = KbEntry(entry_key=key, origin="import", kind="faq", lang=lang, question=question, answer=answer,
                        fingerprint=fingerprint(question), approved_by="lin", approved_via="cli")
        db.add(entry)
        db.flush()
        return entry.id


def account(settings, name: str) -> accounts.Account | None:
    with session_scope(settings) as db:
        return accounts.get_reviewer(db, name)


def item_row(settings, item_id) -> ReviewItem:
    with session_scope(settings) as db:
        return db.get(ReviewItem, item_id)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD):
    token = csrf_of(client.get("/review/login").text)
    return client.post("/review/login", data={"name": name, "password": password, "csrf": token}, follow_redirects=False)


@pytest.fixture
def web(settings):
    """The app, an admin 'lin' and a reviewer 'wang'."""
    with session_scope(settings) as db:
        accounts.add_reviewer(db, "lin", PASSWORD, role="admin")
        accounts.add_reviewer(db, "wang", PASSWORD)
    return settings


def client_for(settings, name: str | None = None) -> TestClient:
    client = TestClient(create_app(settings))
    if name:
        assert sign_in(client, name).status_code == 303
    return client


def decide(client: TestClient, item_id: int, action: str = "approve", **fields):
    token = csrf_of(client.get("/review/").text)
    return client.post(f"/review/items/{item_id}/decide", data={"csrf": token, "action": action, **fields}, follow_redirects=False)


# --- sign-in and roles -----------------------------------------------------------------


def test_without_a_session_every_page_redirects_to_sign_in(web):
    client = client_for(web)
    for path in ("/review/", "/review/invalid", "/review/decided", "/review/admin", "/review/items/1"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/review/login", path


def test_sign_in_sets_a_signed_httponly_lax_cookie_and_wrong_passwords_fail(web):
    client = client_for(web)
    r = sign_in(client, "lin", "wrong password")
    assert r.status_code == 401 and "wrong name or password" in r.text
    assert sign_in(client, "nobody").status_code == 401
    r = sign_in(client, "lin")
    assert r.status_code == 303 and r.headers["location"] == "/review/"
    cookie = r.headers["set-cookie"]
    assert "kbops_review=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Path=/review" in cookie
    page = client.get("/review/")
    assert page.status_code == 200 and "lin (admin)" in page.text


def test_repeated_wrong_passwords_are_throttled(web):
    client = client_for(web)
    for _ in range(5):
        assert sign_in(client, "wang", "guess-guess").status_code == 401
    r = sign_in(client, "wang")
    assert r.status_code == 429 and "too many failed sign-ins" in r.text


def test_a_tampered_or_foreign_cookie_is_not_a_session(web):
    client = client_for(web, "wang")
    value = client.cookies.get("kbops_review")
    client.cookies.clear()
    client.cookies.set("kbops_review", value)
    assert client.get("/review/", follow_redirects=False).status_code == 200  # the genuine cookie works when set this way
    body, mac = value.split(".")
    client.cookies.clear()
    client.cookies.set("kbops_review", body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac)
    assert client.get("/review/", follow_redirects=False).status_code == 303
    other = dataclasses.replace(web, review_secret_file=web.home / "another.key")
    foreign = client_for(other, "wang").cookies.get("kbops_review")
    client.cookies.clear()
    client.cookies.set("kbops_review", foreign)
    assert client.get("/review/", follow_redirects=False).status_code == 303


def test_a_new_password_or_a_removed_account_ends_the_session(web):
    client = client_for(web, "wang")
    assert client.get("/review/").status_code == 200
    with session_scope(web) as db:
        accounts.set_password(db, "wang", "battery staple")
    assert client.get("/review/", follow_redirects=False).headers["location"] == "/review/login"
    assert sign_in(client, "wang", "battery staple").status_code == 303
    with session_scope(web) as db:
        accounts.remove_reviewer(db, "wang")
    assert client.get("/review/", follow_redirects=False).status_code == 303


def test_reviewers_decide_but_only_admins_manage_accounts(web):
    reviewer = client_for(web, "wang")
    assert "Accounts &amp; rules" not in reviewer.get("/review/").text
    r = reviewer.get("/review/admin")
    assert r.status_code == 403 and "admin role" in r.text
    token = csrf_of(reviewer.get("/review/").text)
    r = reviewer.post("/review/admin/accounts", data={"csrf": token, "op": "add", "name": "mallory", "password": "12345678", "role": "admin"})
    assert r.status_code == 403 and account(web, "mallory") is None

    admin = client_for(web, "lin")
    page = admin.get("/review/admin")
    assert page.status_code == 200 and "structured-facts" in page.text and "wang" in page.text
    token = csrf_of(page.text)
    r = admin.post("/review/admin/accounts", data={"csrf": token, "op": "add", "name": "zhao", "password": "zhao-pass-1", "role": "reviewer"}, follow_redirects=False)
    assert r.status_code == 303 and account(web, "zhao").role == "reviewer"
    r = admin.post("/review/admin/accounts", data={"csrf": token, "op": "add", "name": "bad name", "password": "zhao-pass-1"})
    assert r.status_code == 400 and "not allowed" in r.text
    r = admin.post("/review/admin/accounts", data={"csrf": token, "op": "remove", "name": "zhao"}, follow_redirects=False)
    assert r.status_code == 303 and account(web, "zhao") is None
    with session_scope(web) as db:
        assert [(e.actor, e.door, e.action) for e in db.scalars(select(AuditEvent).where(AuditEvent.door == "web"))] == [
            ("lin", "web", "reviewer_add"), ("lin", "web", "reviewer_remove")]


def test_trusted_header_only_when_configured_and_only_from_the_proxy(web):
    header = {"X-Forwarded-User": "wang"}
    plain = client_for(web)
    assert plain.get("/review/", headers=header, follow_redirects=False).status_code == 303  # not configured: ignored
    from_elsewhere = client_for(dataclasses.replace(web, review_trusted_header="X-Forwarded-User"))  # TestClient is not 127.0.0.1
    assert from_elsewhere.get("/review/", headers=header, follow_redirects=False).status_code == 303
    proxied = dataclasses.replace(web, review_trusted_header="X-Forwarded-User", review_trusted_proxies=("testclient",))
    client = client_for(proxied)
    page = client.get("/review/", headers=header)
    assert page.status_code == 200 and "wang (reviewer, via proxy)" in page.text
    item = make_item(web)
    token = csrf_of(page.text)
    r = client.post(f"/review/items/{item}/decide", data={"csrf": token, "action": "approve"}, headers=header, follow_redirects=False)
    assert r.status_code == 303 and item_row(web, item).decided_by == "wang"
    r = client.get("/review/", headers={"X-Forwarded-User": "stranger"})
    assert r.status_code == 403 and "no reviewer account" in r.text


def test_the_bot_read_token_and_reviewer_sessions_do_not_open_each_other(web):
    s = dataclasses.replace(web, api_token="s3cret")
    client = TestClient(create_app(s))
    assert client.get("/review/", headers={"Authorization": "Bearer s3cret"}, follow_redirects=False).status_code == 303
    assert sign_in(client, "wang").status_code == 303  # no bearer token needed for the page
    assert client.post("/search", json={"query": "hi"}).status_code == 401  # a reviewer session is no read token


# --- CSRF -----------------------------------------------------------------------------------


def test_posts_without_or_with_a_wrong_csrf_token_are_refused(web):
    item = make_item(web)
    client = client_for(web, "wang")
    for data in ({"action": "approve"}, {"action": "approve", "csrf": ""}, {"action": "approve", "csrf": "forged-token"}):
        r = client.post(f"/review/items/{item}/decide", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    other = client_for(web, "lin")
    stolen = csrf_of(other.get("/review/").text)  # a valid token, but of another session
    assert client.post(f"/review/items/{item}/decide", data={"action": "approve", "csrf": stolen}).status_code == 403
    token = csrf_of(client.get("/review/").text)
    assert client.post("/review/bulk", data={"action": "approve", "ids": [str(item)]}).status_code == 403
    assert client.post("/review/logout", data={}).status_code == 403
    assert item_row(web, item).state == "open" and item_row(web, item).decision is None
    assert client.post(f"/review/items/{item}/decide", data={"action": "approve", "csrf": token}, follow_redirects=False).status_code == 303


def test_sign_in_itself_needs_the_token_and_signing_in_rotates_it(web):
    client = client_for(web)
    before = csrf_of(client.get("/review/login").text)
    assert client.post("/review/login", data={"name": "lin", "password": PASSWORD}).status_code == 403
    assert client.post("/review/login", data={"name": "lin", "password": PASSWORD, "csrf": before}, follow_redirects=False).status_code == 303
    after = csrf_of(client.get("/review/").text)
    assert after != before


# --- what the page shows -----------------------------------------------------------------------


def test_customer_text_is_rendered_escaped_everywhere(web):
    with session_scope(web) as db:
        db.add(ChatSession(source="chats", session_key="s-xss", lang="zh", turns=[
            {"role": "customer", "text": "你好 " + XSS}, {"role": "agent", "text": "回复 " + XSS}, {"role": "customer", "text": "谢谢"}]))
    evidence = {"excerpts": [{"session": "s-xss", "turn": 0, "question": XSS, "answer": XSS}], "odd": XSS}
    item = make_item(web, question="问题 " + XSS, answer="答案 " + XSS, alt_questions=[XSS], evidence=evidence, warnings=[XSS], tags=["chat", XSS])
    with session_scope(web) as db:
        db.add(Candidate(entry_key="bad:1", origin="chat", kind="faq", lang="zh", question=XSS, answer=XSS, fingerprint="f", content_hash="x",
                         status="invalid", reasons=[XSS]))
    client = client_for(web, "wang")
    for path in ("/review/", f"/review/items/{item}", "/review/invalid"):
        r = client.get(path)
        assert r.status_code == 200
        assert "<script>alert" not in r.text and "<img src=x" not in r.text, path
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in r.text, path
        assert "script-src 'self'" in r.headers["content-security-policy"]
    page = client.get(f"/review/items/{item}").text
    assert page.count('class="turn agent answered"') == 1 and 'class="turn customer asked"' in page  # the answering turn is highlighted


def test_queue_is_sorted_by_priority_then_age_and_filters_work(web):
    low = make_item(web, question="发票怎么开？", priority=1.0, lang="zh", origin="chat", tags=["chat"])
    high = make_item(web, question="How long does a refund take?", answer="Refunds arrive within 3 business days.", lang="en", origin="policy",
                     kind="policy", tags=["policy", "Refunds"], priority=5.0)
    mid = make_item(web, question="可以改地址吗？", priority=3.0, warnings=["replaces active entry 3 (revision 1)"], tags=["chat"])
    older_tie = make_item(web, question="保修多久？", priority=1.0)
    client = client_for(web, "wang")

    def ids(query=""):
        r = client.get("/review/" + query)
        assert r.status_code == 200
        return [int(i) for i in re.findall(r'<article class="item[^"]*" id="item-(\d+)"', r.text)]

    assert ids() == [high, mid, low, older_tie]
    assert ids("?lang=en") == [high]
    assert ids("?origin=chat") == [mid, low, older_tie]
    assert ids("?tag=Refunds") == [high]
    assert ids("?warnings=with") == [mid]
    assert ids("?warnings=without") == [high, low, older_tie]
    assert ids("?per_page=25&page=1&lang=zh&tag=chat") == [mid, low, older_tie]


def test_changed_record_and_current_entry_show_before_and_after(web):
    with session_scope(web) as db:
        db.add(SourceRecord(source="prices", kind="price", key="LM-1", version=1, payload={"price": "299.00"}, content_hash="a", is_current=False))
        db.add(SourceRecord(source="prices", kind="price", key="LM-1", version=2, payload={"price": "259.00"}, content_hash="b"))
    make_entry(web, key="product:LM-1:price:zh", question="LM-1多少钱？", answer="LM-1现价299.00元。")
    item = make_item(web, question="LM-1多少钱？", answer="LM-1现价259.00元。", origin="record", kind="price", entry_key="product:LM-1:price:zh",
                     evidence={"records": ["prices/price/LM-1@2"], "sku": "LM-1"})
    page = client_for(web, "wang").get(f"/review/items/{item}").text
    assert "<del>299.00</del> → <ins>259.00</ins>" in page  # the record's old → new value
    assert re.search(r"<del>[^<]*29[^<]*</del>", page) and re.search(r"<ins>[^<]*25[^<]*</ins>", page)  # answer diff against the entry


# --- deciding ------------------------------------------------------------------------------------


def test_approve_edit_reject_and_bulk_through_the_page(web):
    a, b, c, d, e = (make_item(web, question=f"问题{i}：怎么申请退款？", priority=10 - i) for i in range(5))
    client = client_for(web, "wang")
    r = decide(client, a, next=str(b))
    assert r.status_code == 303 and r.headers["location"].endswith(f"#item-{b}")
    assert f"item {a} approved" in client.get("/review/").text
    assert decide(client, b, "edit", question="怎么申请退款？", answer="在订单详情页点“申请退款”，审核后1-3个工作日到账。").status_code == 303
    r = decide(client, c, "reject", note="")
    assert r.status_code == 400 and "needs a reason" in r.text and item_row(web, c).state == "open"
    assert decide(client, c, "reject", note="太笼统").status_code == 303
    token = csrf_of(client.get("/review/").text)
    r = client.post("/review/bulk", data={"csrf": token, "action": "reject", "ids": [str(d), str(e)], "reason": ""})
    assert r.status_code == 400 and "needs a reason" in r.text
    r = client.post("/review/bulk", data={"csrf": token, "action": "approve", "ids": [str(d), str(e)]}, follow_redirects=False)
    assert r.status_code == 303 and "2 item(s) approved" in client.get("/review/").text

    rows = {i: item_row(web, i) for i in (a, b, c, d, e)}
    assert all(r.state == "applied" and r.decided_by == "wang" and r.decided_via == "web" for r in rows.values())
    assert [rows[i].decision for i in (a, b, c, d, e)] == ["approve", "approve", "reject", "approve", "approve"]
    with session_scope(web) as db:
        events = [(ev.review_item_id, ev.actor, ev.door, ev.action) for ev in db.scalars(select(AuditEvent).where(AuditEvent.review_item_id.is_not(None)).order_by(AuditEvent.id))]
        edited = db.scalar(select(KbEntry).where(KbEntry.entry_key == rows[b].entry_key))
    assert events == [(a, "wang", "web", "approve"), (b, "wang", "web", "edit_approve"), (c, "wang", "web", "reject"),
                      (d, "wang", "web", "approve"), (e, "wang", "web", "approve")]
    assert edited.answer.startswith("在订单详情页")
    trail = client.get(f"/review/items/{b}").text
    assert "edit_approve" in trail and "wang" in trail and "applied" in trail
    assert f"#{a}" in client.get("/review/decided").text


def test_an_edit_that_fails_validation_stays_open_with_the_reason_on_the_page(web):
    item = make_item(web)
    client = client_for(web, "wang")
    r = decide(client, item, "edit", question="退货要多久到账？", answer="请拨打13812345678联系我们的客服人员处理。")
    assert r.status_code == 303
    page = client.get("/review/").text
    assert f"item {item} was not applied" in page and "private_data" in page
    row = item_row(web, item)
    assert row.state == "open" and "private_data" in row.apply_error


def test_merge_into_an_existing_entry(web):
    entry = make_entry(web)
    near = {"entry_key": "faq:zh:shipping", "score": 0.93, "matched": "多久发货？"}  # what the gate records
    item = make_item(web, question="什么时候发货呀？", answer="48小时内发货。", evidence={"near_duplicate": near})
    with session_scope(web) as db:
        db.get(ReviewItem, item).proposed_merge_into = "faq:zh:shipping"  # what routing sets
    client = client_for(web, "wang")
    page = client.get(f"/review/items/{item}").text
    assert "nearest existing entries" in page and "similarity 0.93 <strong>(proposed merge)</strong>" in page
    assert "approving adds this question to it as an alternate phrasing" in page
    r = decide(client, item, "merge", merge_into="faq:zh:shipping", question="什么时候发货呀？")
    assert r.status_code == 303, r.text
    with session_scope(web) as db:
        target = db.get(KbEntry, entry)
        assert "什么时候发货呀？" in target.alt_questions and target.answer == "下单后48小时内发货。"
    assert item_row(web, item).decision == "merge"
    # Plain approval of an item routing flagged as a near-duplicate joins the entry, and says so.
    dup = make_item(web, question="几天能发货？", answer="48小时内发货。", evidence={"near_duplicate": near})
    with session_scope(web) as db:
        db.get(ReviewItem, dup).proposed_merge_into = "faq:zh:shipping"
    assert decide(client, dup).status_code == 303
    assert "it was a near-duplicate, so its question joined the existing entry" in client.get("/review/").text
    with session_scope(web) as db:
        assert "几天能发货？" in db.get(KbEntry, entry).alt_questions
    other = make_item(web, question="能开发票吗？")
    r = decide(client, other, "merge", merge_into="no:such:entry")
    assert r.status_code == 400 and "no:such:entry" in r.text and item_row(web, other).state == "open"


def test_the_second_reviewer_sees_already_decided_by(web):
    item = make_item(web)
    lin, wang = client_for(web, "lin"), client_for(web, "wang")
    lin_token, wang_token = csrf_of(lin.get("/review/").text), csrf_of(wang.get("/review/").text)  # both have the page open
    assert lin.post(f"/review/items/{item}/decide", data={"csrf": lin_token, "action": "approve"}, follow_redirects=False).status_code == 303
    r = wang.post(f"/review/items/{item}/decide", data={"csrf": wang_token, "action": "reject", "note": "dup"}, follow_redirects=False)
    assert r.status_code == 409 and "already decided by lin" in r.text and "Traceback" not in r.text
    assert item_row(web, item).decision == "approve"
    # Bulk: the taken item is reported, the rest proceed.
    free = make_item(web, question="保修多久？")
    r = wang.post("/review/bulk", data={"csrf": wang_token, "action": "approve", "ids": [str(item), str(free)]}, follow_redirects=False)
    assert r.status_code == 303
    page = wang.get("/review/").text
    assert "1 item(s) approved" in page and f"item {item} was already decided by lin" in page
    assert item_row(web, free).decided_by == "wang"


def test_simultaneous_decisions_exactly_one_wins(web):
    items = [make_item(web, question=f"并发问题{i}？") for i in range(4)]
    lin, wang = client_for(web, "lin"), client_for(web, "wang")
    tokens = {"lin": csrf_of(lin.get("/review/").text), "wang": csrf_of(wang.get("/review/").text)}
    for item in items:
        results: dict[str, int] = {}
        barrier = threading.Barrier(2)

        def go(name, client, action, item=item, barrier=barrier, results=results):
            barrier.wait()
            data = {"csrf": tokens[name], "action": action, "note": "不需要"}
            results[name] = client.post(f"/review/items/{item}/decide", data=data, follow_redirects=False).status_code

        threads = [threading.Thread(target=go, args=("lin", lin, "approve")), threading.Thread(target=go, args=("wang", wang, "reject"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results.values()) == [303, 409], results
        row = item_row(web, item)
        winner = "lin" if results["lin"] == 303 else "wang"
        assert row.state == "applied" and row.decided_by == winner
        with session_scope(web) as db:
            assert len(db.scalars(select(AuditEvent).where(AuditEvent.review_item_id == item)).all()) == 1


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, data, status, message",
    [
        ("get", "/review/items/99999", None, 404, "no review item 99999"),
        ("get", "/review/items/abc", None, 400, "bad request"),
        ("get", "/review/?per_page=7", None, 400, "per_page=7"),
        ("get", "/review/?warnings=maybe", None, 400, "warnings='maybe'"),
        ("get", "/review/?page=0", None, 400, "page=0"),
        ("get", "/review/nowhere", None, 404, "no such page"),
        ("post", "/review/items/99999/decide", {"action": "approve"}, 404, "no review item 99999"),
        ("post", "/review/items/ITEM/decide", {"action": "publish"}, 400, "action 'publish'"),
        ("post", "/review/items/ITEM/decide", {"action": "edit", "question": "", "answer": ""}, 400, "may not be empty"),
        ("post", "/review/items/ITEM/decide", {"action": "approve", "note": "x" * 20_001}, 400, "the limit is 20000"),
        ("post", "/review/bulk", {"action": "approve", "ids": ["1", "abc"]}, 400, "whole numbers"),
        ("post", "/review/bulk", {"action": "approve"}, 400, "no items selected"),
        ("post", "/review/bulk", {"action": "merge", "ids": ["1"]}, 400, "is not approve or reject"),
    ],
)
def test_bad_input_gets_a_clear_4xx_page_never_a_traceback(web, method, path, data, status, message):
    item = make_item(web)
    client = client_for(web, "wang")
    token = csrf_of(client.get("/review/").text)
    path = path.replace("ITEM", str(item))
    r = client.get(path) if method == "get" else client.post(path, data={"csrf": token, **data})
    assert r.status_code == status and message in html.unescape(r.text), r.text[:500]
    assert "Traceback" not in r.text and r.headers["content-type"].startswith("text/html")
    assert item_row(web, item).state == "open"


def test_invalid_candidates_are_listed_and_can_be_fixed_and_resubmitted(web):
    with session_scope(web) as db:
        bad = Candidate(entry_key="chat:zh:refund-time", origin="chat", kind="faq", lang="zh", question="退款多久到账？",
                        answer="请拨打13812345678问客服。", fingerprint=fingerprint("退款多久到账？"), content_hash="bad1", status="invalid",
                        reasons=["private_data: the answer contains a phone number"], tags=["chat"])
        db.add(bad)
        db.flush()
        bad_id = bad.id
    client = client_for(web, "wang")
    page = client.get("/review/invalid")
    assert page.status_code == 200 and "private_data: the answer contains a phone number" in page.text and "Fix and resubmit" in page.text
    token = csrf_of(page.text)
    r = client.post(f"/review/invalid/{bad_id}/resubmit", data={"csrf": token, "question": "退款多久到账？", "answer": "退款审核通过后1-3个工作日原路退回。"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert f"candidate {bad_id} passed the gate and waits in the queue" in client.get("/review/invalid").text
    with session_scope(web) as db:
        assert db.get(Candidate, bad_id).status == "queued"
        assert db.scalar(select(ReviewItem).where(ReviewItem.candidate_id == bad_id)).answer.startswith("退款审核通过后")
        event = db.scalar(select(AuditEvent).where(AuditEvent.action == "resubmit"))
        assert (event.actor, event.door) == ("wang", "web")
    r = client.post(f"/review/invalid/{bad_id}/resubmit", data={"csrf": token, "question": "q", "answer": "a"})
    assert r.status_code == 400 and "not invalid" in r.text
    r = client.post("/review/invalid/99999/resubmit", data={"csrf": token, "question": "q", "answer": "a"})
    assert r.status_code == 404 and "99999" in r.text


# --- errors by class ------------------------------------------------------------------------------


def test_core_refusals_answer_their_class_status_as_a_page(web):
    """The page maps the core's errors by class (``http_status``): a user error is a 4xx page, never a 500 or a traceback."""
    item, taken = make_item(web), make_item(web, question="保修多久？")
    with session_scope(web) as db:
        queued = Candidate(entry_key="q:1", origin="chat", kind="faq", lang="zh", question="多久发货？", answer="48小时内。",
                           fingerprint=fingerprint("多久发货？"), content_hash="q1", status="queued")
        db.add(queued)
        db.flush()
        queued_id = queued.id
    client = client_for(web, "lin")
    token = csrf_of(client.get("/review/").text)
    assert decide(client, taken, "approve").status_code == 303

    def post(path, **data):
        return client.post(path, data={"csrf": token, **data}, follow_redirects=False)

    cases = [
        (InvalidDecision, post(f"/review/items/{item}/decide", action="reject", note=""), "needs a reason"),
        (InvalidDecision, post(f"/review/items/{item}/decide", action="merge", merge_into=""), "needs the entry to join"),
        (ReviewItemNotFound, post("/review/items/99999/decide", action="approve"), "no review item 99999"),
        (AlreadyDecided, post(f"/review/items/{taken}/decide", action="approve"), "already decided by lin"),
        (CandidateNotFound, post("/review/invalid/99999/resubmit", question="q", answer="a"), "99999"),
        (ReviewError, post(f"/review/invalid/{queued_id}/resubmit", question="q", answer="a"), "not invalid"),
        (AccountError, post("/review/admin/accounts", op="role", name="lin", role="owner"), "not one of reviewer, admin"),
        (AccountError, post("/review/admin/accounts", op="password", name="ghost", password="long enough"), "no reviewer called 'ghost'"),
    ]
    for cls, r, message in cases:
        assert r.status_code == cls.http_status and 400 <= r.status_code < 500, (cls, r.status_code, r.text[:300])
        assert message in html.unescape(r.text) and "Traceback" not in r.text and r.headers["content-type"].startswith("text/html"), cls
    assert item_row(web, item).state == "open" and item_row(web, item).decision is None


def test_a_bulk_decision_skips_taken_and_missing_items_and_decides_the_rest(web):
    taken, free = make_item(web), make_item(web, question="保修多久？")
    lin, wang = client_for(web, "lin"), client_for(web, "wang")
    assert decide(lin, taken, "reject", note="重复").status_code == 303
    token = csrf_of(wang.get("/review/").text)
    r = wang.post("/review/bulk", data={"csrf": token, "action": "approve", "ids": [str(taken), "99999", str(free)]}, follow_redirects=False)
    assert r.status_code == 303
    page = html.unescape(wang.get("/review/").text)
    assert "1 item(s) approved" in page and f"item {taken} was already decided by lin" in page and "no review item 99999" in page
    assert item_row(web, free).decided_by == "wang" and item_row(web, taken).decision == "reject"


def test_a_broken_session_secret_is_a_server_configuration_error_page(web):
    secret = web.review_secret_file or web.home / "review_secret.key"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("not hex at all")
    r = client_for(web).get("/review/")
    assert r.status_code == ConfigError.http_status == 500
    assert "is not hex; delete it to make a new one" in html.unescape(r.text) and "Traceback" not in r.text


# --- concurrency and sessions (issue 12) -------------------------------------------------------------


@pytest.fixture
def live(web):
    """The real app on a real uvicorn server at 127.0.0.1 (requests really run in parallel)."""
    with LiveServer(create_app(web)) as server:
        yield server.url


def _burst(base: str, name: str, passwords: list[str]) -> list[int]:
    """One sign-in per password, all in parallel, each from its own browser (cookie jar, CSRF token)."""
    import httpx

    clients = [httpx.Client(base_url=base, timeout=120) for _ in passwords]
    tokens = [csrf_of(c.get("/review/login").text) for c in clients]
    barrier, statuses = threading.Barrier(len(passwords)), [0] * len(passwords)

    def attempt(i: int) -> None:
        barrier.wait()
        r = clients[i].post("/review/login", data={"name": name, "password": passwords[i], "csrf": tokens[i]}, follow_redirects=False)
        statuses[i] = r.status_code

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(passwords))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for c in clients:
        c.close()
    return statuses


def test_parallel_wrong_sign_ins_are_counted_before_any_is_checked(live):
    """100 wrong passwords at once: only the allowed few are checked, the rest refused (429);
    a second burst carrying the right password among wrong ones does not get in either."""
    first = _burst(live, "wang", [f"guess-{i:04d}" for i in range(100)])
    assert sorted(set(first)) == [401, 429] and first.count(401) == auth_limits()[0], {s: first.count(s) for s in set(first)}
    second = _burst(live, "wang", [PASSWORD] + [f"again-{i:04d}" for i in range(29)])
    assert set(second) == {429}, {s: second.count(s) for s in set(second)}


def auth_limits() -> tuple[int, int]:
    return accounts.LOGIN_LIMIT, accounts.ADDRESS_LIMIT


def test_sign_in_throttle_counts_per_account_and_per_address(web):
    """The account's counter holds across addresses (a distributed guesser), the address's across names (a sprayer)."""
    per_account, per_address = auth_limits()
    # Through the page: a good sign-in resets the account's count.
    client = client_for(web)
    for _ in range(per_account - 1):
        assert sign_in(client, "lin", "guess-guess").status_code == 401
    assert sign_in(client, "lin").status_code == 303
    for _ in range(per_account - 1):
        assert sign_in(client_for(web), "lin", "guess-guess").status_code == 401
    with session_scope(web) as db:
        waits = [accounts.reserve_sign_in(db, "wang", f"10.0.0.{i}") for i in range(per_account + 1)]
    assert waits[:per_account] == [None] * per_account and waits[-1] > 0
    with session_scope(web) as db:
        waits = [accounts.reserve_sign_in(db, f"name{i}", "10.9.9.9") for i in range(per_address + 1)]
    assert waits[:per_address] == [None] * per_address and waits[-1] > 0
    with session_scope(web) as db:  # another account from a fresh address is not affected
        assert accounts.reserve_sign_in(db, "zhao", "10.1.1.1") is None


def _saved_session(settings, name: str) -> tuple[TestClient, str]:
    client = client_for(settings, name)
    return client, client.cookies.get("kbops_review")


def _opens_queue(settings, cookie: str) -> bool:
    """Whether a browser that kept ``cookie`` still gets the queue (else it is sent to sign in)."""
    replay = client_for(settings)
    replay.cookies.set("kbops_review", cookie)
    r = replay.get("/review/", follow_redirects=False)
    assert r.status_code in (200, 303), r.status_code
    return r.status_code == 200


def test_logout_revokes_the_session_a_saved_cookie_no_longer_opens_the_queue(web):
    client, saved = _saved_session(web, "wang")
    assert _opens_queue(web, saved)
    token = csrf_of(client.get("/review/").text)
    r = client.post("/review/logout", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review/login"
    assert not _opens_queue(web, saved)
    assert sign_in(client_for(web), "wang").status_code == 303  # signing in again works


@pytest.mark.parametrize("change", ["passwd", "role", "remove"])
def test_cli_password_role_change_and_removal_end_saved_sessions(web, change, monkeypatch, capsys):
    import io

    from kbops.cli import main

    for key, value in {"KBOPS_HOME": str(web.home), "KBOPS_DATABASE_URL": web.database_url, "KBOPS_SOURCES": str(web.sources_file),
                       "KBOPS_EMBED_CACHE": str(web.embed_cache)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("KBOPS_CONFIG", raising=False)
    _, saved = _saved_session(web, "wang")
    _, bystander = _saved_session(web, "lin")
    assert _opens_queue(web, saved)
    if change == "passwd":
        monkeypatch.setattr("sys.stdin", io.StringIO("battery staple\n"))
        args = ["reviewers", "passwd", "wang", "--password-stdin"]
    elif change == "role":
        args = ["reviewers", "role", "wang", "admin"]
    else:
        args = ["reviewers", "remove", "wang"]
    assert main(args) == 0, capsys.readouterr().err
    assert not _opens_queue(web, saved)
    assert _opens_queue(web, bystander), "other accounts' sessions are not touched"


@pytest.mark.parametrize("op, extra", [("password", {"password": "battery staple"}), ("role", {"role": "admin"}), ("remove", {})])
def test_admin_page_password_role_change_and_removal_end_saved_sessions(web, op, extra):
    _, saved = _saved_session(web, "wang")
    admin = client_for(web, "lin")
    admin_cookie = admin.cookies.get("kbops_review")
    token = csrf_of(admin.get("/review/admin").text)
    r = admin.post("/review/admin/accounts", data={"csrf": token, "op": op, "name": "wang", **extra}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    assert not _opens_queue(web, saved)
    assert _opens_queue(web, admin_cookie)
