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

import json
import logging
import os
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from kbops.config import Settings
from kbops.errors import ConfigError, KbopsError
from kbops.index.store import sync_from_store
from kbops.sources.config import SourceConfig, load_sources
from kbops.sources.events import parse_change

log = logging.getLogger("kbops.airflow")

#: Emitted by kb_ingest when the review queue or auto-approved KB changed; schedules kb_publish.
KB_CANDIDATES = Asset("kbops://kb/candidates")
#: Emitted by kb_publish when a new release is active (only then: :func:`announce_release`).
KB_RELEASE = Asset("kbops://kb/release")
#: Updated by the triggerer for each change event (``kbops notify``); schedules kb_ingest (:func:`source_changed_asset`).
SOURCE_CHANGED_URI = "kbops://sources/changed"
#: The Airflow Connection of the Redis server carrying change events (e.g. AIRFLOW_CONN_KBOPS_EVENTS=redis://host:6379/0).
EVENTS_CONN_ID = "kbops_events"
#: Seconds between the triggerer's reads of the events channel (a message waits at most this long).
EVENTS_POLL_SECONDS = 1.0


def connection_url(conn_id: str) -> str:
    """An Airflow Connection as a SQLAlchemy URL."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    if conn.conn_type == "sqlite":  # the file path arrives in host (UI) or schema (URI form)
        return f"sqlite:///{conn.host or conn.schema}"
    uri = conn.get_uri()
    return "postgresql://" + uri[len("postgres://"):] if uri.startswith("postgres://") else uri


def export_connections(settings: Settings) -> None:
    """Put each SQL source's Airflow Connection (``conn_id``) into its URL variable
    (``url_env``, else ``KBOPS_CONN_<CONN_ID>``: :attr:`SourceConfig.url_variable`).

    An explicitly set variable wins, so a worker can still override it. A Connection
    Airflow cannot find is left unresolved: that source's sync fails with a message
    naming it, the other sources still sync.
    """
    if settings.sources_file is None or not settings.sources_file.is_file():
        return
    for source in load_sources(settings.sources_file):
        if source.type == "sql" and source.conn_id and not os.environ.get(source.url_variable):
            try:
                os.environ[source.url_variable] = connection_url(source.conn_id)
            except Exception as exc:  # noqa: BLE001 - Airflow's "connection not defined" has no stable class across versions
                log.warning("source %r: Airflow Connection %r not found: %s", source.name, source.conn_id, exc)


def run_step(step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one kbops step with env Settings; return a JSON-able result for XCom.

    The result is also written to the task log as a readable summary (:func:`log_result`):
    its counts on one line, each warning and quarantined row on its own WARNING line.
    """
    name = getattr(step, "__name__", "step")
    _log_to_task()
    try:
        settings = Settings.load()
        export_connections(settings)
        result = step(settings, *args, **kwargs)
    except KbopsError as exc:
        if exc.transient:
            log.warning("%s: transient failure, Airflow retries the task: %s", name, exc)
            raise
        log.error("%s: %s: %s (not retried: fix the cause, then clear the task)", name, type(exc).__name__, exc)
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
    if hasattr(result, "as_dict"):
        result = result.as_dict()
    elif isinstance(result, list):
        result = [r.as_dict() if hasattr(r, "as_dict") else r for r in result]
    log_result(name, result)
    return result


def _log_to_task() -> None:
    """kbops' INFO lines reach the task log whatever Airflow's logging_level (records propagate to its handlers).

    Also re-enables ``kbops.*`` loggers created before Airflow configured logging (its dictConfig disables
    the loggers that exist at that moment), so no kbops line is silently dropped."""
    logger = logging.getLogger("kbops")
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    for name, existing in list(logging.root.manager.loggerDict.items()):
        if (name == "kbops" or name.startswith("kbops.")) and isinstance(existing, logging.Logger):
            existing.disabled = False


#: Result fields left out of the summary line (bookkeeping, not news): they stay in the XCom.
_NOT_SUMMARIZED = frozenset({"config", "files", "run_id", "watermark", "exception"})


def summarize(result: Any) -> str:
    """One line for people: the scalar fields that say something (non-zero counts, ids, states), in order."""
    if isinstance(result, list):
        return "; ".join(summarize(r) for r in result) or "nothing"
    if not isinstance(result, dict):
        return str(result)
    parts = []
    for key, value in result.items():
        if key in _NOT_SUMMARIZED:
            continue
        if isinstance(value, bool):
            if value:
                parts.append(f"{key}=yes")
        elif isinstance(value, (int, float)) and value:
            parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
        elif isinstance(value, str) and value:
            parts.append(f"{key}={value}")
        elif isinstance(value, (list, dict)) and value and key not in ("warnings", "messages", "errors", "files"):
            parts.append(f"{key}={len(value)}")
    return ", ".join(parts) or "nothing to do"


def log_result(name: str, result: Any) -> None:
    """Write a step's result to the task log: a summary line, then each warning and message (a quarantined
    row's reason, a held-back deletion) on its own WARNING line, and a failed source's error."""
    log.info("%s: %s", name, summarize(result))
    for item in result if isinstance(result, list) else [result]:
        if not isinstance(item, dict):
            continue
        for key in ("warnings", "messages", "errors"):
            entries = item.get(key)
            for entry in entries if isinstance(entries, list) else ():
                log.warning("%s: %s", name, entry)
        if item.get("error"):
            log.error("%s: %s", name, item["error"])


def sources_to_sync(settings: Settings, triggering_asset_events: Any = None) -> list[str]:
    """The sources a kb_ingest run syncs: those named by the change events that triggered it
    (``kbops notify SOURCE`` → Redis → the AssetWatcher), else all of them (a scheduled or manual run).

    An event naming no configured source is logged and makes the run sync every source.
    """
    names = configured_source_names(settings)
    changed: list[str] = []
    for events in (triggering_asset_events or {}).values():
        for event in events:
            extra = getattr(event, "extra", None) or {}
            payload = extra.get("payload") if isinstance(extra, dict) else None
            source = parse_change(payload.get("data") if isinstance(payload, dict) else payload)
            if source is not None:
                changed.append(source)
    if not changed:
        return names
    unknown = sorted(set(changed) - set(names))
    if unknown:
        log.warning("change events name unknown sources %s (configured: %s): syncing every source", unknown, names)
        return names
    wanted = [n for n in names if n in changed]
    log.info("triggered by change events of %s: syncing %s", sorted(set(changed)), wanted)
    return wanted


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

    def run(settings: Settings) -> Any:
        return step(settings, source_named(settings, name))

    run.__name__ = getattr(step, "__name__", "step")  # the task log's summary line names the step, not a lambda
    return run_step(run)


#: What counts as a change worth a publish: entries withdrawn (sync) or retired (extract), review
#: items flagged (sync) or queued, candidates auto-approved (route).
CHANGE_COUNTS = ("withdrawn", "flagged", "retired", "queued", "auto_approved")


def sync_changes(synced: Iterable[dict[str, Any] | None] | None) -> dict[str, int]:
    """What the sync tasks that succeeded changed (a failed source has no result and is left out)."""
    results = [r for r in (synced or ()) if isinstance(r, dict)]
    return {key: sum(int(r.get(key) or 0) for r in results) for key in ("withdrawn", "flagged", "deleted")}


def announce_release(activated: dict[str, Any]) -> dict[str, Any]:
    """kb_publish's outlet task: the activation's result when a new release went live; ``AirflowSkipException``
    (no ``kbops://kb/release`` event) when the run changed nothing."""
    if not activated.get("changed"):
        raise AirflowSkipException(f"no new release (serving {activated.get('release_id') or 'none'}): kbops://kb/release not emitted")
    log.info("release %s is live (was %s); %s entries revoked for replicas still loading it", activated["release_id"], activated.get("previous"), activated.get("revoked", 0))
    return activated


def publish_step(step: Callable[..., Any], *args: Any) -> Any:
    """:func:`run_step` for kb_publish's build and activation: this worker's index directory first catches
    up with the shared release store (another worker may have published last)."""

    def run(settings: Settings) -> Any:
        sync_from_store(settings)
        return step(settings, *args)

    run.__name__ = getattr(step, "__name__", "publish")
    return run_step(run)


def source_changed_asset(settings: Settings | None = None) -> Asset:
    """``kbops://sources/changed``, watched in the triggerer: a message on the events channel
    (``kbops notify``) becomes an asset event that schedules kb_ingest.

    common.messaging's MessageQueueTrigger, scheme ``redis+pubsub`` (implemented by the redis
    provider's AwaitMessageTrigger), Airflow Connection ``kbops_events`` (the Redis server), polled
    every second (the provider's default is 60 s).
    """
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.sdk import AssetWatcher

    channel = (settings.events_channel if settings else None) or Settings.events_channel
    trigger = MessageQueueTrigger(scheme="redis+pubsub", channels=[channel], redis_conn_id=EVENTS_CONN_ID, poll_interval=EVENTS_POLL_SECONDS)
    return Asset(SOURCE_CHANGED_URI, watchers=[AssetWatcher(name="kbops_source_changed", trigger=trigger)])


def alert_on_failure(context: Any) -> None:
    """DAG and task failure callback: POST a JSON alert to ``KBOPS_ALERT_WEBHOOK`` (nothing when unset).

    Never raises: an unreachable webhook is logged, the failure itself is what matters.
    """
    try:
        url = Settings.load().alert_webhook
    except KbopsError as exc:
        log.error("alert not sent: settings unreadable: %s", exc)
        return
    if not url:
        return
    payload = alert_payload(context)
    request = urllib.request.Request(url, data=json.dumps(payload, default=str).encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the operator's own URL
            response.read()
        log.info("failure alert sent for %s", payload.get("task_id") or payload.get("dag_id"))
    except (OSError, ValueError) as exc:
        log.error("failure alert to KBOPS_ALERT_WEBHOOK not delivered: %s", exc)


def alert_payload(context: Any) -> dict[str, Any]:
    """What a failure alert says: which DAG, run and task failed, on which try, and why."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    return {
        "kind": "kbops_failure",
        "dag_id": getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None),
        "run_id": getattr(dag_run, "run_id", None) or context.get("run_id"),
        "task_id": getattr(ti, "task_id", None),
        "map_index": getattr(ti, "map_index", None),
        "try_number": getattr(ti, "try_number", None),
        "reason": str(context.get("exception") or context.get("reason") or "failed"),
        "log_url": getattr(ti, "log_url", None),
    }


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
