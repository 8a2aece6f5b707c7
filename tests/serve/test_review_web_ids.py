"""The review page's record ids in URLs: one parser for every route with an id, never a 500.

Issue 12: ``GET /review/items/9223372036854775808`` answered 500 (then the
connection was reset) and ``POST /review/invalid/99999999999999999999/resubmit``
answered 500: an id past the 64-bit range reached the database driver. Ids
are whole numbers within the id columns' range (1 … 2**31 − 1, PostgreSQL's
``integer``); anything else is a 4xx page before the database is asked.
Runs on SQLite, and on PostgreSQL when KBOPS_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import html
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kbops.db import session_scope
from kbops.review import accounts
from kbops.schema import MAX_ID
from kbops.serve.api import create_app
from kbops.serve.review_web.forms import whole_number
from tests.serve.test_review_web import PASSWORD, csrf_of, item_row, make_item, sign_in

ROUTES = [("get", "/review/items/{}"), ("post", "/review/items/{}/decide"), ("post", "/review/invalid/{}/resubmit")]


@pytest.fixture
def reviewer(settings):
    """A signed-in reviewer's client (server errors answered as 500s, not raised) and its CSRF token."""
    with session_scope(settings) as db:
        accounts.add_reviewer(db, "wang", PASSWORD)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    assert sign_in(client, "wang").status_code == 303
    return client, csrf_of(client.get("/review/").text)


def _hit(client: TestClient, token: str, method: str, path: str):
    if method == "get":
        return client.get(path, follow_redirects=False)
    return client.post(path, data={"csrf": token, "action": "approve", "question": "q", "answer": "a"}, follow_redirects=False)


@pytest.mark.parametrize("method, route", ROUTES)
@pytest.mark.parametrize("raw", ["9223372036854775808", "99999999999999999999", str(2**63 - 1), str(2**31), "1" + "0" * 5000, "-1", "0"])
def test_an_id_out_of_range_is_a_4xx_page_never_a_500(settings, reviewer, method, route, raw):
    """The issue's two reports, and the same for every route with an id and every size of number."""
    item = make_item(settings)
    client, token = reviewer
    r = _hit(client, token, method, route.format(raw))
    assert r.status_code in (400, 404), (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html") and "Traceback" not in r.text
    assert raw[:30] not in r.text or len(raw) < 30  # a 5,000-digit id is not repeated whole
    assert item_row(settings, item).state == "open"


def test_the_reported_urls_answer_no_such_item(settings, reviewer):
    client, token = reviewer
    r = client.get("/review/items/9223372036854775808")
    assert r.status_code == 404 and "no review item 9223372036854775808" in html.unescape(r.text)
    r = client.post("/review/invalid/99999999999999999999/resubmit", data={"csrf": token, "question": "q", "answer": "a"})
    assert r.status_code == 404 and "no candidate 99999999999999999999" in html.unescape(r.text)
    assert client.get("/review/items/abc").status_code == 400  # not a number at all stays a bad request


def test_form_ids_use_the_same_range():
    assert whole_number(str(MAX_ID)) == MAX_ID and whole_number(str(MAX_ID + 1)) is None
    assert whole_number("9223372036854775808") is None and whole_number("1" * 5000) is None and whole_number(True) is None


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    route=st.sampled_from(ROUTES),
    raw=st.one_of(
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.text(alphabet=st.one_of(st.characters(exclude_categories=()), st.characters(categories=["Cs"])), max_size=30),  # anything, sent percent-encoded
        st.from_regex(r"\A[0-9]{1,40}\Z"),
    ),
)
def test_any_id_in_a_url_is_a_page_never_a_500(settings, reviewer, route, raw):
    """Property: whatever stands where an id goes, the answer is a page (2xx/3xx/4xx), never a 500."""
    client, token = reviewer
    method, pattern = route
    r = _hit(client, token, method, pattern.format(quote(raw.encode("utf-8", "surrogatepass"), safe="")))
    assert r.status_code < 500, (raw, r.status_code, r.text[:300])
    assert "Traceback" not in r.text
