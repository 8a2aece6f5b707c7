"""review-table views for the SQL door (sql/review_contract.sql)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE VIEW pending_review AS "
        "SELECT id, origin, kind, lang, support, priority, question, answer, "
        "decision, decided_by, apply_error, created_at "
        "FROM review_items WHERE state = 'open' ORDER BY priority DESC, created_at, id"
    )
    op.execute(
        "CREATE VIEW refused_decisions AS "
        "SELECT id, decision, decided_by, decided_at, apply_error, question "
        "FROM review_items WHERE state = 'open' AND apply_error IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP VIEW refused_decisions")
    op.execute("DROP VIEW pending_review")
