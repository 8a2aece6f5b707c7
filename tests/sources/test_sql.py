"""The SQL table connector against real databases: a SQLite file, and PostgreSQL when configured."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, DateTime, MetaData, Numeric, String, Table, create_engine, delete, insert, update
from sqlalchemy.engine import make_url

from kbops.errors import ConfigError, SourceError, TransientError
from kbops.pipeline import sync_source
from kbops.sources.config import SourceConfig, load_sources

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@pytest.fixture
def store_db(settings, tmp_path):
    """A store database with a prices table: a SQLite file, or PostgreSQL beside the KB."""
    url = settings.database_url if settings.database_url.startswith("postgresql") else f"sqlite:///{tmp_path / 'store.sqlite'}"
    engine = create_engine(url)
    meta = MetaData()
    prices = Table(
        "store_prices",
        meta,
        Column("sku", String(20), primary_key=True),
        Column("price", Numeric(10, 2)),
        Column("currency", String(3)),
        Column("updated_at", DateTime(timezone=True)),
    )
    meta.drop_all(engine)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(prices), [{"sku": f"LM-{1000 + i}", "price": 100 + i, "currency": "CNY", "updated_at": T0 + timedelta(minutes=i)} for i in range(1, 11)])
    yield url, engine, prices
    meta.drop_all(engine)
    engine.dispose()


def _source(**overrides) -> SourceConfig:
    values = dict(name="erp_prices", type="sql", path=None, kind="price", key="sku", url_env="STORE_DB_URL", table="store_prices", watermark="updated_at", reconcile_every=86_400.0)
    values.update(overrides)
    return SourceConfig(**values)


def test_incremental_pulls_read_only_changed_rows(settings, store_db):
    url, engine, prices = store_db
    env = {"STORE_DB_URL": url}
    first = sync_source(settings, _source(), env=env, now=T0)
    assert (first.full, first.read, first.new) == (True, 10, 10)
    assert first.watermark["type"] == "datetime"

    with engine.begin() as conn:
        conn.execute(update(prices).where(prices.c.sku == "LM-1003").values(price=88, updated_at=T0 + timedelta(hours=1)))
    second = sync_source(settings, _source(), env=env, now=T0 + timedelta(hours=2))
    assert second.full is False
    # The changed row, plus the row at the previous watermark (read again by `>=`, unchanged).
    assert (second.read, second.changed, second.unchanged, second.new) == (2, 1, 1, 0)

    # Nothing changed: the boundary row is re-read (>=) but nothing is new or changed.
    third = sync_source(settings, _source(), env=env, now=T0 + timedelta(hours=3))
    assert (third.read, third.changed, third.new, third.deleted) == (1, 0, 0, 0)


def test_touching_updated_at_alone_is_not_a_change(settings, store_db):
    url, engine, prices = store_db
    env = {"STORE_DB_URL": url}
    sync_source(settings, _source(), env=env, now=T0)
    with engine.begin() as conn:
        conn.execute(update(prices).values(updated_at=T0 + timedelta(hours=1)))  # a bulk "touch"
    again = sync_source(settings, _source(), env=env, now=T0 + timedelta(hours=2))
    assert (again.read, again.unchanged, again.changed) == (10, 10, 0)


def test_hard_deletes_are_caught_by_the_periodic_full_pass(settings, store_db):
    url, engine, prices = store_db
    env = {"STORE_DB_URL": url}
    sync_source(settings, _source(), env=env, now=T0)
    with engine.begin() as conn:
        conn.execute(delete(prices).where(prices.c.sku == "LM-1005"))
    incremental = sync_source(settings, _source(), env=env, now=T0 + timedelta(hours=1))
    assert incremental.full is False and incremental.deleted == 0
    full = sync_source(settings, _source(), env=env, now=T0 + timedelta(days=1, hours=1))
    assert full.full is True and full.deleted == 1


def test_bad_rows_in_the_table_are_quarantined(settings, store_db):
    url, engine, prices = store_db
    with engine.begin() as conn:
        conn.execute(insert(prices), [{"sku": "LM-1099", "price": -5, "currency": "CNY", "updated_at": T0}, {"sku": "LM-1098", "price": 5, "currency": "XYZ", "updated_at": T0}])
    result = sync_source(settings, _source(), env={"STORE_DB_URL": url}, now=T0)
    assert (result.new, result.quarantined) == (10, 2)
    assert any("-5" in m for m in result.messages) and any("XYZ" in m for m in result.messages)


def test_connector_mistakes_are_clear_errors(settings, store_db, tmp_path):
    url, _, _ = store_db
    with pytest.raises(ConfigError, match="STORE_DB_URL is not set"):
        sync_source(settings, _source(), env={}, now=T0)
    with pytest.raises(ConfigError, match="driver"):
        sync_source(settings, _source(), env={"STORE_DB_URL": "nosuchdialect://u:pw@h/db"}, now=T0)
    with pytest.raises(SourceError, match="no_such_table"):
        sync_source(settings, _source(table="no_such_table"), env={"STORE_DB_URL": url}, now=T0)
    with pytest.raises(SourceError, match="watermark column 'changed'"):
        sync_source(settings, _source(watermark="changed"), env={"STORE_DB_URL": url}, now=T0)
    config = tmp_path / "sources.toml"
    config.write_text('[[sources]]\nname = "erp"\ntype = "sql"\nkind = "price"\nurl = "postgresql://u:secret@h/db"\ntable = "t"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="url_env"):
        load_sources(config)


def test_custom_query_is_read_in_full(settings, store_db):
    url, _, _ = store_db
    src = _source(table="", watermark="", query="SELECT sku, price, currency FROM store_prices WHERE price > 105")
    result = sync_source(settings, src, env={"STORE_DB_URL": url}, now=T0)
    assert result.full is True and result.new == 5


# --- Connections (issue 13): conn_id alone, standard postgresql:// URIs, unreachable = transient ---

PG_URL = os.environ.get("KBOPS_TEST_DATABASE_URL")
needs_postgres = pytest.mark.skipif(not (PG_URL or "").startswith("postgresql"), reason="needs KBOPS_TEST_DATABASE_URL (PostgreSQL)")


def test_conn_id_alone_is_enough_in_the_sources_config(tmp_path):
    config = tmp_path / "sources.toml"
    config.write_text('[[sources]]\nname = "erp"\ntype = "sql"\nkind = "price"\nconn_id = "store_db"\ntable = "prices"\n', encoding="utf-8")
    (source,) = load_sources(config)
    assert source.conn_id == "store_db" and source.url_env == ""
    assert source.url_variable == "KBOPS_CONN_STORE_DB"
    config.write_text('[[sources]]\nname = "erp"\ntype = "sql"\nkind = "price"\ntable = "prices"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="conn_id.*url_env"):
        load_sources(config)


@needs_postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_standard_postgresql_uri_from_a_connection_works(settings, store_db, scheme):
    """A Connection's plain URI (``postgresql://``, or Airflow's ``postgres://``), with no driver named, reads the table
    (psycopg 3 is installed): as the adapter exports it, and as AIRFLOW_CONN_* outside Airflow."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the store table lives beside the PostgreSQL KB")
    url, _, _ = store_db
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False).replace("postgresql://", f"{scheme}://", 1)
    src = _source(url_env="", conn_id="store_db")
    first = sync_source(settings, src, env={"KBOPS_CONN_STORE_DB": plain}, now=T0)
    assert first.new == 10
    again = sync_source(settings, src, env={"AIRFLOW_CONN_STORE_DB": plain}, now=T0 + timedelta(hours=1))
    assert again.new == 0 and again.changed == 0


def test_an_unresolved_connection_names_what_to_set(settings):
    with pytest.raises(ConfigError, match="airflow connections add store_db.*AIRFLOW_CONN_STORE_DB"):
        sync_source(settings, _source(url_env="", conn_id="store_db"), env={}, now=T0)


def test_an_unreachable_store_database_is_transient(settings):
    """Connection refused (nothing listens on the port) or an unknown host: retried by the adapter, never terminal."""
    src = _source(url_env="", conn_id="store_db")
    with closed_port() as port:
        with pytest.raises(TransientError, match="cannot read postgresql://kb:\\*\\*\\*@127.0.0.1"):
            sync_source(settings, src, env={"KBOPS_CONN_STORE_DB": f"postgresql://kb:secret@127.0.0.1:{port}/store"}, now=T0)


@needs_postgres
def test_a_postgres_server_refusing_the_database_is_transient(settings):
    """A real PostgreSQL server that refuses the connection (no such database yet: being restored, renamed back) is retried."""
    url = make_url(PG_URL).set(drivername="postgresql", database="kbops_no_such_database")
    with pytest.raises(TransientError, match="kbops_no_such_database"):
        sync_source(settings, _source(url_env="", conn_id="store_db"), env={"KBOPS_CONN_STORE_DB": url.render_as_string(hide_password=False)}, now=T0)


@contextmanager
def closed_port():
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port
