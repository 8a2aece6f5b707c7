"""Schema migrations: init creates the schema, re-running is a no-op that keeps data."""

from __future__ import annotations

from sqlalchemy import inspect

from kbops.db import current_revision, engine_for, init_db, session_scope
from kbops.kb.audit import record_audit
from kbops.schema import AuditEvent, Base


def test_init_is_idempotent_and_keeps_data(settings):
    rev = current_revision(settings)
    assert rev
    with session_scope(settings) as db:
        record_audit(db, actor="lin", door="cli", action="approve")
    assert init_db(settings) == rev
    with session_scope(settings) as db:
        assert db.query(AuditEvent).count() == 1


def test_migrations_create_exactly_the_model_tables(settings):
    tables = set(inspect(engine_for(settings)).get_table_names()) - {"alembic_version"}
    assert tables == set(Base.metadata.tables)


def test_sql_door_views_exist(settings):
    assert {"pending_review", "refused_decisions"} <= set(inspect(engine_for(settings)).get_view_names())
