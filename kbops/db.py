"""Engines, sessions and schema migrations for the KB database.

SQLite (the default, a file under KBOPS_HOME) and PostgreSQL run the same code
and the same Alembic migrations. ``init_db`` is idempotent: it creates a new
database or upgrades an old one to the current schema without losing data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from kbops.config import Settings
from kbops.errors import ConfigError, TransientError

MIGRATIONS = Path(__file__).parent / "migrations"


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # noqa: BLE001 - translated into our tree
        raise ConfigError(f"database URL {url!r} is not usable: {exc}; check KBOPS_DATABASE_URL") from None


def engine_for(settings: Settings) -> Engine:
    return _engine(settings.database_url)


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    factory = sessionmaker(engine_for(settings), expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except OperationalError as exc:
        session.rollback()
        raise TransientError(f"database error: {exc.orig}; retry the command") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(settings: Settings):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return cfg


def init_db(settings: Settings) -> str:
    """Create or upgrade the KB database to the current schema; return its revision."""
    from alembic import command

    engine = engine_for(settings)
    cfg = _alembic_config(settings)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise ConfigError(
            f"cannot open the KB database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}; check KBOPS_DATABASE_URL"
        ) from None
    return current_revision(settings)


def current_revision(settings: Settings) -> str:
    from alembic.runtime.migration import MigrationContext

    with engine_for(settings).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() or ""


def require_db(settings: Settings) -> None:
    """Fail with a clear message when the KB database was never initialised."""
    try:
        tables = inspect(engine_for(settings)).get_table_names()
    except OperationalError as exc:
        raise ConfigError(f"cannot open the KB database: {exc.orig}; check KBOPS_DATABASE_URL") from None
    if "kb_entries" not in tables:
        raise ConfigError("the KB database is not initialised: run `kbops init` first")
