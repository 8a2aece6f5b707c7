"""``kbops notify SOURCE``: tell the pipeline that a source changed (event-driven freshness).

Publishes one change event on Redis pub/sub (``KBOPS_EVENTS_URL``, channel
``KBOPS_EVENTS_CHANNEL``, default ``kbops.source_changed``). kb_ingest's
AssetWatcher — common.messaging's ``MessageQueueTrigger`` with the redis
provider's ``redis+pubsub`` scheme, running in ``airflow triggerer`` — turns the
message into an asset event that starts a kb_ingest run for that source alone
(:func:`kbops.airflow_adapter.sources_to_sync`); the hourly schedule stays as
the fallback for a missed message (pub/sub keeps no backlog: a message published
while no triggerer listens is lost, and the next scheduled run picks the change up).

The ERP's "price saved" hook, a database trigger's listener or an operator runs it::

    kbops notify erp_prices --reason "price list 2026-12 imported"

The event is one JSON object: ``{"source": "erp_prices", "at": "<UTC ISO time>", "reason": "…"}``
(:func:`change_event`, read back by :func:`kbops.airflow_adapter.parse_change`).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_json_flag, emit
from kbops.config import Settings
from kbops.errors import ConfigError, TransientError
from kbops.sources.config import load_sources


def register(subparsers: Subparsers) -> None:
    """Add ``kbops notify``."""
    p = add_command(subparsers, "notify", cmd_notify, "announce that a source changed: kb_ingest syncs it now (Redis pub/sub event)", needs_db=False)
    p.add_argument("source", help="the source's name in sources.toml")
    p.add_argument("--reason", default="", help="why (kept in the event, shown in the kb_ingest run)")
    add_json_flag(p)


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


def cmd_notify(settings: Settings, args: argparse.Namespace) -> int:
    sent = publish_change(settings, args.source, args.reason)
    emit(args, sent, _print_sent)
    return 0


def _print_sent(sent: dict[str, Any]) -> None:
    who = f"{sent['receivers']} listener(s)" if sent["receivers"] else "no listener (is `airflow triggerer` running? the hourly kb_ingest will pick the change up)"
    print(f"change of {sent['source']!r} announced on {sent['channel']}: {who}")
