"""The Airflow adapter resolves a SQL source's Airflow Connection into its URL variable."""

from __future__ import annotations

import dataclasses
import os
import sys
from types import SimpleNamespace

from tests.airflow_helpers import ROOT, exported_url

SOURCES = """
[[sources]]
name = "erp_prices"
type = "sql"
kind = "price"
url_env = "STORE_DB_URL"
conn_id = "store_db"
table = "prices"
"""


def test_connection_is_exported_as_the_sources_url(settings, tmp_path):
    config = tmp_path / "sql_sources.toml"
    config.write_text(SOURCES, encoding="utf-8")
    s = settings.__class__(**{**settings.__dict__, "sources_file": config})
    url = exported_url(tmp_path / "airflow", s, "STORE_DB_URL", {"AIRFLOW_CONN_STORE_DB": "postgres://kb:secret@db.internal:5432/store"})
    assert url == "postgresql://kb:secret@db.internal:5432/store"
    sqlite = exported_url(tmp_path / "airflow", s, "STORE_DB_URL", {"AIRFLOW_CONN_STORE_DB": f"sqlite:///{tmp_path / 'store.db'}"})
    assert sqlite == f"sqlite:///{tmp_path / 'store.db'}"
    # An explicit variable wins over the connection.
    kept = exported_url(tmp_path / "airflow", s, "STORE_DB_URL", {"STORE_DB_URL": "sqlite:///explicit.db", "AIRFLOW_CONN_STORE_DB": "postgres://x@y/z"})
    assert kept == "sqlite:///explicit.db"


def test_conn_id_alone_is_exported_into_its_own_variable(settings, tmp_path):
    """Without ``url_env`` the Connection lands in KBOPS_CONN_<CONN_ID>, where the SQL connector looks."""
    config = tmp_path / "sql_sources.toml"
    config.write_text(SOURCES.replace('url_env = "STORE_DB_URL"\n', ""), encoding="utf-8")
    s = settings.__class__(**{**settings.__dict__, "sources_file": config})
    url = exported_url(tmp_path / "airflow", s, "KBOPS_CONN_STORE_DB", {"AIRFLOW_CONN_STORE_DB": "postgresql://kb:secret@db.internal:5432/store"})
    assert url == "postgresql://kb:secret@db.internal:5432/store"


def test_kbops_notify_event_reaches_a_redis_subscriber_and_selects_its_source(settings, tmp_path):
    """`kbops notify prices` publishes on real Redis; what a subscriber (the triggerer's AwaitMessageTrigger) receives
    makes kb_ingest sync that source alone; an unknown source is refused before anything is sent."""
    import uuid

    import pytest
    redis = pytest.importorskip("redis")
    if "airflow" not in sys.modules:  # Airflow reads AIRFLOW_HOME once, at import: keep it out of ~/airflow
        os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "var" / "airflow-tests"))
    adapter = pytest.importorskip("kbops.airflow_adapter")
    from kbops.errors import ConfigError
    from kbops.sources.events import publish_change

    url = os.environ.get("KBOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url} (set KBOPS_TEST_REDIS_URL)")
    s = dataclasses.replace(settings, events_url=url, events_channel=f"kbops.test.{uuid.uuid4().hex}")
    sub = client.pubsub()
    sub.subscribe(s.events_channel)
    assert sub.get_message(timeout=2)["type"] == "subscribe"
    sent = publish_change(s, "prices", reason="price list imported")
    assert sent["receivers"] == 1
    message = sub.get_message(timeout=5)
    sub.close()
    client.close()
    # What the triggerer puts in the asset event: extra = {"from_trigger": True, "payload": <the message>}.
    event = SimpleNamespace(extra={"from_trigger": True, "payload": {"type": "message", "channel": s.events_channel, "data": message["data"].decode()}})
    assert adapter.sources_to_sync(s, {"kbops://sources/changed": [event]}) == ["prices"]
    assert adapter.sources_to_sync(s, None) == ["products", "prices", "policies", "chats"]
    stranger = SimpleNamespace(extra={"payload": {"data": '{"source": "nope"}'}})
    assert adapter.sources_to_sync(s, {"kbops://sources/changed": [stranger]}) == ["products", "prices", "policies", "chats"]
    with pytest.raises(ConfigError, match="no source named 'nope'"):
        publish_change(s, "nope")


def test_a_steps_result_is_logged_readably_in_the_task_log(settings, store):
    """What a data engineer reads in the Airflow task log (loggers kbops.*): one summary line of counts, then each
    quarantined row with its reason on a WARNING line."""
    import logging

    import pytest
    if "airflow" not in sys.modules:
        os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "var" / "airflow-tests"))
    adapter = pytest.importorskip("kbops.airflow_adapter")
    from kbops.pipeline import sync_source
    from kbops.sources.config import load_sources

    prices = store / "prices.csv"
    prices.write_text(prices.read_text(encoding="utf-8").replace("LM-1002,89.00", "LM-1002,eighty-nine"), encoding="utf-8")
    source = next(s for s in load_sources(settings.sources_file) if s.name == "prices")
    result = sync_source(settings, source).as_dict()
    records: list[logging.LogRecord] = []
    collector = logging.Handler()
    collector.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("kbops").addHandler(collector)
    try:
        adapter._log_to_task()  # as run_step does: kbops.* at INFO, enabled, propagating to Airflow's task-log handler
        adapter.log_result("sync_source", result)
    finally:
        logging.getLogger("kbops").removeHandler(collector)
    lines = [(r.levelname, r.getMessage()) for r in records]
    level, summary = next(line for line in lines if line[1].startswith("sync_source: source=prices"))
    assert level == "INFO" and f"new={result['new']}" in summary and f"quarantined={result['quarantined']}" in summary, lines
    assert "config=" not in summary and "run_id=" not in summary
    assert any(lv == "WARNING" and "prices.csv:3" in text and "eighty-nine" in text for lv, text in lines), lines
    assert logging.getLogger("kbops.airflow").propagate and not logging.getLogger("kbops.airflow").disabled
