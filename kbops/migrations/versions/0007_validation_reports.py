"""merge decisions on review items and stored validation reports (issue 5)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_PENDING_OLD = (
    "CREATE VIEW pending_review AS "
    "SELECT id, origin, kind, lang, support, priority, question, answer, "
    "decision, decided_by, apply_error, created_at "
    "FROM review_items WHERE state = 'open' ORDER BY priority DESC, created_at, id"
)
_PENDING_NEW = (
    "CREATE VIEW pending_review AS "
    "SELECT id, origin, kind, lang, support, priority, question, answer, proposed_merge_into, "
    "decision, decided_by, merge_into, apply_error, created_at "
    "FROM review_items WHERE state = 'open' ORDER BY priority DESC, created_at, id"
)


def upgrade() -> None:
    op.execute("DROP VIEW pending_review")
    with op.batch_alter_table("review_items") as batch:
        batch.add_column(sa.Column("merge_into", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("proposed_merge_into", sa.String(length=300), nullable=True))
    op.execute(_PENDING_NEW)
    op.create_table(
        "validation_reports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("pipeline_runs.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("suite", sa.String(length=100), nullable=False),
        sa.Column("checked", sa.Integer(), nullable=False),
        sa.Column("valid", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("near_duplicates", sa.Integer(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.Column("statistics", sa.JSON(), nullable=False),
    )
    op.create_index("ix_validation_reports_run_id", "validation_reports", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_validation_reports_run_id", table_name="validation_reports")
    op.drop_table("validation_reports")
    op.execute("DROP VIEW pending_review")
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("proposed_merge_into")
        batch.drop_column("merge_into")
    op.execute(_PENDING_OLD)
