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
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kbops.errors import AccountError
from kbops.kb.audit import record_audit
from kbops.schema import Reviewer, utcnow

ROLES = ("reviewer", "admin")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_NAME = re.compile(r"^[\w.@-]{1,100}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
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
    #: Changes whenever the password changes: signed sessions carry it, so a new password ends old sessions.
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


def _epoch(stored: str | None) -> str:
    return hashlib.sha256((stored or "no-password").encode()).hexdigest()[:16]


def _account(row: Reviewer) -> Account:
    return Account(
        name=row.name,
        role=row.role,
        has_password=bool(row.password_hash),
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        session_epoch=_epoch(row.password_hash),
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


def add_reviewer(db: Session, name: str, password: str | None, *, role: str = "reviewer", by: str = "kbops", door: str = "cli") -> Account:
    """Create an account; ``password=None`` makes one that signs in only through the trusted header."""
    name, role = check_name(name), check_role(role)
    stored = hash_password(check_password(password)) if password is not None else None
    if db.scalar(select(Reviewer.id).where(Reviewer.name == name)) is not None:
        raise AccountError(f"reviewer {name!r} already exists; use `kbops reviewers passwd {name}` to change the password", name=name)
    row = Reviewer(name=name, role=role, password_hash=stored)
    db.add(row)
    record_audit(db, actor=by, door=door, action="reviewer_add", after={"reviewer": name, "role": role, "password": stored is not None})
    db.flush()
    return _account(row)


def set_password(db: Session, name: str, password: str, *, by: str = "kbops", door: str = "cli") -> None:
    """Replace an account's password; its existing sessions end."""
    stored = hash_password(check_password(password))
    row = _require(db, name)
    row.password_hash, row.updated_at = stored, utcnow()
    record_audit(db, actor=by, door=door, action="reviewer_password", after={"reviewer": row.name})


def set_role(db: Session, name: str, role: str, *, by: str = "kbops", door: str = "cli") -> None:
    """Give an account another role (takes effect on its next request)."""
    role = check_role(role)
    row = _require(db, name)
    before = row.role
    row.role, row.updated_at = role, utcnow()
    record_audit(db, actor=by, door=door, action="reviewer_role", before={"reviewer": row.name, "role": before}, after={"reviewer": row.name, "role": role})


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
    record_audit(db, actor=by, door=door, action="reviewer_remove", before={"reviewer": row.name, "role": row.role})


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
