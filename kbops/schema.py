"""The KB database schema (SQLAlchemy 2 declarative models).

The tables follow the loop: upstream records are mirrored with versions
(``source_records``), chat logs are stored scrubbed (``chat_sessions``,
``chat_exchanges``), extraction proposes ``candidates``, humans decide in
``review_items`` (THE review table; see sql/review_contract.sql), approved
knowledge lives in ``kb_entries`` with its dependencies in ``entry_dependencies``,
and every publish is an ``index_releases`` row. ``audit_log`` is append-only.

Changes to this module need an Alembic migration in kbops/migrations/versions.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: The largest record id: the id columns are ``integer`` (32-bit on PostgreSQL). A larger number
#: names no row and must not reach the database driver (SQLite overflows past 2**63 − 1).
MAX_ID = 2**31 - 1


def parse_record_id(value: object) -> int | None:
    """``value`` (text from a URL, a form or the command line) as a record id from 1 to :data:`MAX_ID`, or None.

    ASCII digits only: a boolean, a Unicode digit ("٣") or a number no row can have is None,
    decided before any database is asked."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text.isascii() or not text.isdigit() or len(text.lstrip("0")) > len(str(MAX_ID)):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC that always reads back timezone-aware.

    SQLite drops the zone; PostgreSQL keeps it. Normalising here keeps
    comparisons such as validity windows identical on both.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class PipelineRun(Base):
    """One run of a pipeline step: what it read, what changed, how long it took."""

    __tablename__ = "pipeline_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    step: Mapped[str] = mapped_column(String(40))
    source: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20), default="running")
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class SourceRecord(Base):
    """One version of one upstream record (a product, a price, a policy document).

    A changed content hash adds a new version row; a record that vanished from
    a full snapshot gets a tombstone version (``deleted``). Exactly one row per
    (source, kind, key) has ``is_current`` set. ``raw_hash`` hashes the row as
    exported, so an identical row is recognised without parsing it again.
    """

    __tablename__ = "source_records"
    __table_args__ = (
        UniqueConstraint("source", "kind", "key", "version"),
        Index("ix_source_records_current", "source", "kind", "key", "is_current"),
        Index("ix_source_records_pending", "extracted", "is_current"),
        # Covers the re-sync scan (key → raw hash of every current record) without table reads.
        Index("ix_source_records_scan", "source", "kind", "is_current", "key", "raw_hash", "deleted"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(300))
    version: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    raw_hash: Mapped[str | None] = mapped_column(String(32))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    extracted: Mapped[bool] = mapped_column(Boolean, default=False)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_runs.id"))
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def ref(self) -> str:
        return f"{self.source}/{self.kind}/{self.key}@{self.version}"


class QuarantinedRow(Base):
    """A malformed upstream row, kept with the reason it was refused."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_runs.id"))
    source: Mapped[str] = mapped_column(String(100))
    location: Mapped[str] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatSession(Base):
    """A chat log session, stored with private data already scrubbed."""

    __tablename__ = "chat_sessions"
    __table_args__ = (UniqueConstraint("source", "session_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    session_key: Mapped[str] = mapped_column(String(200))
    lang: Mapped[str | None] = mapped_column(String(8))
    sku: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime | None]
    turns: Mapped[list[Any]] = mapped_column(default=list)
    mined: Mapped[bool] = mapped_column(Boolean, default=False)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_runs.id"))


class ChatExchange(Base):
    """A customer question and the agent reply that answered it, from one session."""

    __tablename__ = "chat_exchanges"
    __table_args__ = (UniqueConstraint("session_id", "turn_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("chat_sessions.id"))
    turn_index: Mapped[int] = mapped_column(Integer)
    lang: Mapped[str] = mapped_column(String(8))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    question_key: Mapped[str] = mapped_column(String(64), index=True)
    # qa: answered in general (answer set); handoff / no_answer: an unanswered question (answer "").
    kind: Mapped[str] = mapped_column(String(16), default="qa", server_default="qa")


class Candidate(Base):
    """A proposed Q&A pair, before and after validation.

    ``status``: new → invalid | valid → queued | auto_approved | duplicate;
    queued → approved | rejected | superseded | merged (joined another entry
    as an alternate question); invalid → new again when fixed and resubmitted.
    ``reasons`` holds the gate's blocking reasons and its non-blocking flags
    (a near-duplicate; the entry it may join is ``evidence["near_duplicate"]``). ``content_hash`` identifies the
    proposal (entry key + texts + dependency versions) so re-extraction of the
    same facts proposes nothing new.
    """

    __tablename__ = "candidates"
    __table_args__ = (UniqueConstraint("entry_key", "content_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_key: Mapped[str] = mapped_column(String(300), index=True)
    origin: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40))
    lang: Mapped[str] = mapped_column(String(8))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    alt_questions: Mapped[list[Any]] = mapped_column(default=list)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    depends_on: Mapped[list[Any]] = mapped_column(default=list)
    support: Mapped[int] = mapped_column(Integer, default=1)
    valid_from: Mapped[datetime | None]
    valid_to: Mapped[datetime | None]
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_runs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewItem(Base):
    """THE review table: one row per candidate waiting for a human.

    Reviewers decide by setting the decision columns (``decision``,
    ``decided_by``, optional ``note``, ``edited_question``, ``edited_answer``)
    through the web page, the CLI or a plain SQL UPDATE (``decided_via`` is
    set by the CLI and the web page; NULL means the SQL door). The pipeline applies
    decisions and moves ``state`` from ``open`` to ``applied``; a decision it
    cannot apply stays ``open`` with ``apply_error`` saying why. Applying first
    claims the row (``open`` → ``applying``, never committed), so each decision
    is applied exactly once however many publishes run. A row that is no longer
    open (``applied``, ``superseded``) keeps its decision columns: a trigger
    (migration 0008) refuses changing them.
    """

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_items_state", "state", "decision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), unique=True)
    entry_key: Mapped[str] = mapped_column(String(300), index=True)
    origin: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40))
    lang: Mapped[str] = mapped_column(String(8))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    alt_questions: Mapped[list[Any]] = mapped_column(default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    warnings: Mapped[list[Any]] = mapped_column(default=list)
    support: Mapped[int] = mapped_column(Integer, default=1)
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    state: Mapped[str] = mapped_column(String(20), default="open")
    decision: Mapped[str | None] = mapped_column(String(20))
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]
    decided_via: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    edited_question: Mapped[str | None] = mapped_column(Text)
    edited_answer: Mapped[str | None] = mapped_column(Text)
    apply_error: Mapped[str | None] = mapped_column(Text)
    # decision 'merge': the entry key whose alternate questions the item's question joins.
    merge_into: Mapped[str | None] = mapped_column(String(300))
    # Set by routing for a near-duplicate: the active entry it should join instead of becoming a new one.
    proposed_merge_into: Mapped[str | None] = mapped_column(String(300))
    row_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    applied_at: Mapped[datetime | None]


class KbEntry(Base):
    """Approved knowledge. ``id`` is stable and is the FAISS id of the entry.

    ``status``: active (served), withdrawn (a fact it rests on changed; not
    served until a new version is approved), retired (rejected or delisted).
    """

    __tablename__ = "kb_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_key: Mapped[str] = mapped_column(String(300), unique=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    origin: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40))
    lang: Mapped[str] = mapped_column(String(8))
    question: Mapped[str] = mapped_column(Text)
    alt_questions: Mapped[list[Any]] = mapped_column(default=list)
    answer: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    depends_on: Mapped[list[Any]] = mapped_column(default=list)
    # Customers' phrasings reviewers taught this entry (merges, labelled gap topics; migration 0012): also among
    # alt_questions, and carried over when a new candidate for the key replaces the entry (kbops/kb/entries.py).
    reviewer_questions: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    valid_from: Mapped[datetime | None]
    valid_to: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20), default="active", index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id"))
    approved_by: Mapped[str] = mapped_column(String(100))
    approved_via: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class EntryDependency(Base):
    """An entry rests on a version of an upstream record (for withdrawal)."""

    __tablename__ = "entry_dependencies"
    __table_args__ = (Index("ix_entry_deps_record", "source", "kind", "key"),)

    entry_id: Mapped[int] = mapped_column(ForeignKey("kb_entries.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class AuditEvent(Base):
    """Append-only log of every decision and automatic change to the KB."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    door: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    review_item_id: Mapped[int | None] = mapped_column(Integer)
    entry_id: Mapped[int | None] = mapped_column(Integer)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)


class IndexRelease(Base):
    """A published index release; exactly one is active at a time."""

    __tablename__ = "index_releases"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20), default="built")
    kb_digest: Mapped[str] = mapped_column(String(64))
    entry_count: Mapped[int] = mapped_column(Integer)
    vector_count: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(300))
    path: Mapped[str] = mapped_column(Text)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)


class GoldenQuestion(Base):
    """A question the bot must keep answering with a known entry.

    A new release that answers fewer golden questions correctly than the
    active one is not activated unless forced (kbops/index/golden.py).
    """

    __tablename__ = "golden_questions"
    __table_args__ = (UniqueConstraint("question", "entry_key", name="uq_golden_question_entry"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    entry_key: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class QueryLogEntry(Base):
    """What the bot was asked (scrubbed) and what it answered."""

    __tablename__ = "query_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    release_id: Mapped[str | None] = mapped_column(String(80))
    question: Mapped[str] = mapped_column(Text)
    entry_id: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    # The bot's calibrated probability that its top answer is right (migration 0011): what it answers by.
    confidence: Mapped[float | None] = mapped_column(Float)
    handoff: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(40))
    # The bot API's own latency for this query (ms) and its X-Request-ID (migration 0009);
    # empty for `kbops ask` and for rows logged before them.
    latency_ms: Mapped[float | None] = mapped_column(Float)
    request_id: Mapped[str | None] = mapped_column(String(128))


class ValidationReport(Base):
    """One validation run's report: what the gate checked, what failed and why.

    Linked from the run ledger both ways: ``run_id`` points at the
    ``pipeline_runs`` row of the validate step, whose ``stats`` carry
    ``report_id``. ``rows`` lists every refused or flagged candidate with its
    reasons (passing rows are only counted), so a report stays readable after
    the candidates are fixed and resubmitted.
    """

    __tablename__ = "validation_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("pipeline_runs.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    suite: Mapped[str] = mapped_column(String(100))
    checked: Mapped[int] = mapped_column(Integer, default=0)
    valid: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    near_duplicates: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rows: Mapped[list[Any]] = mapped_column(default=list)
    statistics: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Reviewer(Base):
    """A person who may sign in to the review page.

    ``role`` is ``reviewer`` (decide items) or ``admin`` (also manage accounts
    and see the auto-approval rules). ``password_hash`` is a salted scrypt hash
    (see kbops/review/accounts.py); it is NULL for an account that signs in only
    through a trusted reverse-proxy header.
    """

    __tablename__ = "reviewers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20), default="reviewer")
    password_hash: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Random, signed into every session cookie; replaced on sign-out, a new password
    # or a new role, which ends every session of the account (kbops/review/accounts.py).
    session_key: Mapped[str | None] = mapped_column(String(64), default=lambda: secrets.token_hex(16))


class LoginAttempt(Base):
    """Sign-in attempts in a fixed window, per account (``name:…``) and per client address (``addr:…``).

    Counted atomically *before* the password is checked, so parallel guesses
    cannot all be evaluated before the throttle engages (kbops/review/accounts.py).
    """

    __tablename__ = "login_attempts"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ChatGap(Base):
    """An unanswered topic: questions handed off or not answered, grouped, that the
    active KB does not answer well either.

    ``origin`` says where the questions came from: ``chat`` (mined from agent
    chats; rebuilt by each extract run that mined new sessions) or ``bot`` (the
    bot's own handed-off and low-confidence queries from ``query_log``; refreshed
    by :func:`kbops.review.gaps.refresh_bot_gaps`). ``last_seen`` is when the topic
    was last asked (bot gaps; ranks by frequency × recency). ``answer_key`` is the
    entry key a reviewer wrote to answer it; the gap becomes ``covered`` once the
    active KB answers it at or above the handoff threshold. ``kbops review gaps``
    lists the open ones.
    """

    __tablename__ = "chat_gaps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    topic_key: Mapped[str] = mapped_column(String(80), unique=True)
    lang: Mapped[str] = mapped_column(String(8))
    question: Mapped[str] = mapped_column(Text)
    alt_questions: Mapped[list[Any]] = mapped_column(default=list)
    support: Mapped[int] = mapped_column(Integer, default=1)
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    kb_score: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    origin: Mapped[str] = mapped_column(String(8), default="chat", server_default="chat", index=True)
    last_seen: Mapped[datetime | None]
    answer_key: Mapped[str | None] = mapped_column(String(300))
