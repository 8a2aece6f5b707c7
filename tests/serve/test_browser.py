"""A real browser on the review page: headless Debian Chromium driven by Playwright.

`kbops serve` runs as its own process (uvicorn on a free port) over a KB filled
by the real pipeline on the sample store. A reviewer signs in, approves one
item with the keyboard, edits one, rejects one with a reason, bulk-approves
two; the test then checks the database and the audit log, and that the next
publish serves the approved answer. Chromium comes from Debian's package
(`apt-get install chromium`, done by .ci/run); Playwright's own browser
downloads are never used.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from kbops.db import session_scope
from kbops.pipeline import activate_release, build_release, ingest
from kbops.review import accounts
from kbops.schema import AuditEvent, KbEntry, ReviewItem
from kbops.serve.retriever import Retriever

CHROMIUM = os.environ.get("KBOPS_TEST_CHROMIUM", "/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed: pip install playwright (no `playwright install` needed)")
if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
    pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (`apt-get install -y chromium`, as .ci/run does) or set KBOPS_TEST_CHROMIUM", allow_module_level=True)

pytestmark = pytest.mark.slow
PASSWORD = "correct horse"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(settings):
    """`kbops serve` in its own process on a queue filled by the real pipeline."""
    ingest(settings)
    with session_scope(settings) as db:
        accounts.add_reviewer(db, "lin", PASSWORD, role="admin")
    port = _free_port()
    env = {
        **os.environ,
        "KBOPS_HOME": str(settings.home),
        "KBOPS_DATABASE_URL": settings.database_url,
        "KBOPS_SOURCES": str(settings.sources_file),
        "KBOPS_EMBED_CACHE": str(settings.embed_cache),
        "KBOPS_CONFIG": "",
    }
    settings.home.mkdir(parents=True, exist_ok=True)
    log = open(settings.home / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "kbops.cli", "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/review/login", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"kbops serve did not start: {(settings.home / 'serve.log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


def _current_id(page) -> int:
    return int(page.get_attribute("article.item.current-item", "data-id"))


def _open(settings) -> list[int]:
    with session_scope(settings) as db:
        return list(db.scalars(select(ReviewItem.id).where(ReviewItem.state == "open")))


def test_sign_in_and_decide_with_the_keyboard_then_publish_serves_it(settings, server, browser, embedder):
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{server}/review/")
    assert page.url.endswith("/review/login")
    page.fill('input[name="name"]', "lin")
    page.fill('input[name="password"]', "wrong password")
    page.keyboard.press("Enter")
    page.wait_for_selector("#login-error")
    page.fill('input[name="password"]', PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("article.item.current-item")
    open_before = _open(settings)
    assert len(open_before) >= 7

    # Mined chat items show the conversation with the answering turn highlighted.
    page.goto(f"{server}/review/?origin=chat")
    assert page.locator("article.item").count() >= 1
    assert page.locator("article.item").first.locator(".turn.answered").count() >= 1
    page.goto(f"{server}/review/")
    page.wait_for_selector("article.item.current-item")

    # 1. Approve the first item with one key.
    approved = _current_id(page)
    page.keyboard.press("a")
    page.wait_for_selector(f"text=item {approved} approved")
    # 2. Edit the (now current) next item: e, replace the answer, ctrl+enter.
    edited = _current_id(page)
    assert edited != approved
    page.keyboard.press("e")
    lang = page.get_attribute(f"#item-{edited} .badge.lang", "data-lang") or page.inner_text(f"#item-{edited} .badge.lang")
    new_answer = "编辑过的答案：请在订单详情页申请，客服会在24小时内处理。" if lang.strip() == "zh" else "Edited: apply on the order page; we answer within 24 hours."
    page.keyboard.press("Control+a")
    page.keyboard.type(new_answer)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(f"text=item {edited} approved with your edits")
    # 3. Reject the next one with a reason.
    rejected = _current_id(page)
    page.keyboard.press("r")
    page.keyboard.type("过于笼统 / too vague")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"text=item {rejected} rejected")
    # 4. Select two with x, j, x and bulk-approve with shift+a.
    first = _current_id(page)
    page.keyboard.press("x")
    page.keyboard.press("j")
    second = _current_id(page)
    page.keyboard.press("x")
    assert page.inner_text("#selected-count") == "2 selected"
    page.keyboard.press("Shift+A")
    page.wait_for_selector("text=2 item(s) approved")
    # 5. Bulk reject: x, R (focuses the reason), type it, Enter — rejects, never approves.
    bulk_rejected = _current_id(page)
    page.keyboard.press("x")
    page.keyboard.press("Shift+R")
    page.keyboard.type("重复 / duplicate")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=1 item(s) rejected")
    assert dialogs == []

    with session_scope(settings) as db:
        rows = {r.id: r for r in db.scalars(select(ReviewItem).where(ReviewItem.id.in_([approved, edited, rejected, first, second])))}
        events = {(e.review_item_id, e.action) for e in db.scalars(select(AuditEvent).where(AuditEvent.door == "web", AuditEvent.actor == "lin"))}
        entry = db.scalar(select(KbEntry).where(KbEntry.entry_key == rows[edited].entry_key))
        approved_entry = db.scalar(select(KbEntry).where(KbEntry.entry_key == rows[approved].entry_key))
    assert {i: (r.state, r.decision, r.decided_by, r.decided_via) for i, r in rows.items()} == {
        approved: ("applied", "approve", "lin", "web"),
        edited: ("applied", "approve", "lin", "web"),
        rejected: ("applied", "reject", "lin", "web"),
        first: ("applied", "approve", "lin", "web"),
        second: ("applied", "approve", "lin", "web"),
    }
    assert rows[rejected].note == "过于笼统 / too vague"
    with session_scope(settings) as db:
        row = db.get(ReviewItem, bulk_rejected)
        assert (row.decision, row.note, row.decided_via) == ("reject", "重复 / duplicate", "web")
    assert entry.answer == new_answer and entry.approved_via == "web"
    assert {(approved, "approve"), (edited, "edit_approve"), (rejected, "reject"), (first, "approve"), (second, "approve")} <= events
    assert len(_open(settings)) == len(open_before) - 6

    # The audit trail is on the item's page.
    page.goto(f"{server}/review/items/{edited}")
    page.click("details.audit summary")
    assert "edit_approve" in page.inner_text("details.audit")

    # The next publish serves what the browser approved.
    activate_release(settings, build_release(settings, embedder=embedder).release_id)
    answer = Retriever(settings, embedder=embedder).search(approved_entry.question, top_k=1)
    assert answer.top.entry_key == approved_entry.entry_key and not answer.handoff
    answer = Retriever(settings, embedder=embedder).search(entry.question, top_k=1)
    assert answer.top.answer == new_answer


def test_script_in_a_candidate_never_runs_in_the_browser(settings, server, browser):
    from tests.serve.test_review_web import XSS, make_item

    item = make_item(settings, question="问题 " + XSS, answer="答案 " + XSS, alt_questions=[XSS], priority=99.0)
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{server}/review/login")
    page.fill('input[name="name"]', "lin")
    page.fill('input[name="password"]', PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#item-{item}")
    page.goto(f"{server}/review/items/{item}")
    text = page.inner_text(f"#item-{item} .qa")
    assert "<script>alert" in text  # shown as text …
    assert page.locator(f"#item-{item} .qa script").count() == 0 and page.locator(f"#item-{item} .qa img").count() == 0  # … never as markup
    page.wait_for_timeout(300)
    assert dialogs == []
    assert re.search(r"kbops_review=", "; ".join(c["name"] + "=" for c in page.context.cookies()))
    assert all(c["httpOnly"] and c["sameSite"] == "Lax" for c in page.context.cookies() if c["name"] == "kbops_review")


def _sign_in(page, server) -> None:
    page.set_default_timeout(120_000)  # the first decision loads the model in the server process; shared CI machines are slow
    page.goto(f"{server}/review/login")
    page.fill('input[name="name"]', "lin")
    page.fill('input[name="password"]', PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("article.item.current-item")


def test_after_a_decision_the_next_items_question_is_visible_below_the_toolbar(settings, server, browser):
    """Issue 14: the redirect to #item-<next> scrolled the next item's question under the sticky header and bulk toolbar."""
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    _sign_in(page, server)
    for _ in range(3):  # an item far enough down that the page must scroll to the next one
        page.keyboard.press("j")
    decided = _current_id(page)
    page.keyboard.press("a")
    page.wait_for_selector(f"text=item {decided} approved")
    following = _current_id(page)
    assert following != decided and page.url.endswith(f"#item-{following}")
    page.wait_for_timeout(200)
    toolbar_bottom = page.evaluate("Math.max(...[...document.querySelectorAll('header.top, form.bulk')].map(e => e.getBoundingClientRect().bottom))")
    question = page.locator(f"#item-{following} .q .text").bounding_box()
    answer = page.locator(f"#item-{following} .a .text").bounding_box()
    assert question["y"] >= toolbar_bottom, f"question at {question['y']} hides under the toolbar ending at {toolbar_bottom}"
    assert answer["y"] + answer["height"] <= 700 or answer["y"] < 700, "the answer starts inside the window"
    # What is at the question's spot is the question itself, not the toolbar.
    top_element = page.evaluate(f"(() => {{ const r = document.querySelector('#item-{following} .q .text').getBoundingClientRect(); "
                                f"const e = document.elementFromPoint(r.left + 5, r.top + 5); return e && e.closest('#item-{following}') !== null; }})()")
    assert top_element


def test_health_page_draws_its_plots(settings, server, browser):
    from kbops.schema import QueryLogEntry, utcnow

    with session_scope(settings) as db:
        for question, handoff, reason, score in (("How long is delivery?", False, None, 0.9), ("Do you offer gift wrapping?", True, "no_match", 0.2),
                                                 ("退货运费谁出？", True, "ambiguous", 0.5)):
            db.add(QueryLogEntry(question=question, handoff=handoff, reason=reason, score=score, release_id="r1", at=utcnow()))
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    _sign_in(page, server)
    page.click("header.top a:has-text('Health')")
    page.wait_for_selector("#health-plots svg.chart")
    charts = page.locator("#health-plots svg.chart")
    assert charts.count() == 6
    for i in range(6):
        box = charts.nth(i).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 40
    assert page.inner_text("#handoff-rate").strip() == "67 %" and page.inner_text("#coverage-share").strip() == "33 %"
    assert page.locator("#health-plots svg.chart").first.locator("circle").count() >= 1  # today's handoff rate is plotted
    assert page.locator("#health-plots rect").count() >= 4  # coverage per language, reasons
    assert "products" in page.inner_text("#freshness")
    icon = page.request.get(f"{server}/review/favicon.ico")
    assert icon.status == 200
