"""The review page: the web door to ``review_items``, served next to the bot API.

``create_review_app(settings)`` is a small FastAPI application mounted at
``/review`` by :func:`kbops.serve.api.create_app`. It renders HTML on the
server (Jinja2 with autoescaping; templates and one CSS/JS file ship inside
the package, nothing is fetched from a network) and decides through the same
function as the CLI (:func:`kbops.review.queue.decide`, door ``web``), so the
optimistic concurrency, validation of edits and the audit log are shared.

Security model, separate from the bot API's read token:

* **Sign-in** with a reviewer account (kbops/review/accounts.py) sets one
  cookie, ``kbops_review``: a JSON payload signed with HMAC-SHA256 (secret in
  ``review_secret_file``), HttpOnly, SameSite=Lax, Secure over HTTPS, expiring
  after ``review_session_hours``. It carries the account name, a fingerprint
  of the password hash (a new password ends old sessions) and the CSRF token.
  Role and existence are re-read on every request, so removing an account or
  changing its role takes effect at once.
* **Trusted header**: only when ``review_trusted_header`` is configured, and
  only for requests from ``review_trusted_proxies``, the header names the
  reviewer (the account must exist; it may have no password).
* **CSRF**: every form carries the session-bound token; a POST without it, or
  with another one, is refused with 403 before anything is read or written.
* Every piece of chat, record and candidate text is rendered escaped; a
  Content-Security-Policy without inline scripts backs that up. Queries are
  built with SQLAlchemy expressions only.

Errors are pages, never tracebacks: unknown item → 404, malformed form → 400,
missing/wrong CSRF token → 403, a reviewer who lost the race → 409 "already
decided by …".
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import and_, or_, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from kbops.config import Settings
from kbops.db import session_scope
from kbops.errors import AccountError, AlreadyDecided, InvalidDecision, KbopsError, ReviewItemNotFound, TransientError
from kbops.review import accounts
from kbops.schema import AuditEvent, Candidate, ChatSession, KbEntry, ReviewItem, SourceRecord
from kbops.validate import resubmit as resubmit_candidate

HERE = Path(__file__).parent
COOKIE = "kbops_review"
PAGE_SIZES = (25, 50, 100, 200, 500)
WARNING_FILTERS = ("", "with", "without")
ACTIONS = ("approve", "edit", "reject", "merge")
MAX_TEXT = 20_000  # longest question/answer/note accepted from a form (characters)
MAX_SHOWN = 2_000  # longest chat turn or record field shown before it is cut
LOGIN_LIMIT = 5  # failed sign-ins per name and address …
LOGIN_WINDOW = 900.0  # … within this many seconds before further tries are refused

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'; connect-src 'self'"
)


class _PageError(Exception):
    """Render the error page with this status and message (a 4xx the user can act on)."""

    def __init__(self, status: int, message: str, back: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.back = status, message, back


class _Redirect(Exception):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


@dataclass
class Viewer:
    """Who is asking, from the signed session cookie or the trusted header."""

    account: accounts.Account | None
    session: dict[str, Any]
    via: str = "none"
    dirty: bool = False
    flashes: list[list[str]] = field(default_factory=list)

    @property
    def csrf(self) -> str:
        return self.session["c"]

    @property
    def name(self) -> str:
        return self.account.name if self.account else ""

    def flash(self, kind: str, text: str) -> None:
        queue = self.session.setdefault("f", [])
        queue.append([kind, text[:400]])
        del queue[:-6]
        self.dirty = True


# --- signed cookies ------------------------------------------------------------------


def _secret(settings: Settings) -> bytes:
    """The session-signing key: read from ``review_secret_file``, created (0600) on first use."""
    path = settings.review_secret_file or settings.home / "review_secret.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    except ValueError:
        raise KbopsError(f"review session secret {path} is not hex; delete it to make a new one (signs everyone out)") from None
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


# --- the application -----------------------------------------------------------------


def create_review_app(settings: Settings) -> FastAPI:
    """The review page as an application to mount at ``/review``."""
    app = FastAPI(title="kbops review page", docs_url=None, redoc_url=None, openapi_url=None)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every {{ value }} is HTML-escaped; nothing is marked safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M") if d else ""
    env.filters["pretty"] = lambda v: json.dumps(v, ensure_ascii=False, indent=1, default=str)
    secret_box: dict[str, bytes] = {}
    failures: dict[tuple[str, str], list[float]] = {}
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def secret() -> bytes:
        if "k" not in secret_box:
            secret_box["k"] = _secret(settings)
        return secret_box["k"]

    # -- request plumbing ------------------------------------------------------------

    def base(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    def viewer_for(request: Request) -> Viewer:
        session = unsign(secret(), request.cookies.get(COOKIE))
        dirty = session is None
        if session is None:
            session = {"c": secrets.token_urlsafe(32), "u": None}
        viewer = Viewer(account=None, session=session, dirty=dirty)
        header = settings.review_trusted_header
        client = request.client.host if request.client else ""
        if header and client in settings.review_trusted_proxies and request.headers.get(header):
            name = request.headers[header].strip()
            account = accounts.get_reviewer(settings, name)
            if account is None:
                raise _PageError(403, f"the proxy signed in {name!r}, but there is no reviewer account with that name; an admin can add it with `kbops reviewers add {name} --no-password`")
            viewer.account, viewer.via = account, "header"
            return viewer
        if session.get("u"):
            account = accounts.get_reviewer(settings, session["u"])
            if account is not None and hmac.compare_digest(str(session.get("e", "")), account.session_epoch):
                viewer.account, viewer.via = account, "password"
            else:  # removed account or changed password: the session ends
                session.update(u=None, e=None)
                viewer.dirty = True
        return viewer

    def require(request: Request, viewer: Viewer, role: str = "reviewer") -> accounts.Account:
        if viewer.account is None:
            raise _Redirect(f"{base(request)}/login")
        if role == "admin" and not viewer.account.is_admin:
            raise _PageError(403, f"{viewer.account.name} is a reviewer; this page needs the admin role (`kbops reviewers role {viewer.account.name} admin`)")
        return viewer.account

    def check_csrf(viewer: Viewer, form: Any) -> None:
        token = form.get("csrf") if form is not None else None
        if not isinstance(token, str) or not token or not hmac.compare_digest(token.encode(), viewer.csrf.encode()):
            raise _PageError(403, "this form's security token is missing or out of date (CSRF check); reload the page and submit again")

    def finish(response: Response, request: Request, viewer: Viewer | None) -> Response:
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        if viewer is not None and viewer.dirty:
            viewer.session["x"] = int(time.time() + settings.review_session_hours * 3600)
            response.set_cookie(
                COOKIE,
                sign(secret(), viewer.session),
                max_age=int(settings.review_session_hours * 3600),
                path=base(request) or "/",
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
        return response

    def render(request: Request, viewer: Viewer | None, template: str, status: int = 200, **context: Any) -> Response:
        flashes: list[list[str]] = []
        if viewer is not None and viewer.session.get("f"):
            flashes = viewer.session.pop("f")
            viewer.dirty = True
        context.setdefault("tab", "")
        html = env.get_template(template).render(
            base=base(request),
            viewer=viewer,
            me=viewer.account if viewer else None,
            csrf=viewer.csrf if viewer else "",
            flashes=flashes,
            **context,
        )
        return finish(HTMLResponse(html, status_code=status), request, viewer)

    def redirect(request: Request, viewer: Viewer | None, url: str) -> Response:
        return finish(RedirectResponse(url, status_code=303), request, viewer)

    async def handle(request: Request, work, *, form: bool = False) -> Response:
        """Run ``work(viewer, form)`` in a worker thread; turn our exceptions into pages."""
        viewer: Viewer | None = None
        try:
            data = await request.form(max_fields=5000) if form else None
            viewer = await run_in_threadpool(viewer_for, request)
            if form:
                check_csrf(viewer, data)
            return await run_in_threadpool(work, viewer, data)
        except _Redirect as r:
            return redirect(request, viewer, r.url)
        except _PageError as e:
            return render(request, viewer, "error.html", status=e.status, message=e.message, back=e.back or f"{base(request)}/")
        except ReviewItemNotFound as e:
            return render(request, viewer, "error.html", status=404, message=str(e), back=f"{base(request)}/")
        except AlreadyDecided as e:
            return render(request, viewer, "error.html", status=409, message=str(e), back=f"{base(request)}/")
        except TransientError as e:
            return render(request, viewer, "error.html", status=503, message=str(e), back=f"{base(request)}/")
        except KbopsError as e:
            status = 404 if type(e).__name__.endswith("NotFound") else 400
            return render(request, viewer, "error.html", status=status, message=str(e), back=f"{base(request)}/")

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}" for e in exc.errors())
        return render(request, None, "error.html", status=400, message=f"bad request: {problems}", back=f"{base(request)}/")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = "no such page; the queue is at the link below" if exc.status_code == 404 else str(exc.detail)
        return render(request, None, "error.html", status=exc.status_code, message=message, back=f"{base(request)}/")

    # -- sign-in ---------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        def work(viewer: Viewer, _form: Any) -> Response:
            if viewer.account is not None:
                raise _Redirect(f"{base(request)}/")
            return render(request, viewer, "login.html", no_accounts=not accounts.list_reviewers(settings), name="")

        return await handle(request, work)

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        def work(viewer: Viewer, form: Any) -> Response:
            name = str(form.get("name") or "").strip()[:100]
            password = str(form.get("password") or "")
            key = (name, request.client.host if request.client else "")
            now = time.time()
            recent = [t for t in failures.get(key, []) if now - t < LOGIN_WINDOW]
            if len(recent) >= LOGIN_LIMIT:
                return render(request, viewer, "login.html", status=429, no_accounts=False, name=name,
                              error=f"too many failed sign-ins for {name!r}; wait {int(LOGIN_WINDOW // 60)} minutes or ask an admin to reset the password")
            account = accounts.authenticate(settings, name, password)
            if account is None:
                if len(failures) > 10_000:  # bound the memory a name-spraying client can use
                    for stale in [k for k, v in failures.items() if not v or now - v[-1] >= LOGIN_WINDOW]:
                        failures.pop(stale, None)
                failures[key] = recent + [now]
                return render(request, viewer, "login.html", status=401, no_accounts=False, name=name, error="wrong name or password")
            failures.pop(key, None)
            # A fresh token on sign-in: a token planted before sign-in is worthless afterwards.
            viewer.session.update(u=account.name, e=account.session_epoch, c=secrets.token_urlsafe(32))
            viewer.session.pop("f", None)
            viewer.dirty = True
            raise _Redirect(f"{base(request)}/")

        return await handle(request, work, form=True)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        def work(viewer: Viewer, _form: Any) -> Response:
            viewer.session = {"c": secrets.token_urlsafe(32), "u": None}
            viewer.dirty = True
            raise _Redirect(f"{base(request)}/login")

        return await handle(request, work, form=True)

    # -- the queue -------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def queue_page(
        request: Request, origin: str = "", lang: str = "", tag: str = "", warnings: str = "", page: int = 1, per_page: int = 50
    ) -> Response:
        def work(viewer: Viewer, _form: Any) -> Response:
            require(request, viewer)
            filters = _filters(origin, lang, tag, warnings, page, per_page)
            view = _queue(settings, filters)
            return render(request, viewer, "queue.html", tab="queue", filters=filters, query=_query(filters), **view)

        return await handle(request, work)

    @app.get("/items/{item_id}", response_class=HTMLResponse)
    async def item_page(request: Request, item_id: int) -> Response:
        def work(viewer: Viewer, _form: Any) -> Response:
            require(request, viewer)
            with session_scope(settings) as db:
                row = db.get(ReviewItem, item_id)
                if row is None:
                    raise ReviewItemNotFound(f"no review item {item_id}; the queue is at the link below")
                card = _cards(db, [row])[0]
            return render(request, viewer, "item.html", tab="queue", item=card, filters=_filters(), query="")

        return await handle(request, work)

    @app.post("/items/{item_id}/decide")
    async def decide_item(request: Request, item_id: int) -> Response:
        def work(viewer: Viewer, form: Any) -> Response:
            me = require(request, viewer)
            back_query = _return_query(form)
            action = str(form.get("action") or "")
            if action not in ACTIONS:
                raise _PageError(400, f"action {action!r} is not one of {', '.join(ACTIONS)}")
            note = _text(form, "note")
            kwargs: dict[str, Any] = {"by": me.name, "door": "web", "note": note}
            if action == "edit":
                question, answer = _text(form, "question"), _text(form, "answer")
                if not question or not answer:
                    raise _PageError(400, "the edited question and answer may not be empty; reject the item instead")
                decision = "approve"
                kwargs.update(question=question, answer=answer)
            elif action == "reject":
                if not note:
                    raise _PageError(400, f"rejecting item {item_id} needs a reason: type it into the reason field")
                decision = "reject"
            elif action == "merge":
                target = _text(form, "merge_into")
                if not target:
                    raise _PageError(400, f"merging item {item_id} needs the entry key to join: pick one of the nearest entries")
                decision = "merge"
                kwargs.update(merge_into=target)
                if _text(form, "question"):
                    kwargs.update(question=_text(form, "question"))
            else:
                decision = "approve"
            result = _decide(settings, [item_id], decision, kwargs)
            if result.errors:
                for failed, error in result.errors.items():
                    viewer.flash("error", f"item {failed} was not applied: {error}")
                raise _Redirect(f"{base(request)}/?{back_query}#item-{item_id}")
            past = {"approve": "approved", "reject": "rejected", "merge": "merged"}[decision]
            message = f"item {item_id} {past}" + (" with your edits" if action == "edit" else "") + (f" into {kwargs['merge_into']}" if action == "merge" else "")
            if decision == "approve" and getattr(result, "merged", 0):
                message += ": it was a near-duplicate, so its question joined the existing entry as an alternate phrasing"
            viewer.flash("ok", message)
            nxt = _int(form.get("next"))
            raise _Redirect(f"{base(request)}/?{back_query}" + (f"#item-{nxt}" if nxt else ""))

        return await handle(request, work, form=True)

    @app.post("/bulk")
    async def bulk(request: Request) -> Response:
        def work(viewer: Viewer, form: Any) -> Response:
            me = require(request, viewer)
            back_query = _return_query(form)
            action = str(form.get("action") or "")
            if action not in ("approve", "reject"):
                raise _PageError(400, f"bulk action {action!r} is not approve or reject")
            raw = form.getlist("ids")
            ids = [_int(v) for v in raw]
            if any(i is None for i in ids):
                raise _PageError(400, f"item ids must be whole numbers, got {[v for v in raw if _int(v) is None][:5]!r}")
            ids = sorted(set(ids))
            if not ids:
                raise _PageError(400, "no items selected: tick items (x) or select the page (shift+x) first", back=f"{base(request)}/?{back_query}")
            note = _text(form, "reason")
            if action == "reject" and not note:
                raise _PageError(400, f"rejecting {len(ids)} item(s) needs a reason: type it into the reason field", back=f"{base(request)}/?{back_query}")
            done, merged, skipped, errors = _bulk_decide(settings, ids, action, {"by": me.name, "door": "web", "note": note})
            past = "approved" if action == "approve" else "rejected"
            viewer.flash("ok", f"{done} item(s) {past}" + (f" ({merged} near-duplicate(s) joined their existing entries as alternate phrasings)" if merged else ""))
            for message in skipped:
                viewer.flash("warn", message)
            for item_id, error in list(errors.items())[:5]:
                viewer.flash("error", f"item {item_id} was not applied: {error}")
            raise _Redirect(f"{base(request)}/?{back_query}")

        return await handle(request, work, form=True)

    # -- other tabs -------------------------------------------------------------------

    @app.get("/invalid", response_class=HTMLResponse)
    async def invalid_page(request: Request) -> Response:
        def work(viewer: Viewer, _form: Any) -> Response:
            require(request, viewer)
            with session_scope(settings) as db:
                rows = list(db.scalars(select(Candidate).where(Candidate.status == "invalid").order_by(Candidate.id.desc()).limit(500)))
                cands = [_candidate_view(c) for c in rows]
            return render(request, viewer, "invalid.html", tab="invalid", candidates=cands)

        return await handle(request, work)

    @app.post("/invalid/{candidate_id}/resubmit")
    async def resubmit(request: Request, candidate_id: int) -> Response:
        def work(viewer: Viewer, form: Any) -> Response:
            me = require(request, viewer)
            question, answer = _text(form, "question"), _text(form, "answer")
            if not question or not answer:
                raise _PageError(400, "the fixed question and answer may not be empty", back=f"{base(request)}/invalid")
            slots = [x.strip() for x in _text(form, "template_slots").split(",") if x.strip()]
            outcome = resubmit_candidate(settings, candidate_id, question=question, answer=answer, by=me.name, door="web", **({"template_slots": slots} if slots else {}))
            status = outcome.status
            if status == "invalid":
                viewer.flash("warn", f"candidate {candidate_id} still fails the gate: " + "; ".join(str(r) for r in (outcome.reasons or [])))
            elif status == "queued":
                viewer.flash("ok", f"candidate {candidate_id} passed the gate and waits in the queue")
            else:
                viewer.flash("ok", f"candidate {candidate_id} resubmitted: {status}")
            raise _Redirect(f"{base(request)}/invalid")

        return await handle(request, work, form=True)

    @app.get("/decided", response_class=HTMLResponse)
    async def decided_page(request: Request) -> Response:
        def work(viewer: Viewer, _form: Any) -> Response:
            require(request, viewer)
            with session_scope(settings) as db:
                rows = list(
                    db.scalars(select(ReviewItem).where(ReviewItem.state == "applied").order_by(ReviewItem.applied_at.desc(), ReviewItem.id.desc()).limit(200))
                )
                items = [
                    {"id": r.id, "question": r.edited_question or r.question, "decision": r.decision, "by": r.decided_by, "via": r.decided_via or "sql",
                     "at": r.applied_at, "note": r.note, "lang": r.lang, "origin": r.origin, "merge_into": getattr(r, "merge_into", None)}
                    for r in rows
                ]
            return render(request, viewer, "decided.html", tab="decided", items=items)

        return await handle(request, work)

    # -- admin -------------------------------------------------------------------------

    @app.get("/admin", response_class=HTMLResponse)
    async def admin_page(request: Request) -> Response:
        def work(viewer: Viewer, _form: Any) -> Response:
            require(request, viewer, "admin")
            return render(
                request, viewer, "admin.html", tab="admin", accounts=accounts.list_reviewers(settings), roles=accounts.ROLES,
                rules=settings.rules, trusted_header=settings.review_trusted_header, trusted_proxies=settings.review_trusted_proxies,
            )

        return await handle(request, work)

    @app.post("/admin/accounts")
    async def admin_accounts(request: Request) -> Response:
        def work(viewer: Viewer, form: Any) -> Response:
            me = require(request, viewer, "admin")
            op, name = str(form.get("op") or ""), _text(form, "name")
            back = f"{base(request)}/admin"
            try:
                if op == "add":
                    password = str(form.get("password") or "")
                    accounts.add_reviewer(settings, name, password or None, role=str(form.get("role") or "reviewer"), by=me.name, door="web")
                    viewer.flash("ok", f"account {name} added")
                elif op == "remove":
                    if name == me.name:
                        raise AccountError("you cannot remove your own account while signed in with it")
                    accounts.remove_reviewer(settings, name, by=me.name, door="web")
                    viewer.flash("ok", f"account {name} removed")
                elif op == "role":
                    accounts.set_role(settings, name, str(form.get("role") or ""), by=me.name, door="web")
                    viewer.flash("ok", f"{name} is now {form.get('role')}")
                elif op == "password":
                    accounts.set_password(settings, name, str(form.get("password") or ""), by=me.name, door="web")
                    viewer.flash("ok", f"password of {name} changed; their sessions ended")
                else:
                    raise _PageError(400, f"account operation {op!r} is not add, remove, role or password", back=back)
            except AccountError as exc:
                raise _PageError(400, str(exc), back=back) from None
            raise _Redirect(back)

        return await handle(request, work, form=True)

    return app


# --- form helpers ----------------------------------------------------------------------


def _int(value: Any) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**31 else None


def _text(form: Any, key: str) -> str:
    value = form.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _PageError(400, f"field {key!r} must be text, not a file")
    if len(value) > MAX_TEXT:
        raise _PageError(400, f"field {key!r} is {len(value)} characters long; the limit is {MAX_TEXT}")
    return value.strip()


def _filters(origin: str = "", lang: str = "", tag: str = "", warnings: str = "", page: int = 1, per_page: int = 50) -> dict[str, Any]:
    if warnings not in WARNING_FILTERS:
        raise _PageError(400, f"warnings={warnings!r} is not one of: with, without (or empty for all)")
    if per_page not in PAGE_SIZES:
        raise _PageError(400, f"per_page={per_page} is not one of {', '.join(map(str, PAGE_SIZES))}")
    if page < 1:
        raise _PageError(400, f"page={page} must be 1 or more")
    return {"origin": origin[:40], "lang": lang[:8], "tag": tag[:200], "warnings": warnings, "page": page, "per_page": per_page}


def _query(filters: dict[str, Any]) -> str:
    defaults = {"page": 1, "per_page": 50}
    return urlencode({k: v for k, v in filters.items() if v and v != defaults.get(k)})


def _return_query(form: Any) -> str:
    """The queue filters the form came from, re-encoded from known keys only (no open redirect)."""
    raw = str(form.get("return_query") or "")[:2000]
    known = {"origin", "lang", "tag", "warnings", "page", "per_page"}
    return urlencode([(k, v) for k, v in parse_qsl(raw) if k in known])


# --- deciding --------------------------------------------------------------------------


def _decide(settings: Settings, ids: list[int], decision: str, kwargs: dict[str, Any]):
    from kbops.review.queue import decide

    try:
        return decide(settings, ids, decision, **kwargs)
    except TypeError as exc:  # merge_into before the queue knows merges
        raise InvalidDecision(f"this version cannot {decision}: {exc}") from None


def _bulk_decide(settings: Settings, ids: list[int], action: str, kwargs: dict[str, Any]) -> tuple[int, int, list[str], dict[int, str]]:
    """Decide many items: the open ones in one call; already-decided ones are reported, not fatal.

    Returns (applied, of which merged as near-duplicates, skipped messages, apply errors by item).
    """
    with session_scope(settings) as db:
        rows = {r.id: r for r in db.scalars(select(ReviewItem).where(ReviewItem.id.in_(ids)))}
    skipped: list[str] = []
    missing = [i for i in ids if i not in rows]
    if missing:
        skipped.append(f"no review item(s) {', '.join(map(str, missing[:10]))}")
    taken = [r for r in rows.values() if r.state != "open" or (r.decision is not None and r.apply_error is None)]
    for r in taken[:10]:
        skipped.append(f"item {r.id} was already decided by {r.decided_by or 'the pipeline'} ({r.decision or r.state})")
    todo = [i for i in ids if i in rows and rows[i] not in taken]
    done, merged, errors = 0, 0, {}
    if not todo:
        return 0, 0, skipped, errors
    try:
        result = _decide(settings, todo, action, kwargs)
        return result.applied, getattr(result, "merged", 0), skipped, dict(result.errors)
    except AlreadyDecided:
        pass  # someone decided one of them between our read and our claim: go one by one
    for item_id in todo:
        try:
            result = _decide(settings, [item_id], action, kwargs)
            done += result.applied
            merged += getattr(result, "merged", 0)
            errors.update(result.errors)
        except AlreadyDecided as exc:
            skipped.append(str(exc))
    return done, merged, skipped, errors


# --- reading the queue -----------------------------------------------------------------


def _queue(settings: Settings, filters: dict[str, Any]) -> dict[str, Any]:
    """One page of open items (priority first, then oldest), with facets for the filters."""
    with session_scope(settings) as db:
        light = db.execute(
            select(ReviewItem.id, ReviewItem.origin, ReviewItem.lang, ReviewItem.warnings, ReviewItem.apply_error, Candidate.tags)
            .join(Candidate, Candidate.id == ReviewItem.candidate_id)
            .where(ReviewItem.state == "open")
            .order_by(ReviewItem.priority.desc(), ReviewItem.created_at, ReviewItem.id)
        ).all()
        facets: dict[str, dict[str, int]] = {"origin": {}, "lang": {}, "tag": {}}
        matching: list[int] = []
        for item_id, origin, lang, warnings, apply_error, tags in light:
            facets["origin"][origin] = facets["origin"].get(origin, 0) + 1
            facets["lang"][lang] = facets["lang"].get(lang, 0) + 1
            for t in tags or []:
                if t:
                    facets["tag"][t] = facets["tag"].get(t, 0) + 1
            flagged = bool(warnings) or bool(apply_error)
            if filters["origin"] and origin != filters["origin"]:
                continue
            if filters["lang"] and lang != filters["lang"]:
                continue
            if filters["tag"] and filters["tag"] not in (tags or []):
                continue
            if filters["warnings"] == "with" and not flagged or filters["warnings"] == "without" and flagged:
                continue
            matching.append(item_id)
        per, page = filters["per_page"], filters["page"]
        pages = max(1, -(-len(matching) // per))
        page_ids = matching[(page - 1) * per : page * per]
        rows = {r.id: r for r in db.scalars(select(ReviewItem).where(ReviewItem.id.in_(page_ids)))} if page_ids else {}
        cards = _cards(db, [rows[i] for i in page_ids if i in rows])
    return {
        "items": cards,
        "total_open": len(light),
        "matching": len(matching),
        "page": page,
        "pages": pages,
        "facets": {k: sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))[:60] for k, v in facets.items()},
        "page_sizes": PAGE_SIZES,
    }


def _cut(text: Any, limit: int = MAX_SHOWN) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit} more characters]"


def _diff(old: str, new: str) -> list[tuple[str, str]]:
    """Character-level diff as (op, text) segments, op in eq/del/ins; escaped by the template."""
    if len(old) + len(new) > 8000:
        return [("del", _cut(old)), ("ins", _cut(new))]
    out: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            out.append(("eq", old[a1:a2]))
        else:
            if a2 > a1:
                out.append(("del", old[a1:a2]))
            if b2 > b1:
                out.append(("ins", new[b1:b2]))
    return out


def _parse_ref(ref: str) -> tuple[str, str, str, int] | None:
    try:
        head, version = str(ref).rsplit("@", 1)
        source, kind, key = head.split("/", 2)
        return source, kind, key, int(version)
    except ValueError:
        return None


def _cards(db, rows: list[ReviewItem]) -> list[dict[str, Any]]:
    """Everything a reviewer needs per item, loaded with a handful of queries for the whole page."""
    if not rows:
        return []
    candidates = {c.id: c for c in db.scalars(select(Candidate).where(Candidate.id.in_([r.candidate_id for r in rows])))}
    # Chat evidence: the whole (scrubbed) session around the answering turn.
    session_keys = {str(ex.get("session")) for r in rows for ex in (r.evidence or {}).get("excerpts", []) if isinstance(ex, dict)}
    sessions: dict[str, ChatSession] = {}
    if session_keys:
        for s in db.scalars(select(ChatSession).where(ChatSession.session_key.in_(sorted(session_keys)))):
            sessions.setdefault(s.session_key, s)
    # Record evidence: each version the item rests on, and the version before it (the old → new diff).
    refs: dict[str, tuple[str, str, str, int]] = {}
    for r in rows:
        cand = candidates.get(r.candidate_id)
        for ref in list(cand.depends_on if cand else []) + list((r.evidence or {}).get("records", [])):
            parsed = _parse_ref(ref)
            if parsed:
                refs[ref] = parsed
    records: dict[tuple[str, str, str, int], SourceRecord] = {}
    wanted = sorted({(s, k, key) for s, k, key, _ in refs.values()})
    for start in range(0, len(wanted), 100):
        chunk = wanted[start : start + 100]
        cond = or_(*[and_(SourceRecord.source == s, SourceRecord.kind == k, SourceRecord.key == key) for s, k, key in chunk])
        for rec in db.scalars(select(SourceRecord).where(cond)):
            records[(rec.source, rec.kind, rec.key, rec.version)] = rec
    # The entry each item would replace, and the entries it could be merged into.
    merge_keys = {k for r in rows for k in _merge_keys(r)}
    entries = {e.entry_key: e for e in db.scalars(select(KbEntry).where(KbEntry.entry_key.in_(sorted({r.entry_key for r in rows} | merge_keys))))}
    # Audit trail: events on the item, and on the entry it replaces.
    entry_ids = [entries[r.entry_key].id for r in rows if r.entry_key in entries]
    events = list(
        db.scalars(
            select(AuditEvent)
            .where(or_(AuditEvent.review_item_id.in_([r.id for r in rows]), AuditEvent.entry_id.in_(entry_ids or [-1])))
            .order_by(AuditEvent.id.desc())
            .limit(50 * len(rows))
        )
    )
    cards = []
    for index, r in enumerate(rows):
        cand = candidates.get(r.candidate_id)
        entry = entries.get(r.entry_key)
        ev = dict(r.evidence or {})
        card: dict[str, Any] = {
            "id": r.id,
            "next": rows[index + 1].id if index + 1 < len(rows) else (rows[index - 1].id if index else None),
            "entry_key": r.entry_key,
            "origin": r.origin,
            "kind": r.kind,
            "lang": r.lang,
            "question": r.question,
            "answer": r.answer,
            "alt_questions": list(r.alt_questions or []),
            "support": r.support,
            "priority": r.priority,
            "created_at": r.created_at,
            "state": r.state,
            "decision": r.decision,
            "decided_by": r.decided_by,
            "apply_error": r.apply_error,
            "warnings": [str(w) for w in (r.warnings or [])],
            "tags": [t for t in (cand.tags if cand else []) if t],
            "chats": _chat_evidence(ev, sessions),
            "records": _record_evidence(ev, cand, refs, records),
            "stale_values": [sv for sv in ev.get("stale_values", []) if isinstance(sv, dict)],
            "document": {"key": ev["document"], "title": ev.get("title", ""), "version": ev.get("version")} if ev.get("document") else None,
            "file": {"name": ev["file"], "location": ev.get("location", "")} if ev.get("file") else None,
            "quality": _quality(ev),
            "other_evidence": {k: v for k, v in ev.items() if k not in _SHOWN_EVIDENCE},
            "current": None,
            "merge_targets": [],
            "proposed_merge_into": getattr(r, "proposed_merge_into", None),
            "audit": [],
        }
        if entry is not None:
            card["current"] = {
                "id": entry.id, "status": entry.status, "revision": entry.revision, "reason": entry.status_reason,
                "question_diff": _diff(entry.question, r.question) if entry.question != r.question else None,
                "answer_diff": _diff(entry.answer, r.answer) if entry.answer != r.answer else None,
                "question": entry.question, "answer": entry.answer,
            }
        for key in _merge_keys(r):
            target = entries.get(key)
            if target is not None and target.status in ("active", "withdrawn") and key != r.entry_key:
                card["merge_targets"].append({"entry_key": key, "question": target.question, "answer": _cut(target.answer, 300), "lang": target.lang,
                                              "proposed": key == getattr(r, "proposed_merge_into", None), "score": _similarity(ev, key)})
        mine = [e for e in events if e.review_item_id == r.id or (entry is not None and e.entry_id == entry.id)]
        card["audit"] = [
            {"at": e.at, "actor": e.actor, "door": e.door, "action": e.action, "note": e.note, "before": e.before, "after": e.after}
            for e in mine[:30]
        ]
        cards.append(card)
    return cards


_SHOWN_EVIDENCE = {
    "excerpts", "sessions", "skus", "records", "sku", "stale_values", "document", "title", "version", "file", "location",
    "quality", "quality_parts", "answer_from", "nearest", "near_duplicates", "nearest_entries", "near_duplicate",
}


def _quality(ev: dict[str, Any]) -> dict[str, Any] | None:
    """The miner's quality score and its parts, when the evidence has them."""
    if not isinstance(ev.get("quality"), (int, float)):
        return None
    parts = ev.get("quality_parts") if isinstance(ev.get("quality_parts"), dict) else {}
    return {"score": float(ev["quality"]), "parts": [(str(k), v) for k, v in parts.items() if isinstance(v, (int, float))]}


def _similarity(ev: dict[str, Any], key: str) -> float | None:
    """The gate's similarity score between the item and entry ``key``, when it recorded one."""
    single = [ev["near_duplicate"]] if isinstance(ev.get("near_duplicate"), dict) else []
    for near in single + [n for name in ("nearest", "near_duplicates", "nearest_entries") for n in (ev.get(name) or [])]:
        if isinstance(near, dict) and near.get("entry_key") == key:
            score = near.get("score", near.get("similarity"))
            return float(score) if isinstance(score, (int, float)) else None
    return None


def _merge_keys(r: ReviewItem) -> list[str]:
    """Entry keys the item could join: routing's proposal and the gate's nearest entries."""
    keys: list[str] = []
    proposed = getattr(r, "proposed_merge_into", None)
    if proposed:
        keys.append(proposed)
    ev = r.evidence or {}
    single = [ev["near_duplicate"]] if isinstance(ev.get("near_duplicate"), dict) else []
    for name in ("nearest", "near_duplicates", "nearest_entries"):
        for near in single + list(ev.get(name, []) or []):
            key = near.get("entry_key") if isinstance(near, dict) else near
            if isinstance(key, str) and key not in keys:
                keys.append(key)
    return keys[:8]


def _chat_evidence(ev: dict[str, Any], sessions: dict[str, ChatSession]) -> list[dict[str, Any]]:
    """Each excerpt's session around the exchange: the customer turn asked, the next agent turn answered."""
    out = []
    chosen = ev.get("answer_from") if isinstance(ev.get("answer_from"), dict) else {}
    for ex in ev.get("excerpts", [])[:5]:
        if not isinstance(ex, dict):
            continue
        session = sessions.get(str(ex.get("session")))
        turn = ex.get("turn") if isinstance(ex.get("turn"), int) else -1
        picked = str(chosen.get("session")) == str(ex.get("session")) and chosen.get("turn") == ex.get("turn")
        if session is not None and 0 <= turn < len(session.turns or []) - 1:
            lo, hi = max(0, turn - 2), min(len(session.turns), turn + 4)
            turns = [
                {"role": str(t.get("role", "")), "text": _cut(t.get("text", "")), "mark": "asked" if i == turn else "answered" if i == turn + 1 else ""}
                for i, t in enumerate(session.turns[lo:hi], start=lo)
                if isinstance(t, dict)
            ]
            out.append({"session": session.session_key, "source": session.source, "turns": turns, "more_before": lo > 0, "more_after": hi < len(session.turns), "picked": picked})
        else:  # the session is gone (or evidence from elsewhere): show the excerpt itself
            out.append({"session": str(ex.get("session", "")), "source": "", "more_before": False, "more_after": False, "picked": picked, "turns": [
                {"role": "customer", "text": _cut(ex.get("question", "")), "mark": "asked"},
                {"role": "agent", "text": _cut(ex.get("answer", "")), "mark": "answered"},
            ]})
    return out


def _record_evidence(ev, cand, refs, records) -> list[dict[str, Any]]:
    out = []
    seen: set[str] = set()
    for ref in list(cand.depends_on if cand else []) + list(ev.get("records", [])):
        if ref in seen or ref not in refs:
            continue
        seen.add(ref)
        source, kind, key, version = refs[ref]
        rec, prev = records.get((source, kind, key, version)), records.get((source, kind, key, version - 1))
        fields = []
        payload = rec.payload if rec is not None else {}
        old = prev.payload if prev is not None else None
        for name in sorted(set(payload) | set(old or {})):
            new_value, old_value = payload.get(name), (old or {}).get(name)
            fields.append({"name": name, "value": _cut(new_value, 400), "old": _cut(old_value, 400) if old is not None and old_value != new_value else None})
        out.append({"ref": ref, "found": rec is not None, "deleted": bool(rec and rec.deleted), "fields": fields, "changed": old is not None})
    return out


def _candidate_view(c: Candidate) -> dict[str, Any]:
    return {"id": c.id, "entry_key": c.entry_key, "origin": c.origin, "lang": c.lang, "question": c.question, "answer": _cut(c.answer, MAX_SHOWN),
            "full_answer": c.answer if len(c.answer) <= MAX_TEXT else c.answer[:MAX_TEXT], "reasons": [str(x) for x in (c.reasons or [])], "created_at": c.created_at}
