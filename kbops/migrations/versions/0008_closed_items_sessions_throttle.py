"""closed review items refuse new decisions; revocable review sessions; sign-in throttle in the database (issue 12)

* A trigger on ``review_items`` (SQLite and PostgreSQL) refuses an UPDATE that
  changes the decision columns or the state of a row that is no longer open
  (applied or superseded): a SQL decision written on such a row could never be
  applied, and the row would contradict the KB. ``open`` and ``applying`` (the
  pipeline's claim inside its own transaction) rows stay writable.
  NOTE for later migrations: SQLite batch operations that recreate
  ``review_items`` drop its triggers; create ``review_items_closed`` again after one.
* ``reviewers.session_key``: a random value signed into every session cookie;
  replacing it (sign-out, new password, new role) ends the account's sessions.
* ``login_attempts``: sign-in attempts per account and per client address in a
  fixed window, counted atomically before the password is checked.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: Columns a closed row keeps: the decision as applied, and the state itself.
_GUARDED = ("state", "decision", "decided_by", "decided_at", "decided_via", "note", "edited_question", "edited_answer", "merge_into")
_MESSAGE = (
    "is not open (already applied or superseded): its decision can no longer change; "
    "decide only rows WHERE state = ''open'' (sql/review_contract.sql)"
)  # quotes doubled: it is spliced into an SQL string literal

_SQLITE_TRIGGER = (
    "CREATE TRIGGER review_items_closed BEFORE UPDATE ON review_items FOR EACH ROW "
    "WHEN OLD.state NOT IN ('open', 'applying') AND ("
    + " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _GUARDED)
    + f") BEGIN SELECT RAISE(ABORT, 'kbops: this review item {_MESSAGE}'); END"
)
_PG_FUNCTION = (
    "CREATE FUNCTION review_items_closed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF OLD.state NOT IN ('open', 'applying') AND ("
    + " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in _GUARDED)
    + f") THEN RAISE EXCEPTION 'kbops: review item % (state %) {_MESSAGE}', OLD.id, OLD.state USING ERRCODE = 'check_violation'; "
    "END IF; RETURN NEW; END $$"
)
_PG_TRIGGER = "CREATE TRIGGER review_items_closed BEFORE UPDATE ON review_items FOR EACH ROW EXECUTE FUNCTION review_items_closed()"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
        random_key = "md5(random()::text || clock_timestamp()::text || id::text)"
    else:
        op.execute(_SQLITE_TRIGGER)
        random_key = "lower(hex(randomblob(16)))"
    op.add_column("reviewers", sa.Column("session_key", sa.String(length=64), nullable=True))
    op.execute(f"UPDATE reviewers SET session_key = {random_key}")  # noqa: S608 - a constant expression
    op.create_table(
        "login_attempts",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_login_attempts_window_start", "login_attempts", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_login_attempts_window_start", table_name="login_attempts")
    op.drop_table("login_attempts")
    with op.batch_alter_table("reviewers") as batch:
        batch.drop_column("session_key")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER review_items_closed ON review_items")
        op.execute("DROP FUNCTION review_items_closed()")
    else:
        op.execute("DROP TRIGGER review_items_closed")
