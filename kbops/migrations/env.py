"""Alembic environment: runs migrations on the connection kbops.db passes in."""

from alembic import context

from kbops.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - kbops always passes a connection
    from sqlalchemy import create_engine

    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("kbops.db passes the connection in; a bare `alembic upgrade` needs sqlalchemy.url")
    connection = create_engine(url).connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
