"""The SQL door's guarantees: the review table never contradicts the KB, and SQL decisions name reviewers.

A decision written with plain SQL on an item that is no longer open (applied, or
superseded by a newer candidate) is refused by the database itself (a trigger from
migration 0008, on SQLite and PostgreSQL), so the row keeps showing what was applied.
Once reviewer accounts exist, a SQL decision must name one of them in decided_by.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from kbops.db import engine_for, session_scope
from kbops.pipeline import apply_decisions, decide
from kbops.review import accounts
from kbops.schema import AuditEvent, ReviewItem
from tests.helpers import list_items
from tests.review.conftest import entry_by_key


def _sql(settings, statement: str, **params) -> int:
    with engine_for(settings).begin() as conn:
        return conn.execute(text(statement), params).rowcount


def _row(settings, item_id) -> ReviewItem:
    with session_scope(settings) as db:
        return db.get(ReviewItem, item_id)


def test_a_sql_decision_on_an_applied_item_is_refused_and_the_row_keeps_what_was_applied(queued):
    s = queued
    item = next(i for i in list_items(s) if not i.proposed_merge_into)
    decide(s, [item.id], "approve", by="lin")
    with pytest.raises(DBAPIError, match="not open"):
        _sql(s, "UPDATE review_items SET decision = 'reject', decided_by = 'zhao', note = 'too vague' WHERE id = :i", i=item.id)
    row = _row(s, item.id)
    assert (row.state, row.decision, row.decided_by, row.note) == ("applied", "approve", "lin", None)
    assert entry_by_key(s, item.entry_key).status == "active"
    # Re-opening a closed row to decide it again is refused too.
    with pytest.raises(DBAPIError, match="not open"):
        _sql(s, "UPDATE review_items SET state = 'open' WHERE id = :i", i=item.id)
    assert apply_decisions(s).as_dict()["applied"] == 0


def test_a_sql_decision_on_a_superseded_item_is_refused(queued):
    s = queued
    old, other = list_items(s)[:2]
    with session_scope(s) as db:  # what routing does when a newer candidate for the same entry arrives
        db.get(ReviewItem, old.id).state = "superseded"
    with pytest.raises(DBAPIError, match="not open"):
        _sql(s, "UPDATE review_items SET decision = 'reject', decided_by = 'zhao', note = 'outdated' WHERE id = :i", i=old.id)
    assert _row(s, old.id).decision is None
    # One statement over an open and a closed row is refused as a whole: nothing half-done.
    with pytest.raises(DBAPIError, match="not open"):
        _sql(s, "UPDATE review_items SET decision = 'reject', decided_by = 'zhao', note = 'outdated' WHERE id IN (:a, :b)", a=old.id, b=other.id)
    assert _row(s, other.id).decision is None
    # The contract's own form (AND state = 'open') just matches nothing on a closed row, and works on an open one.
    assert _sql(s, "UPDATE review_items SET decision = 'reject', decided_by = 'zhao', note = 'outdated' WHERE id = :i AND state = 'open'", i=old.id) == 0
    assert _sql(s, "UPDATE review_items SET decision = 'reject', decided_by = 'zhao', note = 'outdated' WHERE id = :i AND state = 'open'", i=other.id) == 1
    assert apply_decisions(s).rejected == 1
    assert _row(s, other.id).state == "applied"


def test_a_sql_decision_must_name_a_reviewer_account_once_accounts_exist(queued):
    s = queued
    first, ghost_item = [i for i in list_items(s) if not i.proposed_merge_into][:2]
    # No accounts at all (a KB decided only through SQL): any name is taken as given.
    _sql(s, "UPDATE review_items SET decision = 'approve', decided_by = 'zhao' WHERE id = :i", i=first.id)
    assert apply_decisions(s).approved == 1
    with session_scope(s) as db:
        accounts.add_reviewer(db, "lin", "correct horse")
    _sql(s, "UPDATE review_items SET decision = 'approve', decided_by = 'ghost' WHERE id = :i", i=ghost_item.id)
    result = apply_decisions(s)
    assert result.applied == 0
    error = result.errors[ghost_item.id]
    assert "'ghost' is not a reviewer account" in error and "kbops reviewers add ghost" in error
    row = _row(s, ghost_item.id)
    assert (row.state, row.apply_error) == ("open", error)
    assert entry_by_key(s, ghost_item.entry_key) is None
    _sql(s, "UPDATE review_items SET decided_by = 'lin' WHERE id = :i", i=ghost_item.id)
    assert apply_decisions(s).approved == 1
    with session_scope(s) as db:
        event = db.scalar(select(AuditEvent).where(AuditEvent.review_item_id == ghost_item.id))
        assert (event.actor, event.door) == ("lin", "sql")
