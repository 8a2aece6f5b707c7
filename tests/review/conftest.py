"""Shared review fixtures: the sample store run through sync → extract → validate → route."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from kbops.db import session_scope
from kbops.pipeline import extract_candidates, route_candidates, sync_sources, validate_candidates
from kbops.schema import KbEntry


@pytest.fixture
def queued(settings):
    """A KB whose structured facts are auto-approved and the rest waits in the review table."""
    sync_sources(settings)
    extract_candidates(settings)
    validate_candidates(settings)
    route_candidates(settings)
    return settings


def entry_by_key(settings, key: str) -> KbEntry | None:
    with session_scope(settings) as db:
        return db.scalar(select(KbEntry).where(KbEntry.entry_key == key))
