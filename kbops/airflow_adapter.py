"""The only kbops module that imports Airflow.

DAG tasks call :func:`run_step` with a kbops step function; it builds the
Settings from the environment, runs the step, and translates kbops errors:
a terminal error (bad input or configuration) fails the task without
retries, a transient one is re-raised so Airflow's retries apply.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException

from kbops.config import Settings
from kbops.errors import KbopsError
from kbops.sources.config import load_sources

#: Emitted by kb_ingest when the review queue or auto-approved KB changed; schedules kb_publish.
KB_CANDIDATES = Asset("kbops://kb/candidates")
#: Emitted by kb_publish when a new release is active.
KB_RELEASE = Asset("kbops://kb/release")


def connection_url(conn_id: str) -> str:
    """An Airflow Connection as a SQLAlchemy URL."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    if conn.conn_type == "sqlite":  # the file path arrives in host (UI) or schema (URI form)
        return f"sqlite:///{conn.host or conn.schema}"
    uri = conn.get_uri()
    return "postgresql://" + uri[len("postgres://"):] if uri.startswith("postgres://") else uri


def export_connections(settings: Settings) -> None:
    """Put each SQL source's Airflow Connection (``conn_id``) into its ``url_env`` variable.

    An explicitly set variable wins, so a worker can still override it.
    """
    if settings.sources_file is None or not settings.sources_file.is_file():
        return
    for source in load_sources(settings.sources_file):
        if source.type == "sql" and source.conn_id and not os.environ.get(source.url_env):
            os.environ[source.url_env] = connection_url(source.conn_id)


def run_step(step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one kbops step with env Settings; return a JSON-able result for XCom."""
    try:
        settings = Settings.load()
        export_connections(settings)
        result = step(settings, *args, **kwargs)
    except KbopsError as exc:
        if exc.transient:
            raise
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
    if hasattr(result, "as_dict"):
        return result.as_dict()
    if isinstance(result, list):
        return [r.as_dict() if hasattr(r, "as_dict") else r for r in result]
    return result
