"""The bot HTTP API: ``POST /search``, ``GET /healthz``, ``GET /release``.

Reads only the active index release (plus the query log write). The
retriever's watcher notices a moved ``ACTIVE`` pointer, verifies and loads the
new release in the background and swaps it in once ready: no restart, no failed
or stalled request. Until then the old release answers with the activation's
revocation overlay applied, so a withdrawn or changed fact is handed off
(``reason: "updating"``), never served (kbops/serve/retriever.py).
With ``KBOPS_API_TOKEN`` set, every request needs ``Authorization: Bearer <token>``.
The review page (kbops/serve/review_web/) is mounted at ``/review`` with its
own reviewer sign-in; the read token neither opens it nor is needed for it.

Every error answers JSON ``{"error": <name>, "detail": <one-line message>}``,
never a 500 for what the caller sent: a :class:`~kbops.errors.KbopsError`
with its class's ``http_status`` (a bad query → 400, no usable release → 503),
a missing or wrong token → 401, an unknown path → 404, a wrong method → 405, a
body larger than the limit → 413 (checked before it is parsed, with or without
a ``Content-Length``), a body that does not fit the schema → 422. A 422 names
the fields and what is wrong with them but never echoes the values sent (they
may be huge, private, or not encodable at all: NaN, a lone surrogate); the
schema is strict (``"top_k": true`` or ``3.0`` is not a whole number).
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from kbops.config import Settings
from kbops.errors import KbopsError
from kbops.index.search import MAX_TOP_K
from kbops.serve.retriever import Retriever, log_answer
from kbops.serve.review_web import create_review_app

#: Largest request body the bot API reads (bytes). A query is at most MAX_QUERY_CHARS characters,
#: a few KiB even as JSON ``\\uXXXX`` escapes; anything far larger is refused before it is parsed.
MAX_SEARCH_BODY = 64 * 1024
#: Largest body under ``/review`` (form posts: three texts of at most 20,000 characters, bulk ids).
MAX_REVIEW_BODY = 2 * 1024 * 1024
#: Longest piece of the request (a field name, a message) an error answer repeats.
_SHOWN = 200
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_ERROR_NAMES = {413: "PayloadTooLarge"}  # HTTPStatus's phrase for 413 changed across Python versions

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


#: A filter value (language, tag, category). A length bound makes pydantic read it as UTF-8 text,
#: so a lone surrogate is a 422 here as it is in the query, never text that cannot be encoded later.
Name = Annotated[str, StringConstraints(max_length=200)]


class SearchRequest(BaseModel):
    """A bot query; unknown fields (a misspelt filter) are refused, not ignored.

    Strict: no coercion, so ``"top_k": true``, ``3.0`` or ``"3"`` is refused
    instead of read as a number (JSON ``true`` is not 1 to a caller)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    query: str = Field(..., description="the customer's question", max_length=100_000)
    top_k: int = Field(3, description=f"entries to return, 1–{MAX_TOP_K}")
    lang: Name | None = Field(None, description="only entries in this language: zh or en")
    tags: list[Name] | None = Field(None, description="only entries with one of these tags", max_length=100)
    category: list[Name] | None = Field(None, description="only entries of these kinds (price, stock, shipping, warranty, policy, faq…)", max_length=100)


def _printable(text: str, limit: int = _SHOWN) -> str:
    """``text`` cut to ``limit`` characters and encodable as UTF-8 (a lone surrogate is shown as ``\\udXXX``)."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def problem(status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """The one error answer: ``{"error", "detail"}`` (plus ``extra``), always encodable JSON."""
    return JSONResponse(status_code=status, content={"error": error, "detail": _printable(detail, 5 * _SHOWN), **extra}, headers=headers)


def _where(loc: Any) -> str:
    """A validation error's location without the values sent: field names and list positions.

    A field the schema does not know is named only when it looks like a field
    name (``colour``); any other key (a phone number, 10,000 characters) is
    someone's data and is not repeated."""
    parts = []
    for part in loc or ():
        if part == "body":
            continue
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(str(part) if _FIELD_NAME.fullmatch(str(part)) else "<field>")
    return ".".join(parts).replace(".[", "[") or "body"


def validation_problem(exc: RequestValidationError) -> JSONResponse:
    """A 422 naming each bad field and what is wrong, without ``input`` or ``ctx`` (the values sent)."""
    errors = [{"loc": _where(e.get("loc")), "msg": _printable(str(e.get("msg", "")), _SHOWN), "type": str(e.get("type", ""))} for e in exc.errors()[:20]]
    detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors) or "the request does not fit the schema"
    return problem(422, "RequestValidationError", detail, errors=errors)


class BodyLimit:
    """ASGI middleware: refuse a request body over the limit with a 413 before anything parses it.

    A declared ``Content-Length`` over the limit is refused without reading;
    otherwise the body is read (at most the limit) and handed on, so a chunked
    upload cannot get past either. ``limit_for(path)`` gives the limit."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit_for: Callable[[str], int]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("path", "")))
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, f"the request body is {int(declared):,} bytes; the limit is {limit:,}")
            return
        chunks: list[bytes] = []
        size, last = 0, None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                last = message  # the client went away: pass that on
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, f"the request body is over the limit of {limit:,} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return last if last is not None else {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, detail: str) -> None:
        response = problem(413, "PayloadTooLarge", f"{detail}; a query is at most a few thousand characters", headers={"Connection": "close"})
        await response(scope, receive, send)


def _status_name(status: int) -> str:
    """``NotFound`` for 404: the status phrase as a name."""
    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return "HTTPError"


def _body_limit(path: str) -> int:
    return MAX_REVIEW_BODY if path == "/review" or path.startswith("/review/") else MAX_SEARCH_BODY


def create_app(settings: Settings, retriever: Retriever | None = None) -> FastAPI:
    app = FastAPI(title="kbops bot API", version="1", description="Answers from the active knowledge-base release, with a handoff flag when unsure.")
    app.add_middleware(BodyLimit, limit_for=_body_limit)
    state: dict[str, Any] = {"retriever": retriever}

    def get_retriever() -> Retriever:
        if state["retriever"] is None:
            state["retriever"] = Retriever(settings, background_reload=True)
        return state["retriever"]

    def auth(authorization: str | None = Header(None)) -> None:
        if settings.api_token is None:
            return
        expected = f"Bearer {settings.api_token}"
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    @app.exception_handler(KbopsError)
    async def _kbops_error(_request: Request, exc: KbopsError) -> JSONResponse:
        # By class: each error names its status; the class name is only reported, never matched.
        return problem(exc.http_status, type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        name = _ERROR_NAMES.get(exc.status_code) or _status_name(exc.status_code)
        return problem(exc.status_code, name, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _server_error(_request: Request, exc: Exception) -> JSONResponse:
        # A bug, not the caller's doing: logged with its traceback here, answered as JSON without one.
        logging.getLogger("kbops.serve").error("unexpected error answering a request", exc_info=exc)
        return problem(500, "InternalServerError", "the server failed to answer; the error is in its log")

    @app.post("/search", dependencies=[Depends(auth)])
    def search(req: SearchRequest) -> dict[str, Any]:
        answer = get_retriever().search(req.query, top_k=req.top_k, lang=req.lang, tags=req.tags, categories=req.category)
        log_answer(settings, answer)
        return answer.as_dict()

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """200 while a release is served: ``status`` ok, updating (the active release is loading; revoked
        entries held back) or degraded (the active release was refused here); 503 with none at all."""
        retriever = get_retriever()
        try:
            loaded = retriever.release()
            freshness = retriever.status()
        except KbopsError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
        return {"release_id": loaded.release_id, **freshness}

    @app.get("/release", dependencies=[Depends(auth)])
    def release() -> dict[str, Any]:
        """The serving release's manifest, the active release and the lag between them (seconds)."""
        retriever = get_retriever()
        m = retriever.release().manifest
        freshness = retriever.status()
        return {**{k: m[k] for k in ("release_id", "created_at", "model", "dim", "entry_count", "vector_count", "index_type", "kb_digest")}, **freshness}

    # The review page: its own sub-application with reviewer sessions, separate from the read token.
    app.mount("/review", create_review_app(settings))
    return app
