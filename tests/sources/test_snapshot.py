"""A file rewritten while sync reads it (a non-atomic writer) loses nothing.

A real writer thread rewrites products.csv row by row, again and again, while
the main thread syncs; no sync may infer a deletion, and the run ledger may
only hold the hash of the bytes that sync actually read.
"""

from __future__ import annotations

import hashlib
import threading
import time

from sqlalchemy import select

from kbops.db import session_scope
from kbops.pipeline import sync_sources
from kbops.schema import SourceRecord


class SlowWriter(threading.Thread):
    """Rewrites ``path`` with ``data`` in place, one line at a time, until stopped (then leaves it complete)."""

    def __init__(self, path, data: bytes, pause: float = 0.003):
        super().__init__(daemon=True)
        self.path, self.data, self.pause = path, data, pause
        self.stop = threading.Event()
        self.rewrites = 0

    def run(self) -> None:
        lines = self.data.splitlines(keepends=True)
        while not self.stop.is_set():
            with self.path.open("wb") as fh:  # truncates: a reader now sees a partial file
                for line in lines:
                    fh.write(line)
                    fh.flush()
                    time.sleep(self.pause)
            self.rewrites += 1
            time.sleep(self.pause * 3)
        self.path.write_bytes(self.data)


def live_products(settings) -> int:
    with session_scope(settings) as db:
        return len(
            db.scalars(
                select(SourceRecord.key).where(SourceRecord.source == "products", SourceRecord.is_current.is_(True), SourceRecord.deleted.is_(False))
            ).all()
        )


def test_file_rewritten_while_sync_reads_it_loses_nothing(settings, store):
    path = store / "products.csv"
    complete = path.read_bytes()
    complete_hash = hashlib.sha256(complete).hexdigest()
    [first] = sync_sources(settings, only="products")
    assert first.new == 20

    writer = SlowWriter(path, complete)
    writer.start()
    results = []
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline or len(results) < 3:
            [result] = sync_sources(settings, only="products")
            results.append(result)
    finally:
        writer.stop.set()
        writer.join()
    assert writer.rewrites >= 3
    [final] = sync_sources(settings, only="products")
    results.append(final)

    assert [r.deleted for r in results] == [0] * len(results)
    assert live_products(settings) == 20
    for r in results:
        if r.files.get("products.csv") == complete_hash and not r.skipped:
            # The ledger says "this run read the complete file": it must have read all 20 rows.
            assert r.read == 20, r
    assert final.unchanged == 20 and final.status == "ok"
