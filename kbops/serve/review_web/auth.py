"""Who is asking: the signed session cookie, the trusted proxy header and CSRF.

* **Sign-in** with a reviewer account (:mod:`kbops.review.accounts`) sets one
  cookie, ``kbops_review``: a JSON payload signed with HMAC-SHA256 (secret in
  ``review_secret_file``), HttpOnly, SameSite=Lax, Secure over HTTPS, expiring
  after ``review_session_hours``. It carries the account name (``u``), the
  account's session epoch (``e``: derived from its random session key and
  password hash, see :mod:`kbops.review.accounts`), the CSRF token (``c``),
  pending flash messages (``f``) and the expiry (``x``). The epoch is compared
  with the database on every request, so sessions are revocable: signing out,
  a new password or a new role replaces the account's session key and every
  saved cookie of it stops working; removing the account ends them too.
* **Sign-in throttling** is counted in the database, atomically, per account
  and per address before the password is checked
  (:func:`kbops.review.accounts.reserve_sign_in`), so it holds across parallel
  requests and across workers.
* **Trusted header**: only when ``review_trusted_header`` is configured, and
  only for requests from ``review_trusted_proxies``, the header names the
  reviewer (the account must exist; it may have no password).
* **CSRF**: every form carries the session-bound token; a POST without it, or
  with another one, is refused with 403 before anything is read or written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from kbops.config import Settings
from kbops.errors import ConfigError
from kbops.review import accounts
from kbops.serve.review_web.forms import PageError, Redirect

COOKIE = "kbops_review"


@dataclass
class Viewer:
    """Who is asking, from the signed session cookie or the trusted header."""

    account: accounts.Account | None
    session: dict[str, Any]
    via: str = "none"
    dirty: bool = False  # the session changed: the response sets the cookie again

    @property
    def csrf(self) -> str:
        return self.session["c"]

    @property
    def name(self) -> str:
        return self.account.name if self.account else ""

    def flash(self, kind: str, text: str) -> None:
        """Show ``text`` on the next page rendered for this session (kept: the last six)."""
        queue = self.session.setdefault("f", [])
        queue.append([kind, text[:400]])
        del queue[:-6]
        self.dirty = True

    def take_flashes(self) -> list[list[str]]:
        """The pending flash messages, removed from the session."""
        if not self.session.get("f"):
            return []
        self.dirty = True
        return self.session.pop("f")

    def sign_in(self, account: accounts.Account) -> None:
        """Start a password session; a fresh CSRF token, so one planted before sign-in is worthless."""
        self.session.update(u=account.name, e=account.session_epoch, c=secrets.token_urlsafe(32))
        self.session.pop("f", None)
        self.account, self.via, self.dirty = account, "password", True

    def sign_out(self) -> None:
        """Forget the session in this browser (the door also ends the account's sessions server-side)."""
        self.session, self.account, self.via, self.dirty = _new_session(), None, "none", True


# --- signed cookies ------------------------------------------------------------------


def load_secret(settings: Settings) -> bytes:
    """The session-signing key: read from ``review_secret_file``, created (0600) on first use."""
    path = settings.review_secret_file or settings.home / "review_secret.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    except ValueError:
        raise ConfigError(f"review session secret {path} is not hex; delete it to make a new one (signs everyone out)", path=str(path)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker created it first
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, payload: dict[str, Any]) -> str:
    """``payload`` as a cookie value: base64 JSON and its HMAC-SHA256."""
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode())
    mac = hmac.new(secret, b"kbops-review." + body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def unsign(secret: bytes, value: str | None) -> dict[str, Any] | None:
    """The payload of a cookie we signed and that has not expired, else None."""
    if not value or value.count(".") != 1 or len(value) > 4096:
        return None
    body, mac = value.split(".")
    expected = hmac.new(secret, b"kbops-review." + body.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("c"), str) or payload.get("x", 0) < time.time():
        return None
    return payload


def _new_session() -> dict[str, Any]:
    return {"c": secrets.token_urlsafe(32), "u": None}


# --- who is asking ---------------------------------------------------------------------


def resolve_viewer(db: Session, settings: Settings, session: dict[str, Any] | None, client: str, headers: Any) -> Viewer:
    """The viewer for a request: ``session`` is the unsigned cookie (None: none or invalid).

    The trusted header wins when configured and sent by a trusted proxy; else
    the cookie's account, if it still exists with the same password.
    """
    viewer = Viewer(account=None, session=session if session is not None else _new_session(), dirty=session is None)
    header = settings.review_trusted_header
    if header and client in settings.review_trusted_proxies and headers.get(header):
        name = headers[header].strip()
        account = accounts.get_reviewer(db, name)
        if account is None:
            raise PageError(403, f"the proxy signed in {name!r}, but there is no reviewer account with that name; an admin can add it with `kbops reviewers add {name} --no-password`")
        viewer.account, viewer.via = account, "header"
        return viewer
    if viewer.session.get("u"):
        account = accounts.get_reviewer(db, viewer.session["u"])
        if account is not None and hmac.compare_digest(str(viewer.session.get("e", "")), account.session_epoch):
            viewer.account, viewer.via = account, "password"
        else:  # removed account, or its sessions were ended (sign-out, new password or role)
            viewer.session.update(u=None, e=None)
            viewer.dirty = True
    return viewer


def require(viewer: Viewer, login_url: str, role: str = "reviewer") -> accounts.Account:
    """The signed-in account, or a redirect to sign in; 403 when ``role`` is admin and it is not."""
    if viewer.account is None:
        raise Redirect(login_url)
    if role == "admin" and not viewer.account.is_admin:
        raise PageError(403, f"{viewer.account.name} is a reviewer; this page needs the admin role (`kbops reviewers role {viewer.account.name} admin`)")
    return viewer.account


def check_csrf(viewer: Viewer, form: Any) -> None:
    """Refuse (403) a form whose token is missing or is not this session's."""
    token = form.get("csrf") if form is not None else None
    if not isinstance(token, str) or not token or not hmac.compare_digest(token.encode(), viewer.csrf.encode()):
        raise PageError(403, "this form's security token is missing or out of date (CSRF check); reload the page and submit again")
