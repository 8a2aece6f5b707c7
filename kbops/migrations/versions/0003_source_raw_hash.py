"""source_records.raw_hash and a covering scan index: recognise an identical exported row without parsing it

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_records") as batch:
        batch.add_column(sa.Column("raw_hash", sa.String(length=32), nullable=True))
    op.create_index("ix_source_records_scan", "source_records", ["source", "kind", "is_current", "key", "raw_hash", "deleted"])


def downgrade() -> None:
    op.drop_index("ix_source_records_scan", table_name="source_records")
    with op.batch_alter_table("source_records") as batch:
        batch.drop_column("raw_hash")
