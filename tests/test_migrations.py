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


def test_0008_upgrades_a_0007_kb_with_accounts_and_downgrades_cleanly(tmp_path, database_url):
    """Existing accounts get distinct session keys (old cookies end once); the closed-item trigger comes and goes."""
    from alembic import command
    from sqlalchemy import text

    from kbops.config import Settings
    from kbops.db import _alembic_config

    s = Settings.load(env={"KBOPS_HOME": str(tmp_path / "home"), "KBOPS_DATABASE_URL": database_url}, config_file=None)

    def migrate(step, target):
        cfg = _alembic_config(s)
        with engine_for(s).begin() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, target)

    migrate(command.upgrade, "0007")
    with engine_for(s).begin() as conn:
        for name in ("lin", "wang"):
            conn.execute(text("INSERT INTO reviewers (name, role, created_at, updated_at) VALUES (:n, 'reviewer', :t, :t)"), {"n": name, "t": "2026-01-01 00:00:00"})
    migrate(command.upgrade, "0008")
    assert current_revision(s) == "0008"
    with engine_for(s).connect() as conn:
        keys = conn.execute(text("SELECT session_key FROM reviewers")).scalars().all()
    assert len(set(keys)) == 2 and all(k and len(k) == 32 for k in keys)
    migrate(command.downgrade, "0007")
    assert "session_key" not in {c["name"] for c in inspect(engine_for(s)).get_columns("reviewers")}
    assert "login_attempts" not in inspect(engine_for(s)).get_table_names()
    assert init_db(s) == current_revision(s) >= "0008"  # back up to the head
