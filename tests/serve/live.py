"""Real servers for serve tests: an app on a real uvicorn server on 127.0.0.1, and store helpers.

Used where requests must really run in parallel (swaps under load, replicas that
must stay fresh, sign-in bursts); TestClient serialises them.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from kbops.pipeline import decide, ingest
from tests.helpers import list_items


class LiveServer:
    """``with LiveServer(app) as server:`` — ``app`` served in a thread; ``server.url`` is its address."""

    def __init__(self, app: Any):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def set_price(store: Any, sku: str, price: str) -> None:
    """Change one SKU's price in the sample store's prices.csv (as an upstream export would)."""
    path = store / "prices.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(f"{sku},{price},CNY,," if ln.startswith(f"{sku},") else ln for ln in lines) + "\n", encoding="utf-8")


def approve_all(settings: Any) -> None:
    """Ingest, then approve everything queued (a reviewer who agrees with the whole queue)."""
    ingest(settings)
    items = [i.id for i in list_items(settings)]
    if items:
        decide(settings, items, "approve", by="lin")
