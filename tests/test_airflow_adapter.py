"""The Airflow adapter resolves a SQL source's Airflow Connection into its URL variable."""

from __future__ import annotations

from tests.airflow_helpers import exported_url

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
