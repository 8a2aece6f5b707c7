"""chat mining state (issue 4): unanswered questions kept as exchanges of kind handoff/no_answer, and the chat_gaps table

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_exchanges") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="qa"))
    op.create_table(
        "chat_gaps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("topic_key", sa.String(length=80), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("alt_questions", sa.JSON(), nullable=False),
        sa.Column("support", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("kb_score", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("topic_key"),
    )
    op.create_index("ix_chat_gaps_status", "chat_gaps", ["status"])


def downgrade() -> None:
    op.drop_index("ix_chat_gaps_status", table_name="chat_gaps")
    op.drop_table("chat_gaps")
    with op.batch_alter_table("chat_exchanges") as batch:
        batch.drop_column("kind")
