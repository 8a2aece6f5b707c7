"""The loop's steps as plain functions: what the DAGs, the CLI and the tests call.

``kb_ingest``:  sync_sources → extract_candidates → validate_candidates → route_candidates
``kb_publish``: apply_decisions → build_release → activate_release

Each step reads its work from the KB database (records not yet extracted,
candidates not yet validated, decisions not yet applied), so any step can be
re-run for the same interval and does only what is left.
"""

from __future__ import annotations

from typing import Any

from kbops.config import Settings
from kbops.db import require_db
from kbops.extract import extract_candidates
from kbops.index.publish import activate_release, build_release
from kbops.review.queue import apply_decisions, route_candidates
from kbops.sources.sync import sync_sources
from kbops.validate import validate_candidates

__all__ = [
    "sync_sources",
    "extract_candidates",
    "validate_candidates",
    "route_candidates",
    "apply_decisions",
    "build_release",
    "activate_release",
    "ingest",
    "publish",
]


def ingest(settings: Settings, source: str | None = None, confirm_deletions: bool = False) -> dict[str, Any]:
    """The whole of kb_ingest in one call (what `kbops sync` runs)."""
    require_db(settings)
    return {
        "sync": [r.as_dict() for r in sync_sources(settings, source, confirm_deletions)],
        "extract": extract_candidates(settings).as_dict(),
        "validate": validate_candidates(settings).as_dict(),
        "route": route_candidates(settings).as_dict(),
    }


def publish(settings: Settings, full: bool = False, force: bool = False, by: str = "operator") -> dict[str, Any]:
    """The whole of kb_publish in one call (what `kbops publish` runs).

    ``force`` activates a release that answers fewer golden questions than the
    active one (audited under ``by``)."""
    require_db(settings)
    applied = apply_decisions(settings)
    built = build_release(settings, full=full)
    activation = activate_release(settings, built.release_id, force=force, by=by) if built.release_id else {"changed": False}
    return {"apply": applied.as_dict(), "build": built.as_dict(), "activate": activation}
