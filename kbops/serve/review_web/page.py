"""Request plumbing shared by the review page's routes: rendering, cookies, security headers, errors as pages.

:meth:`Page.handle` runs a handler's work in a worker thread: it resolves the
viewer, checks a form's CSRF token, and turns exceptions into pages by class:
:class:`~kbops.serve.review_web.forms.PageError` carries its own status (a form
the page cannot read, a missing role), every :class:`~kbops.errors.KbopsError`
answers its ``http_status``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from kbops.config import Settings
from kbops.db import session_scope
from kbops.errors import KbopsError
from kbops.review import accounts
from kbops.serve.review_web.auth import COOKIE, Viewer, check_csrf, load_secret, require, resolve_viewer, sign, unsign
from kbops.serve.review_web.forms import PageError, Redirect

SERVE = Path(__file__).resolve().parent.parent  # templates/ and static/ stay in kbops/serve (package data)
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'; connect-src 'self'"
)

Work = Callable[[Viewer, Any], Response]


class Page:
    """What every handler shares: settings, templates, the signing secret (sign-in throttling lives in the database)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(SERVE / "templates"),
            autoescape=True,  # every {{ value }} is HTML-escaped; nothing is marked safe
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M") if d else ""
        self.env.filters["pretty"] = lambda v: json.dumps(v, ensure_ascii=False, indent=1, default=str)
        self._secret: bytes | None = None

    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = load_secret(self.settings)
        return self._secret

    @staticmethod
    def base(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    def require(self, request: Request, viewer: Viewer, role: str = "reviewer") -> accounts.Account:
        return require(viewer, f"{self.base(request)}/login", role)

    def viewer_for(self, request: Request) -> Viewer:
        session = unsign(self.secret(), request.cookies.get(COOKIE))
        client = request.client.host if request.client else ""
        with session_scope(self.settings) as db:
            return resolve_viewer(db, self.settings, session, client, request.headers)

    def finish(self, response: Response, request: Request, viewer: Viewer | None) -> Response:
        """Security headers, and the session cookie when the session changed."""
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        if viewer is not None and viewer.dirty:
            hours = self.settings.review_session_hours
            viewer.session["x"] = int(time.time() + hours * 3600)
            response.set_cookie(
                COOKIE,
                sign(self.secret(), viewer.session),
                max_age=int(hours * 3600),
                path=self.base(request) or "/",
                httponly=True,
                samesite="lax",
                secure=request.url.scheme == "https",
            )
        return response

    def render(self, request: Request, viewer: Viewer | None, template: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("tab", "")
        html = self.env.get_template(template).render(
            base=self.base(request),
            viewer=viewer,
            me=viewer.account if viewer else None,
            csrf=viewer.csrf if viewer else "",
            flashes=viewer.take_flashes() if viewer else [],
            **context,
        )
        return self.finish(HTMLResponse(html, status_code=status), request, viewer)

    def problem(self, request: Request, viewer: Viewer | None, status: int, message: str, back: str) -> Response:
        return self.render(request, viewer, "error.html", status=status, message=message, back=back)

    async def handle(self, request: Request, work: Work, *, form: bool = False, back: str = "/") -> Response:
        """Run ``work(viewer, form)`` in a worker thread; errors become pages whose link goes ``back``."""
        viewer: Viewer | None = None
        back_url = self.base(request) + back
        try:
            data = await request.form(max_fields=5000) if form else None
            viewer = await run_in_threadpool(self.viewer_for, request)
            if form:
                check_csrf(viewer, data)
            return await run_in_threadpool(work, viewer, data)
        except Redirect as r:
            return self.finish(RedirectResponse(r.url, status_code=303), request, viewer)
        except PageError as e:
            return self.problem(request, viewer, e.status, e.message, e.back or back_url)
        except KbopsError as e:
            return self.problem(request, viewer, e.http_status, str(e), back_url)


async def bad_request(request: Request, exc: RequestValidationError) -> Response:
    """A path or query parameter of the wrong type: a 400 page naming it."""
    problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}" for e in exc.errors())
    page: Page = request.app.state.page
    return page.problem(request, None, 400, f"bad request: {problems}", f"{page.base(request)}/")


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """No such route, or an HTTP error raised below the handlers: a page, not JSON."""
    message = "no such page; the queue is at the link below" if exc.status_code == 404 else str(exc.detail)
    page: Page = request.app.state.page
    return page.problem(request, None, exc.status_code, message, f"{page.base(request)}/")
