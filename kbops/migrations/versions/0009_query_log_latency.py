"""query_log: the server latency and the request id of each bot query (issue 13 / 14)

* ``query_log.latency_ms``: how long the bot API took to answer the query (milliseconds,
  measured in the server from the request's arrival to the answer being ready);
  empty for queries logged by ``kbops ask`` and for rows written before this revision.
* ``query_log.request_id``: the ``X-Request-ID`` of the HTTP request that asked it (the
  caller's own when it sent a valid one, else the one the server generated), so a
  logged query can be matched with the bot framework's logs. Both columns are nullable:
  adding them rewrites nothing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("query_log", sa.Column("latency_ms", sa.Float(), nullable=True))
    op.add_column("query_log", sa.Column("request_id", sa.String(length=128), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by recreating the table (batch mode); query_log carries no triggers.
    with op.batch_alter_table("query_log") as batch:
        batch.drop_column("request_id")
        batch.drop_column("latency_ms")
