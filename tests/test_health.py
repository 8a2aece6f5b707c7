"""``kbops health``: real figures after a real sync → review → publish → ask cycle on the sample store."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from kbops.cli.app import main
from kbops.db import session_scope
from kbops.health import _percentile, coverage, health_report
from kbops.index import release as rel
from kbops.index.confidence import model_for
from kbops.pipeline import decide, ingest, publish
from kbops.review import accounts
from kbops.schema import QueryLogEntry, utcnow
from kbops.serve.query_log import log_answer
from kbops.serve.retriever import Retriever
from tests.helpers import list_items
from tests.serve.test_review_web import PASSWORD, client_for

ANSWERED = "How much is the Lumi Smart Rice Cooker?"
NOT_ANSWERED = "Can I pay with seashells on Mars?"


@pytest.fixture
def cycled(settings, embedder):
    """Sample store synced, every waiting item approved by 'lin', published, and four questions asked."""
    ingest(settings)
    waiting = list_items(settings)
    decide(settings, [i.id for i in waiting[:3]], "approve", by="lin")
    publish(settings)
    bot = Retriever(settings, embedder=embedder)
    for q in (ANSWERED, ANSWERED, NOT_ANSWERED, "鹿米智能电饭煲多少钱？"):
        log_answer(settings, bot.search(q))
    return settings, len(waiting) - 3


def test_health_json_reports_the_cycle(cycled, capsys, monkeypatch):
    settings, still_open = cycled
    monkeypatch.setenv("KBOPS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KBOPS_HOME", str(settings.home))
    monkeypatch.setenv("KBOPS_SOURCES", str(settings.sources_file))
    assert main(["health", "--json"]) == 0
    h = json.loads(capsys.readouterr().out)
    with session_scope(settings) as db:
        logged = list(db.query(QueryLogEntry))
    answered = sum(1 for r in logged if not r.handoff)
    assert h["coverage"]["questions"] == 4 and h["coverage"]["answered"] == answered >= 2
    assert h["coverage"]["by_lang"]["en"]["questions"] == 3 and h["coverage"]["by_lang"]["zh"]["questions"] == 1
    assert h["handoffs"]["questions"] == 4 and h["handoffs"]["handoffs"] == sum(r.handoff for r in logged) >= 1
    assert h["handoffs"]["by_day"][-1]["questions"] == 4 and len(h["handoffs"]["by_day"]) == 8
    assert h["queue"]["size"] == still_open and h["queue"]["decided_by"] == {"lin": 3}
    assert h["queue"]["oldest_s"] >= h["queue"]["age_p90_s"] >= h["queue"]["age_p50_s"] >= 0
    sources = {f["source"]: f for f in h["freshness"]}
    assert set(sources) == {"products", "prices", "policies", "chats"}
    assert all(f["last_sync"] and not f["failing"] for f in sources.values())
    assert sources["prices"]["lag_s"] == 0.0  # published after the sync
    sync = {s["source"]: s for s in h["pipeline"]["sync"]}
    assert sync["prices"]["read"] > 0 and sync["prices"]["new"] == sync["prices"]["read"]
    assert h["pipeline"]["queue_size"] == still_open
    assert h["pipeline"]["candidates"]["queued"] == still_open
    assert h["pipeline"]["last_publish"]["status"] == "built" and h["pipeline"]["last_publish"]["seconds"] > 0
    assert h["release"]["release_id"] == h["pipeline"]["last_publish"]["release_id"]
    assert main(["health"]) == 0
    text = capsys.readouterr().out
    assert f"coverage   {h['coverage']['share']:.0%} of 4 question(s)" in text and f"queue      {still_open} open" in text and "prices" in text


def test_a_change_not_yet_published_shows_as_lag(cycled, store):
    settings, _ = cycled
    with session_scope(settings) as db:
        h = health_report(db, settings, now=utcnow() + timedelta(hours=2))
    lags = {f["source"]: f["lag_s"] for f in h.freshness}
    # Everything synced was published since: no lag, whatever the clock says; chats make no entries directly.
    assert lags == {"chats": None, "policies": 0.0, "prices": 0.0, "products": 0.0}

    prices = store / "prices.csv"
    prices.write_text(prices.read_text(encoding="utf-8").replace("299.00", "259.00"), encoding="utf-8")
    ingest(settings)
    later = utcnow() + timedelta(hours=2)
    with session_scope(settings) as db:
        h = health_report(db, settings, now=later)
    lags = {f["source"]: f["lag_s"] for f in h.freshness}
    assert 7200 <= lags["prices"] < 7300 and lags["products"] == 0.0
    publish(settings)
    with session_scope(settings) as db:
        assert {f["source"]: f["lag_s"] for f in health_report(db, settings, now=later).freshness}["prices"] == 0.0


def test_health_shows_the_serving_releases_calibration_in_json_text_and_page(cycled, capsys, monkeypatch):
    """The thresholds the bot answers by, and the curve they were chosen on, read from the release's manifest."""
    settings, _ = cycled
    with session_scope(settings) as db:
        report = health_report(db, settings).as_dict()
    stored = rel.read_manifest(settings.index_dir, report["release"]["release_id"])["calibration"]
    got = report["calibration"]
    assert got["target_precision"] == stored["target_precision"] and set(got["languages"]) == set(stored["languages"]) >= {"en", "zh"}
    for lang, data in stored["languages"].items():
        c = got["languages"][lang]
        assert (c["threshold"], c["source"], c["curve"]) == (data["threshold"], data["source"], [[float(x) for x in p] for p in data["curve"]])
        picked = [p for p in data["curve"] if p[0] == data["threshold"]]
        assert [c["answered"], c["precision"]] == (picked[0][1:] if picked else [None, None])

    monkeypatch.setenv("KBOPS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("KBOPS_HOME", str(settings.home))
    monkeypatch.setenv("KBOPS_SOURCES", str(settings.sources_file))
    assert main(["health"]) == 0
    out = capsys.readouterr().out
    assert f"calibration en: threshold {stored['languages']['en']['threshold']:.2f} ({stored['languages']['en']['source']}" in out

    with session_scope(settings) as db:
        accounts.add_reviewer(db, "wang", PASSWORD)
    text = client_for(settings, "wang").get("/review/health").text
    curves = sum(1 for data in stored["languages"].values() if data["curve"])
    assert curves >= 1 and text.count("<svg") == 6 + curves and "Calibration, en:" in text and 'id="calibration-plots"' in text

    (rel.releases_dir(settings.index_dir) / report["release"]["release_id"] / "manifest.json").write_text("{broken", encoding="utf-8")
    with session_scope(settings) as db:
        broken = health_report(db, settings).as_dict()
    assert broken["calibration"] is None and any("calibration not shown" in n and "corrupt" in n for n in broken["notes"])
    assert client_for(settings, "wang").get("/review/health").status_code == 200


def test_health_shows_the_threshold_the_bot_applies_when_the_target_precision_changed(cycled):
    """KBOPS_TARGET_PRECISION takes effect at once (the threshold is re-read from the stored curve); health says so too."""
    settings, _ = cycled
    stricter = replace(settings, target_precision=0.97)
    with session_scope(settings) as db:
        report = health_report(db, stricter).as_dict()
    manifest = rel.read_manifest(settings.index_dir, report["release"]["release_id"])
    assert report["calibration"]["target_precision"] == 0.97 and report["calibration"]["calibrated_for"] == settings.target_precision
    for lang, c in report["calibration"]["languages"].items():
        assert c["threshold"] == model_for(manifest, lang, stricter).threshold
    stored = manifest["calibration"]["languages"]
    assert any(c["threshold"] != stored[lang]["threshold"] for lang, c in report["calibration"]["languages"].items())  # a stricter target moves it


def test_coverage_counts_what_the_bot_answered_by_its_own_decision(settings):
    """The bot answers by calibrated confidence, not by a raw score: an answer whose top score is below
    ``handoff_threshold`` is still an answer the customer got, and a handoff with a high score is not."""
    now = utcnow()
    with session_scope(settings) as db:
        db.add(QueryLogEntry(question="How long is delivery?", handoff=False, reason=None, score=settings.handoff_threshold - 0.2, at=now))
        db.add(QueryLogEntry(question="Which lamp is brighter?", handoff=True, reason="clarify", score=0.97, at=now))
        db.add(QueryLogEntry(question="退货政策是什么", handoff=False, reason=None, score=0.9, at=now))
    with session_scope(settings) as db:
        got = coverage(db, now - timedelta(days=1))
    assert (got["questions"], got["answered"], got["share"]) == (3, 2, 0.6667)
    assert got["by_lang"] == {"en": {"questions": 2, "answered": 1, "share": 0.5}, "zh": {"questions": 1, "answered": 1, "share": 1.0}}


def test_health_on_an_empty_kb(settings):
    with session_scope(settings) as db:
        h = health_report(db, settings).as_dict()
    assert h["coverage"]["share"] is None and h["queue"]["size"] == 0 and h["freshness"] == [] and h["release"] is None


def test_percentile_is_nearest_rank():
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert _percentile(values, 50) == 5.0 and _percentile(values, 90) == 9.0 and _percentile([], 50) is None
