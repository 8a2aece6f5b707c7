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
from kbops.errors import ConfigError, KbopsError
from kbops.index.embedder import Embedder
from kbops.index.preview import DEFAULT_DAYS, Replay, build_replay, item_impacts, logged_queries
from kbops.review import accounts
from kbops.serve.review_web.auth import COOKIE, Viewer, check_csrf, load_secret, require, resolve_viewer, sign, unsign
from kbops.serve.review_web.forms import PageError, Redirect

SERVE = Path(__file__).resolve().parent.parent  # templates/ and static/ stay in kbops/serve (package data)
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'; connect-src 'self'"
)

Work = Callable[[Viewer, Any], Response]
#: Seconds a replay set of logged questions is reused before it is rebuilt (the impact shown on the cards).
REPLAY_TTL = 300.0


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
        self._embedder: Embedder | None = None
        self._replay: tuple[float, Replay] | None = None
        # Each card's impact, kept for the replay set's life: (item id, row version, replay stamp) → impact.
        self._impacts: dict[tuple[int, int, float], dict[str, Any]] = {}

    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = load_secret(self.settings)
        return self._secret

    def embedder(self) -> Embedder | None:
        """The shared embedder (loaded on first use), or None when the model cannot be loaded: previews go lexical."""
        if self._embedder is None:
            try:
                self._embedder = Embedder.from_settings(self.settings)
                _ = self._embedder.dim
            except ConfigError:
                return None
        return self._embedder

    def impacts(self, items: list[Any]) -> dict[int, dict[str, Any]]:
        """Each item's impact preview (kbops.index.preview) over the last week's logged questions, by item id.

        The replay set is rebuilt at most every :data:`REPLAY_TTL` seconds (one
        embedding pass, through the embedder's cache); a card's impact is computed
        once per replay set (a page of new cards in one pass) and then reused."""
        if not items:
            return {}
        if self._replay is None or time.monotonic() - self._replay[0] > REPLAY_TTL:
            with session_scope(self.settings) as db:
                queries = logged_queries(db, days=DEFAULT_DAYS)
            # No questions logged (yet): nothing to replay, and no model to load for it.
            self._replay = (time.monotonic(), build_replay(queries, self.embedder() if len(queries) else None, self.settings))
        replay = self._replay[1]
        if not len(replay.queries):
            return {}
        embedder = self.embedder() if replay.vectors is not None else None
        stamp = self._replay[0]
        todo = [i for i in items if (i.id, i.row_version, stamp) not in self._impacts]
        if todo:
            found = item_impacts(replay, [([i.question, *(i.alt_questions or [])], None) for i in todo], embedder)
            if len(self._impacts) > 5000:
                self._impacts.clear()
            self._impacts.update({(i.id, i.row_version, stamp): impact.as_dict() for i, impact in zip(todo, found)})
        return {i.id: self._impacts[(i.id, i.row_version, stamp)] for i in items}

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
