"""Schema migrations: init creates the schema, re-running is a no-op that keeps data; each data-bearing
revision upgrades an older KB and downgrades cleanly (on SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, select, text

from kbops.config import Settings
from kbops.db import _alembic_config, current_revision, engine_for, init_db, session_scope
from kbops.kb.audit import record_audit
from kbops.schema import AuditEvent, Base, ChatGap, KbEntry, QueryLogEntry


def _kb(tmp_path, database_url) -> Settings:
    return Settings.load(env={"KBOPS_HOME": str(tmp_path / "home"), "KBOPS_DATABASE_URL": database_url}, config_file=None)


def _migrate(s: Settings, step, target: str) -> None:
    """``alembic upgrade/downgrade target`` on the KB of ``s``, in one transaction."""
    cfg = _alembic_config(s)
    with engine_for(s).begin() as conn:
        cfg.attributes["connection"] = conn
        step(cfg, target)


def _columns(s: Settings, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine_for(s)).get_columns(table)}


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
    s = _kb(tmp_path, database_url)
    _migrate(s, command.upgrade, "0007")
    with engine_for(s).begin() as conn:
        for name in ("lin", "wang"):
            conn.execute(text("INSERT INTO reviewers (name, role, created_at, updated_at) VALUES (:n, 'reviewer', :t, :t)"), {"n": name, "t": "2026-01-01 00:00:00"})
    _migrate(s, command.upgrade, "0008")
    assert current_revision(s) == "0008"
    with engine_for(s).connect() as conn:
        keys = conn.execute(text("SELECT session_key FROM reviewers")).scalars().all()
    assert len(set(keys)) == 2 and all(k and len(k) == 32 for k in keys)
    _migrate(s, command.downgrade, "0007")
    assert "session_key" not in _columns(s, "reviewers")
    assert "login_attempts" not in inspect(engine_for(s)).get_table_names()
    assert init_db(s) == current_revision(s) >= "0008"  # back up to the head


def test_0010_marks_existing_gaps_as_chat_gaps_and_downgrades_cleanly(tmp_path, database_url):
    """Existing chat_gaps rows become origin 'chat'; the columns come and go."""
    s = _kb(tmp_path, database_url)
    _migrate(s, command.upgrade, "0009")
    with engine_for(s).begin() as conn:
        conn.execute(text("INSERT INTO chat_gaps (topic_key, lang, question, alt_questions, support, reasons, evidence, status, updated_at) "
                          "VALUES ('gap:zh:1', 'zh', '能开发票吗', '[]', 2, '{}', '[]', 'open', '2026-01-01 00:00:00')"))
    init_db(s)
    with session_scope(s) as db:
        [gap] = db.scalars(select(ChatGap))
        assert (gap.origin, gap.last_seen, gap.answer_key) == ("chat", None, None)
    _migrate(s, command.downgrade, "0009")
    assert not {"origin", "last_seen", "answer_key"} & _columns(s, "chat_gaps")


def test_0011_keeps_logged_queries_without_a_confidence_and_downgrades_cleanly(tmp_path, database_url):
    """Queries logged before the bot's confidence was logged keep their rows, with no confidence (the raw-score rule reads them)."""
    s = _kb(tmp_path, database_url)
    _migrate(s, command.upgrade, "0010")
    with engine_for(s).begin() as conn:
        conn.execute(text("INSERT INTO query_log (at, question, score, handoff) VALUES ('2026-12-01 00:00:00', 'How long is delivery?', 0.7, false)"))
    init_db(s)
    with session_scope(s) as db:
        [row] = db.scalars(select(QueryLogEntry))
        assert (row.question, row.score, row.confidence) == ("How long is delivery?", 0.7, None)
    _migrate(s, command.downgrade, "0010")
    assert "confidence" not in _columns(s, "query_log") and {"score", "latency_ms"} <= _columns(s, "query_log")
    with engine_for(s).connect() as conn:
        assert conn.execute(text("SELECT question FROM query_log")).scalars().all() == ["How long is delivery?"]


def test_0012_backfills_the_phrasings_merges_taught_and_downgrades_cleanly(tmp_path, database_url):
    """An entry's alternates that a merge added (the audit log says which) become its reviewer_questions, if it
    still asks them; an entry no merge touched gets none."""
    s = _kb(tmp_path, database_url)
    _migrate(s, command.upgrade, "0011")
    entry = ("INSERT INTO kb_entries (id, entry_key, revision, origin, kind, lang, question, alt_questions, answer, tags, depends_on, fingerprint, "
             "status, approved_by, approved_via, updated_at) VALUES (:id, :key, 2, 'import', 'faq', 'zh', '退货要运费吗', :alts, '质量问题免运费。', "
             "'[]', '[]', 'x', 'active', 'lin', 'cli', '2026-12-01 00:00:00')")
    merge = ("INSERT INTO audit_log (at, actor, door, action, entry_id, before, after) VALUES ('2026-12-01 00:00:00', 'lin', 'cli', 'merge', :id, "
             ":before, :after)")
    with engine_for(s).begin() as conn:
        conn.execute(text(entry), {"id": 1, "key": "import:fee", "alts": '["退货收运费吗", "退货运费谁出"]'})
        conn.execute(text(entry), {"id": 2, "key": "import:other", "alts": '["退货收运费吗"]'})
        conn.execute(text(merge), {"id": 1, "before": '{"alt_questions": ["退货收运费吗"]}',
                                   "after": '{"alt_questions": ["退货收运费吗", "退货运费谁出", "已经不问了"]}'})
    init_db(s)
    with session_scope(s) as db:
        taught = {e.entry_key: e.reviewer_questions for e in db.scalars(select(KbEntry))}
    assert taught == {"import:fee": ["退货运费谁出"], "import:other": []}
    _migrate(s, command.downgrade, "0011")
    assert "reviewer_questions" not in _columns(s, "kb_entries") and "alt_questions" in _columns(s, "kb_entries")
