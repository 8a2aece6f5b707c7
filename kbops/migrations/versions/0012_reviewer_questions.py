"""kb_entries.reviewer_questions: the phrasings reviewers taught an entry survive its next revision

* ``reviewer_questions``: customers' phrasings a reviewer added to the entry's
  alternate questions (a merge, or a gap topic labelled with the entry;
  kbops/kb/entries.py ``add_reviewer_questions``). When a new candidate for the
  same key replaces the entry (a price changed upstream, a FAQ re-imported), its
  alternates are the candidate's plus these, so a phrasing the bot was taught is
  not silently forgotten at the next upstream change.
* Backfilled from the audit log: every ``merge`` event's added alternates that
  the entry still asks.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _loads(value):
    if value is None:
        return None
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    # Not batch mode: on SQLite that recreates the table, and the review views read kb_entries.
    op.add_column("kb_entries", sa.Column("reviewer_questions", sa.JSON(), nullable=False, server_default="[]"))
    bind = op.get_bind()
    taught: dict[int, list[str]] = {}
    for entry_id, before, after in bind.execute(
        sa.text("SELECT entry_id, before, after FROM audit_log WHERE action = 'merge' AND entry_id IS NOT NULL ORDER BY id")
    ):
        old = set((_loads(before) or {}).get("alt_questions") or [])
        for q in (_loads(after) or {}).get("alt_questions") or []:
            if q not in old and q not in taught.setdefault(entry_id, []):
                taught[entry_id].append(q)
    for entry_id, questions in taught.items():
        current = bind.execute(sa.text("SELECT alt_questions FROM kb_entries WHERE id = :id"), {"id": entry_id}).scalar()
        kept = [q for q in questions if q in (_loads(current) or [])]
        if kept:
            bind.execute(sa.text("UPDATE kb_entries SET reviewer_questions = :q WHERE id = :id"), {"q": json.dumps(kept, ensure_ascii=False), "id": entry_id})


def downgrade() -> None:
    op.drop_column("kb_entries", "reviewer_questions")
