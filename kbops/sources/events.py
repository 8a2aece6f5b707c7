"""Change events: how a source tells the pipeline it changed (event-driven freshness).

One event is one JSON object, ``{"source": "erp_prices", "at": "<UTC ISO time>",
"reason": "…"}`` (:func:`change_event`), published on Redis pub/sub
(``KBOPS_EVENTS_URL``, channel ``KBOPS_EVENTS_CHANNEL``, default
``kbops.source_changed``) by :func:`publish_change` — ``kbops notify SOURCE``,
an ERP's "price saved" hook, a database trigger's listener. kb_ingest's
AssetWatcher (common.messaging's ``MessageQueueTrigger``, the redis provider's
``redis+pubsub`` scheme, in ``airflow triggerer``) turns a message into an
asset event, and :func:`parse_change` reads the source back out of it
(:func:`kbops.airflow_adapter.sources_to_sync`) so that run syncs that source
alone. Pub/sub keeps no backlog: a message sent while no triggerer listens is
lost, and the hourly schedule picks the change up.

Light on purpose (json and datetime at import; redis only when publishing): the
DAG files import it through the adapter at every parse.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kbops.config import Settings
from kbops.errors import ConfigError, TransientError
from kbops.sources.config import load_sources


def change_event(source: str, reason: str = "", at: datetime | None = None) -> str:
    """The event's JSON text."""
    return json.dumps({"source": source, "at": (at or datetime.now(UTC)).isoformat(), "reason": reason}, ensure_ascii=False)


def publish_change(settings: Settings, source: str, reason: str = "") -> dict[str, Any]:
    """Publish the change event for ``source``; returns what was sent and how many listeners received it.

    ConfigError when sources are configured and none is called ``source``; TransientError when
    Redis cannot be reached (run it again).
    """
    if settings.sources_file is not None and settings.sources_file.is_file():
        names = [s.name for s in load_sources(settings.sources_file)]
        if source not in names:
            raise ConfigError(f"no source named {source!r}; configured sources: {', '.join(names)}", source=source)
    try:
        import redis
    except ImportError:  # pragma: no cover - a core dependency
        raise ConfigError("kbops notify needs the redis package (a kbops dependency): reinstall kbops") from None
    message = change_event(source, reason)
    client = redis.Redis.from_url(settings.events_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        receivers = int(client.publish(settings.events_channel, message))  # type: ignore[arg-type]
    except redis.RedisError as exc:
        shown = settings.events_url.split("@")[-1]
        raise TransientError(f"cannot publish the change event on {shown} (KBOPS_EVENTS_URL): {exc}", source=source) from None
    finally:
        client.close()
    return {"source": source, "channel": settings.events_channel, "receivers": receivers, "event": json.loads(message)}


def parse_change(data: Any) -> str | None:
    """The source a change event names (``kbops notify``'s JSON, or a bare source name); None when it names none."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    if isinstance(data, dict):
        value = data.get("source")
        return str(value) if value else None
    if not isinstance(data, str) or not data.strip():
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        return data.strip()
    return parse_change(parsed) if isinstance(parsed, dict) else None
