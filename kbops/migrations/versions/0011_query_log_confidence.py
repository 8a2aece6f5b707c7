"""query_log: the bot's calibrated confidence in each answer

* ``query_log.confidence``: the probability the bot gave its top answer being right
  (``Answer.confidence``, calibrated per language at publish; kbops/index/calibration.py).
  The bot answers by it, not by the raw ``score``, so the bot's own low-confidence
  answers (kbops/review/gaps.py) are read from it. Empty when no entry fitted the
  question, and for rows written before this revision (those keep the raw-score rule).
  Nullable: adding it rewrites nothing.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("query_log", sa.Column("confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by recreating the table (batch mode); query_log carries no triggers.
    with op.batch_alter_table("query_log") as batch:
        batch.drop_column("confidence")
