"""The only kbops module that imports Airflow.

DAG tasks call :func:`run_step` with a kbops step function; it builds the
Settings from the environment, runs the step, and translates kbops errors:
a terminal error (bad input or configuration) fails the task without
retries, a transient one is re-raised so Airflow's retries apply.
kb_ingest syncs each source in its own mapped task: :func:`configured_source_names`
lists them and :func:`run_source_step` runs a step for one of them by name.
kb_ingest emits its asset only when the run changed something: its
``announce_changes`` task (the one with the outlet) calls :func:`announce_if_changed`,
which raises ``AirflowSkipException`` otherwise — a task that ends skipped emits no
asset event (Airflow 3: outlet events are emitted on success only), so kb_publish is
not scheduled by a run that changed nothing (its 15-minute schedule still runs).

Kept light (no kbops.pipeline import): the scheduler imports it with every DAG file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from kbops.config import Settings
from kbops.errors import ConfigError, KbopsError
from kbops.sources.config import SourceConfig, load_sources

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


def configured_source_names(settings: Settings) -> list[str]:
    """The names of the configured sources, in config order (what kb_ingest maps its sync task over)."""
    return [source.name for source in load_sources(settings.require_sources())]


def source_named(settings: Settings, name: str) -> SourceConfig:
    """The configured source called ``name`` (ConfigError naming the configured ones)."""
    sources = load_sources(settings.require_sources())
    for source in sources:
        if source.name == name:
            return source
    raise ConfigError(f"no source named {name!r}; configured sources: {', '.join(s.name for s in sources)}", source=name)


def run_source_step(step: Callable[..., Any], name: str) -> Any:
    """:func:`run_step` for a step that takes one source (``step(settings, source)``), named as in sources.toml."""
    return run_step(lambda settings: step(settings, source_named(settings, name)))


#: What counts as a change worth a publish: entries withdrawn (sync) or retired (extract), review
#: items flagged (sync) or queued, candidates auto-approved (route).
CHANGE_COUNTS = ("withdrawn", "flagged", "retired", "queued", "auto_approved")


def sync_changes(synced: Iterable[dict[str, Any] | None] | None) -> dict[str, int]:
    """What the sync tasks that succeeded changed (a failed source has no result and is left out)."""
    results = [r for r in (synced or ()) if isinstance(r, dict)]
    return {key: sum(int(r.get(key) or 0) for r in results) for key in ("withdrawn", "flagged", "deleted")}


def announce_if_changed(extracted: dict[str, Any], routed: dict[str, Any]) -> dict[str, int]:
    """The changes this kb_ingest run made, for the task that emits ``kbops://kb/candidates``;
    ``AirflowSkipException`` (the task ends skipped, no asset event) when there are none."""
    synced = extracted.get("synced") or {}
    changes = {
        "withdrawn": int(synced.get("withdrawn", 0)),
        "flagged": int(synced.get("flagged", 0)),
        "retired": int(extracted.get("retired", 0)),
        "queued": int(routed.get("queued", 0)),
        "auto_approved": int(routed.get("auto_approved", 0)),
    }
    if not any(changes.values()):
        raise AirflowSkipException("nothing changed (no candidate queued or auto-approved, no entry withdrawn or retired): kbops://kb/candidates not emitted")
    return changes
