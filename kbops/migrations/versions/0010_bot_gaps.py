"""bot gaps (issue 14): chat_gaps learns where a topic came from, when it was last asked, and which entry answers it

* ``origin``: ``chat`` (mined from agent chats, the only kind so far) or ``bot``
  (the bot's own handed-off and low-confidence queries from ``query_log``).
* ``last_seen``: when a question of the topic was last asked (ranks bot gaps by
  frequency × recency).
* ``answer_key``: the entry key a reviewer wrote to answer the topic.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_gaps") as batch:
        batch.add_column(sa.Column("origin", sa.String(length=8), nullable=False, server_default="chat"))
        batch.add_column(sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("answer_key", sa.String(length=300), nullable=True))
    op.create_index("ix_chat_gaps_origin", "chat_gaps", ["origin"])


def downgrade() -> None:
    op.drop_index("ix_chat_gaps_origin", table_name="chat_gaps")
    with op.batch_alter_table("chat_gaps") as batch:
        batch.drop_column("answer_key")
        batch.drop_column("last_seen")
        batch.drop_column("origin")
