"""Settings-level shortcuts for tests: open a session (as a door does), call the db-level API.

The library's own doors are kbops.pipeline, the CLI and the web handlers; these
read-side shortcuts keep tests about queues and golden sets short.
"""

from __future__ import annotations

from typing import Any

from kbops.config import Settings
from kbops.db import session_scope
from kbops.index import golden
from kbops.review import queue
from kbops.schema import Candidate, ReviewItem, ValidationReport
from kbops.validate import get_report as _get_report


def list_items(settings: Settings, state: str = "open", limit: int = 200) -> list[ReviewItem]:
    with session_scope(settings) as db:
        return queue.list_items(db, state, limit)


def invalid_candidates(settings: Settings, limit: int = 200) -> list[Candidate]:
    with session_scope(settings) as db:
        return queue.invalid_candidates(db, limit)


def get_report(settings: Settings, report_id: int | None = None) -> ValidationReport | None:
    with session_scope(settings) as db:
        return _get_report(db, report_id)


def add_golden(settings: Settings, pairs: list[tuple[str, str]], by: str) -> int:
    with session_scope(settings) as db:
        return golden.add_golden(db, pairs, by)


def list_golden(settings: Settings) -> list[dict[str, Any]]:
    with session_scope(settings) as db:
        return golden.list_golden(db)


def remove_golden(settings: Settings, golden_id: int) -> None:
    with session_scope(settings) as db:
        golden.remove_golden(db, golden_id)
