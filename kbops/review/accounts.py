"""Reviewer accounts for the review page: names, roles and salted password hashes.

Passwords are hashed with the standard library's scrypt (per-account random
salt, n=2**14, r=8, p=1; about 16 MB and 50 ms per check) and stored as
``scrypt$n$r$p$salt$hash`` so the cost can be raised later without breaking
old hashes. Checks use a constant-time comparison, and an unknown name costs
the same as a wrong password so the login form does not reveal who exists.

Roles: ``reviewer`` decides review items; ``admin`` may also manage accounts
and see the auto-approval rules. An account without a password can only sign
in through a trusted reverse-proxy header (``KBOPS_REVIEW_TRUSTED_HEADER``).
Adding, changing and removing accounts is written to the audit log.

Sessions are revocable: every account has a random ``session_key`` that the
review page signs into its session cookie and compares on every request.
Signing out, a new password and a new role replace the key (:func:`end_sessions`),
which ends every session of the account at once, on every device; removing
the account ends them too.

Sign-in throttling (:func:`reserve_sign_in`) counts attempts in the database,
per account and per client address, atomically and *before* the password is
checked: parallel guesses cannot all be evaluated before the limit engages,
and every web worker shares the same counts.

Every function that reads or writes accounts takes the door's session first
(``with session_scope(settings) as db: add_reviewer(db, ...)``); the name,
password and role checks are pure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from kbops.errors import AccountError, ReviewError
from kbops.kb.audit import record_audit
from kbops.schema import LoginAttempt, Reviewer, UTCDateTime, utcnow

ROLES = ("reviewer", "admin")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_NAME = re.compile(r"^[\w.@-]{1,100}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
#: Sign-in attempts allowed per account, and per client address (across names), within LOGIN_WINDOW seconds.
LOGIN_LIMIT = 5
ADDRESS_LIMIT = 20
LOGIN_WINDOW = 900.0
# Hash of a random password: checked against when the name is unknown, so timing reveals nothing.
_DUMMY_HASH: str | None = None


@dataclass(frozen=True)
class Account:
    """A reviewer account as the web page and CLI see it (never the hash itself)."""

    name: str
    role: str
    has_password: bool
    created_at: datetime
    last_login_at: datetime | None
    #: Signed into the account's session cookies; replaced on sign-out, a new password or role (ends those sessions).
    session_epoch: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` in the self-describing stored format."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, maxmem=64 * 1024 * 1024, **_SCRYPT)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches the stored hash (constant-time; False for any malformed hash)."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(expected), maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _epoch(row: Reviewer) -> str:
    """What a session cookie must carry to be valid: the account's session key bound to its password hash
    (an account removed and added again under the same name gets a new key and a new salt)."""
    material = f"{row.session_key or ''}${row.password_hash or 'no-password'}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _account(row: Reviewer) -> Account:
    return Account(
        name=row.name,
        role=row.role,
        has_password=bool(row.password_hash),
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        session_epoch=_epoch(row),
    )


def check_name(name: str) -> str:
    """``name`` stripped, or :class:`AccountError` saying which characters are allowed."""
    name = (name or "").strip()
    if not _NAME.match(name):
        raise AccountError(
            f"reviewer name {name!r} is not allowed: use 1–100 letters, digits, '.', '_', '-' or '@' (no spaces)",
            name=name,
        )
    return name


def check_password(password: str) -> str:
    """``password`` when its length is within bounds, else :class:`AccountError`."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password is too short ({len(password)} characters): use at least {MIN_PASSWORD}")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password is too long ({len(password)} characters): use at most {MAX_PASSWORD}")
    return password


def check_role(role: str) -> str:
    """``role`` when it is one of :data:`ROLES`, else :class:`AccountError`."""
    if role not in ROLES:
        raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}", role=role)
    return role


def require_reviewer(db: Session, by: str | None, action: str, **data: Any) -> str:
    """The name a reviewer's act is recorded under: not empty, and a reviewer account once the KB has any (an
    audit trail naming nobody is no trail). ``action`` says what needs it, for the error."""
    name = (by or "").strip()
    if not name:
        raise ReviewError(f"{action} needs your name: pass --by NAME", **data)
    if db.scalar(select(Reviewer.id).limit(1)) is not None and db.scalar(select(Reviewer.id).where(Reviewer.name == name)) is None:
        raise ReviewError(f"{name!r} is not a reviewer account (`kbops reviewers list`)", by=name, **data)
    return name


def add_reviewer(db: Session, name: str, password: str | None, *, role: str = "reviewer", by: str = "kbops", door: str = "cli") -> Account:
    """Create an account; ``password=None`` makes one that signs in only through the trusted header."""
    name, role = check_name(name), check_role(role)
    stored = hash_password(check_password(password)) if password is not None else None
    if db.scalar(select(Reviewer.id).where(Reviewer.name == name)) is not None:
        raise AccountError(f"reviewer {name!r} already exists; use `kbops reviewers passwd {name}` to change the password", name=name)
    row = Reviewer(name=name, role=role, password_hash=stored)
    db.add(row)
    record_audit(db, actor=by, door=door, action="reviewer_add", after={"reviewer": name, "role": role, "password": stored is not None},
                 note=f"reviewer {name}")  # an account event has no item or entry: the note names what it is about
    db.flush()
    return _account(row)


def set_password(db: Session, name: str, password: str, *, by: str = "kbops", door: str = "cli") -> None:
    """Replace an account's password; its existing sessions end."""
    stored = hash_password(check_password(password))
    row = _require(db, name)
    row.password_hash, row.session_key, row.updated_at = stored, secrets.token_hex(16), utcnow()
    record_audit(db, actor=by, door=door, action="reviewer_password", after={"reviewer": row.name}, note=f"reviewer {row.name}")


def set_role(db: Session, name: str, role: str, *, by: str = "kbops", door: str = "cli") -> None:
    """Give an account another role; its existing sessions end (it signs in again under the new role)."""
    role = check_role(role)
    row = _require(db, name)
    before = row.role
    row.role, row.session_key, row.updated_at = role, secrets.token_hex(16), utcnow()
    record_audit(db, actor=by, door=door, action="reviewer_role", before={"reviewer": row.name, "role": before}, after={"reviewer": row.name, "role": role},
                 note=f"reviewer {row.name}")


def remove_reviewer(db: Session, name: str, *, by: str = "kbops", door: str = "cli") -> None:
    """Delete an account (its past decisions stay in the audit log under its name).

    Through the web door the last admin cannot be removed: nobody could manage
    accounts on the page afterwards (the CLI still can).
    """
    row = _require(db, name)
    if row.role == "admin" and door == "web":
        admins = db.scalars(select(Reviewer.name).where(Reviewer.role == "admin")).all()
        if len(admins) <= 1:
            raise AccountError(f"{row.name!r} is the last admin; add another admin before removing it", name=row.name)
    db.execute(delete(Reviewer).where(Reviewer.id == row.id))
    record_audit(db, actor=by, door=door, action="reviewer_remove", before={"reviewer": row.name, "role": row.role}, note=f"reviewer {row.name}")


def end_sessions(db: Session, name: str) -> None:
    """End every session of ``name`` (signing out): its session key is replaced, so saved cookies stop working.

    A no-op for an unknown name (the account may have been removed meanwhile).
    """
    db.execute(update(Reviewer).where(Reviewer.name == (name or "").strip()).values(session_key=secrets.token_hex(16)))


def reserve_sign_in(db: Session, name: str, address: str, *, now: datetime | None = None) -> float | None:
    """Count one sign-in attempt for ``name`` and ``address``; None when it may proceed, else seconds to wait.

    Call it (and commit) *before* checking the password: the counters are
    incremented atomically in the database (one upsert each, returning the new
    count), so of any number of parallel attempts only :data:`LOGIN_LIMIT` per
    account and :data:`ADDRESS_LIMIT` per address are ever checked in a window
    of :data:`LOGIN_WINDOW` seconds; the rest are refused unchecked. The address
    is counted first: a client over its limit adds nothing to any account's.
    A successful sign-in resets the account's count (:func:`sign_in_succeeded`).
    """
    now = now or utcnow()
    db.execute(delete(LoginAttempt).where(LoginAttempt.window_start < now - timedelta(seconds=LOGIN_WINDOW)))
    for key, limit in ((f"addr:{address}", ADDRESS_LIMIT), (f"name:{(name or '').strip()}", LOGIN_LIMIT)):
        attempts, started = _count_attempt(db, key[:300], now)
        if attempts > limit:
            return max(1.0, LOGIN_WINDOW - (now - started).total_seconds())
    return None


def sign_in_succeeded(db: Session, name: str, address: str) -> None:
    """The account's count starts again; the address's attempt is given back."""
    db.execute(delete(LoginAttempt).where(LoginAttempt.key == f"name:{(name or '').strip()}"[:300]))
    db.execute(update(LoginAttempt).where(LoginAttempt.key == f"addr:{address}"[:300], LoginAttempt.attempts > 0).values(attempts=LoginAttempt.attempts - 1))


def _count_attempt(db: Session, key: str, now: datetime) -> tuple[int, datetime]:
    """Add one attempt to ``key``'s window (a new window when the old one ended); the count and window start after it."""
    dialect: Any = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    stamp = literal(now, UTCDateTime())
    expired = LoginAttempt.window_start < literal(now - timedelta(seconds=LOGIN_WINDOW), UTCDateTime())
    stmt = dialect.insert(LoginAttempt).values(key=key, attempts=1, window_start=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[LoginAttempt.key],
        set_={
            "attempts": case((expired, 1), else_=LoginAttempt.attempts + 1),
            "window_start": case((expired, stamp), else_=LoginAttempt.window_start),
        },
    ).returning(LoginAttempt.attempts, LoginAttempt.window_start)
    attempts, started = db.execute(stmt).one()
    return int(attempts), started


def list_reviewers(db: Session) -> list[Account]:
    """Every account, by name."""
    return [_account(r) for r in db.scalars(select(Reviewer).order_by(Reviewer.name))]


def get_reviewer(db: Session, name: str) -> Account | None:
    """The account called ``name``, or None."""
    row = db.scalar(select(Reviewer).where(Reviewer.name == (name or "").strip()))
    return _account(row) if row is not None else None


def authenticate(db: Session, name: str, password: str) -> Account | None:
    """The account when ``password`` is right (its last sign-in is stamped), else None.

    An unknown name or a header-only account costs one hash check too, so the
    answer's timing does not tell who exists.
    """
    global _DUMMY_HASH
    if len(password) > MAX_PASSWORD:
        return None
    row = db.scalar(select(Reviewer).where(Reviewer.name == (name or "").strip()))
    if row is None or not row.password_hash:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(secrets.token_hex(16))
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, row.password_hash):
        return None
    row.last_login_at = utcnow()
    return _account(row)


def _require(db: Session, name: str) -> Reviewer:
    row = db.scalar(select(Reviewer).where(Reviewer.name == (name or "").strip()))
    if row is None:
        raise AccountError(f"no reviewer called {name!r}; see `kbops reviewers list`", name=name)
    return row
