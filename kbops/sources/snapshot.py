"""Stable file snapshots: read a file only when no writer is changing it, and hash what was read.

An upstream export rewritten in place (a non-atomic writer) can be caught half
written. A half-written snapshot looks like "most products were deleted
upstream", so the bytes kbops parses must be a state the file was really
in, and the hash the run ledger keeps (to skip an identical file next time)
must be the hash of those very bytes, never of a second read.

:func:`read_snapshot` reads a file once it is quiet:

* a file changed less than ``settle`` seconds ago is watched for ``settle``
  seconds first (a writer pausing between rows is still writing);
* its size, mtime and inode are taken before and after the read, and the read
  is retried when they moved or the byte count differs from the size;
* after ``attempts`` tries the file is *unstable*: the caller treats it as
  unusable (no rows, no deletions inferred, no hash in the ledger).

Whether the bytes are complete (a cut-off last row) depends on the format and
is checked by the readers in :mod:`kbops.sources.files`.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

ATTEMPTS = 8


@dataclass(frozen=True)
class FileSnapshot:
    """One file as read: its bytes and their hash, or why it could not be read stably."""

    path: Path
    data: bytes | None
    sha256: str | None
    problem: str | None = None

    @property
    def name(self) -> str:
        return self.path.name


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


def read_snapshot(path: Path, settle: float = 0.2, attempts: int = ATTEMPTS, limit: int | None = None) -> FileSnapshot:
    """``path``'s bytes as they were at one moment when no writer was changing them.

    ``limit``: a file larger than this many bytes is not read (``data`` None,
    ``problem`` says so, ``sha256`` is a stand-in built from its size and
    mtime so an unchanged oversized file still compares equal).
    """
    moved = ""
    for attempt in range(attempts):
        before = path.stat()
        if limit is not None and before.st_size > limit:
            stand_in = hashlib.sha256(f"size={before.st_size};mtime={before.st_mtime_ns}".encode()).hexdigest()
            return FileSnapshot(path, None, stand_in, problem=f"{before.st_size:,} bytes, over the {limit:,} byte limit")
        if settle > 0 and time.time() - before.st_mtime < settle:
            # Changed a moment ago: a writer may only be pausing. Watch it for `settle` seconds.
            time.sleep(settle)
            again = path.stat()
            if _signature(again) != _signature(before):
                moved = "it changed while kbops waited for it to settle"
                continue
        with path.open("rb") as fh:
            data = fh.read()
        after = path.stat()
        if _signature(after) != _signature(before) or len(data) != after.st_size:
            moved = "it changed while kbops read it"
            time.sleep(min(0.05 * (attempt + 1), settle or 0.05))
            continue
        return FileSnapshot(path, data, hashlib.sha256(data).hexdigest())
    return FileSnapshot(
        path,
        None,
        None,
        problem=f"{moved} ({attempts} tries): a writer is rewriting it in place; nothing was read from it this time "
        "(make the exporter write a temporary file and rename it over this one)",
    )
