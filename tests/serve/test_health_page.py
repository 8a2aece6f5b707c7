"""The health page (/review/health): behind sign-in, real figures, server-side SVG plots, no scripts of its own."""

from __future__ import annotations

import re

from kbops.db import session_scope
from kbops.review import accounts
from kbops.schema import QueryLogEntry, utcnow
from kbops.serve.review_web.charts import bars, time_series
from tests.serve.test_review_web import PASSWORD, client_for


def _log(settings, rows):
    with session_scope(settings) as db:
        for question, handoff, reason, score in rows:
            db.add(QueryLogEntry(question=question, handoff=handoff, reason=reason, score=score, release_id="r1", at=utcnow()))


def test_health_page_needs_sign_in_and_shows_the_figures_with_svg_plots(settings):
    with session_scope(settings) as db:
        accounts.add_reviewer(db, "wang", PASSWORD)
    _log(settings, [("how long is delivery", False, None, 0.9), ("can I pay with seashells", True, "no_match", 0.2),
                    ("退货运费谁出", True, "no_match", 0.1), ("退货运费谁承担", False, None, 0.8)])
    anonymous = client_for(settings)
    r = anonymous.get("/review/health", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review/login"
    page = client_for(settings, "wang").get("/review/health")
    assert page.status_code == 200
    text = page.text
    assert re.search(r'id="coverage-share">50 %<', text) and re.search(r'id="handoff-rate">50 %<', text)
    assert text.count("<svg") == 6 and "Handoff rate per day" in text and "Coverage by language" in text
    assert "<script" not in text.split("</head>")[1]  # plots are drawn on the server; the page's one script is the shared review.js
    assert "no_match" in text
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_favicon_is_served(settings):
    r = client_for(settings).get("/review/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml") and b"<svg" in r.content


def test_charts_escape_labels_and_leave_gaps_for_missing_days():
    svg = str(time_series("rate <b>", ["2026-12-01", "2026-12-02", "2026-12-03"], {"x": [0.5, None, 0.25]}, percent=True))
    assert "&lt;b&gt;" in svg and "<b>" not in svg and svg.count("<circle") == 2 and "<polyline" not in svg
    svg = str(bars("gaps", [("<script>alert(1)</script>", 3.0), ("退货", 1.0)]))
    assert "<script>" not in svg and svg.count("<rect") == 2 and "退货" in svg
    assert "no data yet" in str(bars("empty", []))
