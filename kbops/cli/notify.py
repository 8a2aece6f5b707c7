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
(:mod:`kbops.sources.events`, which publishes it and reads it back).
"""

from __future__ import annotations

import argparse
from typing import Any

from kbops.cli._base import Subparsers, add_command, add_json_flag, emit
from kbops.config import Settings
from kbops.sources.events import publish_change


def register(subparsers: Subparsers) -> None:
    """Add ``kbops notify``."""
    p = add_command(subparsers, "notify", cmd_notify, "announce that a source changed: kb_ingest syncs it now (Redis pub/sub event)", needs_db=False)
    p.add_argument("source", help="the source's name in sources.toml")
    p.add_argument("--reason", default="", help="why (kept in the event, shown in the kb_ingest run)")
    add_json_flag(p)


def cmd_notify(settings: Settings, args: argparse.Namespace) -> int:
    sent = publish_change(settings, args.source, args.reason)
    emit(args, sent, _print_sent)
    return 0


def _print_sent(sent: dict[str, Any]) -> None:
    who = f"{sent['receivers']} listener(s)" if sent["receivers"] else "no listener (is `airflow triggerer` running? the hourly kb_ingest will pick the change up)"
    print(f"change of {sent['source']!r} announced on {sent['channel']}: {who}")
