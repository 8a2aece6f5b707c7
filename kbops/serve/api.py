"""The bot HTTP API: ``POST /search``, ``POST /search/batch``, ``GET /healthz``, ``GET /release``, ``GET /metrics``.

Reads only the active index release (plus the query log write). The
retriever's watcher notices a moved ``ACTIVE`` pointer, verifies and loads the
new release in the background and swaps it in once ready: no restart, no failed
or stalled request. Until then the old release answers with the activation's
revocation overlay applied, so a withdrawn or changed fact is handed off
(``reason: "updating"``), never served (kbops/serve/retriever.py).
With ``KBOPS_API_TOKEN`` set, every request but ``/healthz`` needs
``Authorization: Bearer <token>`` (declared in OpenAPI as the ``bearer``
HTTPBearer scheme; a 401 carries ``WWW-Authenticate: Bearer``), ``/metrics``
included: Prometheus sends it with ``authorization: {credentials: …}`` in its
scrape config. The review page (kbops/serve/review_web/) is mounted at
``/review`` with its own reviewer sign-in; the read token neither opens it nor
is needed for it.

The contract is typed: every reply has a pydantic model in ``/openapi.json``
(:class:`SearchResponse`, :class:`BatchResponse`, :class:`HealthResponse`,
:class:`ReleaseResponse`, :class:`ErrorResponse`). Every reply carries
``X-Request-ID`` (the caller's own when it sent a valid one — up to 128
letters, digits and ``-_.:/+=@`` — else one the server made) and
``Server-Timing: app;dur=<ms>``; a search reply also has ``request_id`` and
``took_ms`` (server time until the answer was ready) in its body, and the
query log keeps both with the scrubbed query (:mod:`kbops.serve.query_log`,
written off the request path). ``POST /search/batch`` answers up to
:data:`MAX_BATCH` queries in one request, each like ``/search``; a query the
caller got wrong answers its own ``{"error", "detail", "status"}`` item in
place, the others are answered.

Every error answers JSON ``{"error": <name>, "detail": <one-line message>}``,
never a 500 for what the caller sent: a :class:`~kbops.errors.KbopsError`
with its class's ``http_status`` (a bad query → 400, no usable release → 503),
a missing or wrong token → 401, an unknown path → 404, a wrong method → 405, a
body larger than the limit → 413 (checked before it is parsed, with or without
a ``Content-Length``), a body that does not fit the schema → 422. A 422 names
the fields and what is wrong with them but never echoes the values sent (they
may be huge, private, or not encodable at all: NaN, a lone surrogate); the
schema is strict (``"top_k": true`` or ``3.0`` is not a whole number).

Metrics (:mod:`kbops.serve.metrics`): requests by endpoint and status, latency,
handoffs by reason and language, confidence, the serving and active release,
its age and lag — summed over every worker of ``kbops serve --workers N``.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from kbops.config import Settings
from kbops.errors import KbopsError
from kbops.index.search import MAX_TOP_K, Answer
from kbops.serve import metrics
from kbops.serve.query_log import QueryLogWriter
from kbops.serve.retriever import Retriever
from kbops.serve.review_web import create_review_app

#: Largest request body the bot API reads (bytes). A query is at most MAX_QUERY_CHARS characters,
#: a few KiB even as JSON ``\\uXXXX`` escapes; anything far larger is refused before it is parsed.
MAX_SEARCH_BODY = 64 * 1024
#: Most queries in one ``POST /search/batch``.
MAX_BATCH = 32
#: Largest ``/search/batch`` body: MAX_BATCH queries of the single-query size.
MAX_BATCH_BODY = MAX_BATCH * MAX_SEARCH_BODY
#: Largest body under ``/review`` (form posts: three texts of at most 20,000 characters, bulk ids).
MAX_REVIEW_BODY = 2 * 1024 * 1024
#: Longest piece of the request (a field name, a message) an error answer repeats.
_SHOWN = 200
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_ERROR_NAMES = {413: "PayloadTooLarge"}  # HTTPStatus's phrase for 413 changed across Python versions
#: A caller's request id that is echoed: visible ASCII a log line and a header carry as is.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")

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


class BatchRequest(BaseModel):
    """Several queries in one request (a bot replaying a conversation, an evaluation run)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    queries: list[SearchRequest] = Field(..., min_length=1, max_length=MAX_BATCH, description=f"1–{MAX_BATCH} queries, each as the body of POST /search")


# --- replies --------------------------------------------------------------------------------------------
# Output models allow extra keys: a field the search core adds reaches callers at once (untyped) instead of
# vanishing, and tests/serve/test_api_contract.py fails until it is typed here.

_REASONS = (
    "no_match (nothing close enough), ambiguous (two different answers fit equally), clarify (several products fit: "
    "ask the customer which one, see options), wrong_kind (only entries of another kind matched), updating (this replica "
    "is still loading the active release and cannot vouch for the best hit); null when answered"
)


class HitModel(BaseModel):
    """One ranked KB entry."""

    model_config = ConfigDict(extra="allow")

    entry_id: int = Field(description="the KB entry's id")
    entry_key: str = Field(description="its stable key, e.g. price:zh:LM-1001")
    question: str = Field(description="the entry's question")
    answer: str = Field(description="the entry's answer")
    score: float = Field(description="fused similarity, 0–1")
    dense: float = Field(description="embedding cosine, 0–1")
    lexical: float = Field(description="lexical cosine, 0–1")
    lang: str = Field(description="the entry's language: zh or en")
    tags: list[str] = Field(description="the entry's tags (its kind among them)")
    kind: str | None = Field(None, description="price, stock, shipping, warranty, policy, faq, …")


class OptionModel(BaseModel):
    """One choice of a clarifying question (``reason: "clarify"``)."""

    model_config = ConfigDict(extra="allow")

    entry_id: int
    entry_key: str
    label: str = Field(description="what tells this choice apart, to show the customer")


class SearchResponse(BaseModel):
    """The bot's answer: serve ``answer`` when ``handoff`` is false; otherwise hand off (or ask back on ``clarify``)."""

    model_config = ConfigDict(extra="allow")

    release_id: str = Field(description="the release that answered")
    query: str = Field(description="the query as received, scrubbed of private data")
    handoff: bool = Field(description="true: a person should answer (or, on clarify, ask the customer to choose)")
    reason: str | None = Field(None, description=_REASONS)
    answer: str | None = Field(None, description="the top entry's answer; null when handed off")
    entry_id: int | None = Field(None, description="the top entry's id; null when nothing matched")
    score: float = Field(0.0, description="the top entry's fused score (0 when nothing matched)")
    confidence: float | None = Field(None, description="calibrated probability (0–1) that the top answer is right; null when not known")
    options: list[OptionModel] = Field(default_factory=list, description="the choices to offer when reason is clarify; else empty")
    lang: str | None = Field(None, description="the query's detected language: zh or en")
    hits: list[HitModel] = Field(default_factory=list, description="the best entries, best first (at most top_k)")
    request_id: str | None = Field(None, description="this request's X-Request-ID")
    took_ms: float | None = Field(None, description="server time until the answer was ready (ms)")


class BatchItemError(BaseModel):
    """A query of a batch that could not be answered as sent: the others are answered."""

    error: str
    detail: str
    status: int = Field(description="the status a POST /search of this query alone would have answered")


class BatchResponse(BaseModel):
    """One result per query, in order: an answer or an error item."""

    request_id: str
    took_ms: float = Field(description="server time for the whole batch (ms)")
    results: list[SearchResponse | BatchItemError]


class FreshnessModel(BaseModel):
    """The serving release, the active one and their lag (the retriever's status)."""

    model_config = ConfigDict(extra="allow")

    status: str = Field(description="ok; updating (loading the active release, revoked entries held back); degraded (the active release was refused)")
    serving_release_id: str
    active_release_id: str | None
    lag_seconds: float = Field(description="how long the active release has been active without being served here (0 when served)")
    activated_at: str | None = Field(None, description="when the active release was activated (ISO 8601)")
    loading: bool = Field(False, description="the active release is being loaded")
    revoked_entries: int | None = Field(None, description="entries of the serving release held back while behind; null: all answers handed off")
    refused: str | None = Field(None, description="why the active release was refused here, when it was")


class HealthResponse(FreshnessModel):
    """200 while a release is served."""

    release_id: str = Field(description="the serving release")


class ReleaseResponse(FreshnessModel):
    """The serving release's manifest and its freshness."""

    release_id: str
    created_at: str
    model: str
    dim: int
    entry_count: int
    vector_count: int
    index_type: str
    kb_digest: str | None = None


class ErrorResponse(BaseModel):
    """Every error: the error's name and a one-line message saying what to do."""

    error: str = Field(description="the error's name, e.g. QueryError, ReleaseError, Unauthorized")
    detail: str = Field(description="what is wrong and how to fix it (never the values sent)")


class FieldError(BaseModel):
    loc: str = Field(description="the field, e.g. top_k or queries[2].query")
    msg: str
    type: str


class ValidationErrorResponse(ErrorResponse):
    """422: which fields are wrong and why, without the values sent."""

    errors: list[FieldError]


_ERROR_DOCS: dict[int, tuple[type[BaseModel], str]] = {
    400: (ErrorResponse, "the query is malformed: empty, too long, an unknown language or category (QueryError)"),
    401: (ErrorResponse, "missing or wrong bearer token (only when the server has KBOPS_API_TOKEN); WWW-Authenticate: Bearer"),
    413: (ErrorResponse, "the request body is over the limit (PayloadTooLarge)"),
    422: (ValidationErrorResponse, "the body does not fit the schema (RequestValidationError)"),
    503: (ErrorResponse, "no usable release: none published yet, or the store cannot be read (ReleaseError, TransientError)"),
}
_TRACE_HEADERS = {
    "X-Request-ID": {"description": "the caller's X-Request-ID when valid, else one generated", "schema": {"type": "string"}},
    "Server-Timing": {"description": "app;dur=<ms>: server time until the response headers", "schema": {"type": "string"}},
}


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route: the trace headers on 200 and the listed errors with their models."""
    out: dict[int | str, dict[str, Any]] = {200: {"headers": _TRACE_HEADERS}}
    for code in codes:
        model, description = _ERROR_DOCS[code]
        out[code] = {"model": model, "description": description}
    return out


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


class RequestContext:
    """ASGI middleware: a request id and the server time on every reply, and the request metrics.

    ``X-Request-ID``: the caller's when it is a valid id (:data:`_REQUEST_ID`),
    else a new UUID; handlers read it (and the start time) from the scope
    (:func:`request_id`, :func:`elapsed_ms`). ``Server-Timing: app;dur=…`` is the
    time until the response headers. Outermost, so a 413 from :class:`BodyLimit`
    carries both too."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope["kbops.request_id"], scope["kbops.started"] = rid, started
        status = 500

        async def send_traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                took = (time.perf_counter() - started) * 1000
                headers = [*message.get("headers", ()), (b"x-request-id", rid.encode()), (b"server-timing", f"app;dur={took:.2f}".encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_traced)
        finally:
            metrics.observe_request(metrics.endpoint_label(str(scope.get("path", ""))), status, time.perf_counter() - started)


def request_id(request: Request) -> str:
    """The request's id (set by :class:`RequestContext`; a fresh one when the app runs without it)."""
    return str(request.scope.get("kbops.request_id") or uuid.uuid4().hex)


def elapsed_ms(request: Request) -> float:
    """Milliseconds since the request arrived (at :class:`RequestContext`)."""
    started = request.scope.get("kbops.started")
    return round((time.perf_counter() - started) * 1000, 3) if started is not None else 0.0


def _status_name(status: int) -> str:
    """``NotFound`` for 404: the status phrase as a name."""
    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return "HTTPError"


def _body_limit(path: str) -> int:
    if path == "/search/batch":
        return MAX_BATCH_BODY
    return MAX_REVIEW_BODY if path == "/review" or path.startswith("/review/") else MAX_SEARCH_BODY


def create_app(settings: Settings, retriever: Retriever | None = None) -> FastAPI:
    """The bot API over ``settings``' KB and index; ``retriever`` is made on startup (or first use) when not given.

    Its lifespan (a real server: ``kbops serve``, uvicorn) loads the model and the
    release before the first request, writes the query log from a background
    thread and keeps the release gauges current; on shutdown it writes every
    queued query-log row. Without the lifespan (a test client) the query log is
    written synchronously."""
    state: dict[str, Any] = {"retriever": retriever}

    def get_retriever() -> Retriever:
        if state["retriever"] is None:
            state["retriever"] = Retriever(settings, background_reload=True, on_query_vector=metrics.query_vector_lookup)
        return state["retriever"]

    def release_state() -> tuple[dict[str, Any], dict[str, Any]]:
        r = get_retriever()
        return r.status(), r.release().manifest

    query_log = QueryLogWriter(settings, on_drop=metrics.query_log_dropped, on_written=metrics.query_log_written)
    gauges = metrics.ReleaseGauges(release_state)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        def warm() -> None:
            try:
                get_retriever().release()  # the model and the release, before the first customer waits for them
            except KbopsError as exc:
                logging.getLogger("kbops.serve").warning("starting without a release: %s", exc)

        await run_in_threadpool(warm)
        query_log.start()
        gauges.start()
        try:
            yield
        finally:
            gauges.stop()
            await run_in_threadpool(query_log.close)
            metrics.worker_exit()

    app = FastAPI(
        title="kbops bot API", version="2", lifespan=lifespan,
        description="Answers from the active knowledge-base release, with a handoff flag when unsure. "
        "Every reply carries X-Request-ID and Server-Timing; errors are {error, detail}.",
    )
    app.state.query_log = query_log
    app.state.release_gauges = gauges
    app.add_middleware(BodyLimit, limit_for=_body_limit)
    app.add_middleware(RequestContext)  # added last: outermost, so even a 413 carries the request id
    bearer = HTTPBearer(
        auto_error=False, scheme_name="bearer",
        description="The read token: Authorization: Bearer <KBOPS_API_TOKEN>. Required when the server has KBOPS_API_TOKEN set.",
    )

    # A default, not Annotated[…]: ``bearer`` is local, and postponed annotations are resolved in module scope.
    # async: a plain compare, run on the event loop; a sync dependency would cost every request a hop through
    # the thread pool before the endpoint's own.
    async def auth(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        if settings.api_token is None:
            return
        if credentials is None:
            raise HTTPException(401, "missing bearer token: send Authorization: Bearer <token>", headers={"WWW-Authenticate": 'Bearer realm="kbops"'})
        if not hmac.compare_digest(credentials.credentials.encode(), settings.api_token.encode()):
            raise HTTPException(401, "wrong bearer token", headers={"WWW-Authenticate": 'Bearer realm="kbops", error="invalid_token"'})

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

    def answer(req: SearchRequest, rid: str, started: float) -> dict[str, Any]:
        """One query answered, logged and counted: the reply body of ``/search`` (and a batch item)."""
        found: Answer = get_retriever().search(req.query, top_k=req.top_k, lang=req.lang, tags=req.tags, categories=req.category)
        out = found.as_dict()
        took = round((time.perf_counter() - started) * 1000, 3)
        out["request_id"], out["took_ms"] = rid, took
        query_log.submit(found, latency_ms=took, request_id=rid)
        metrics.observe_answer(out)
        return out

    @app.post("/search", dependencies=[Depends(auth)], response_model=SearchResponse, responses=_responses(400, 401, 413, 422, 503))
    def search(req: SearchRequest, request: Request) -> dict[str, Any]:
        """Answer one customer question from the active release, or say why a person should."""
        return answer(req, request_id(request), request.scope.get("kbops.started") or time.perf_counter())

    @app.post("/search/batch", dependencies=[Depends(auth)], response_model=BatchResponse, responses=_responses(401, 413, 422, 503))
    def search_batch(batch: BatchRequest, request: Request) -> dict[str, Any]:
        """Answer up to 32 queries (MAX_BATCH) in order. A query the caller got wrong (a 4xx for it alone) answers an
        error item in its place; a server-side failure (no release: 503) fails the whole batch."""
        rid = request_id(request)
        results: list[dict[str, Any]] = []
        for req in batch.queries:
            try:
                results.append(answer(req, rid, time.perf_counter()))
            except KbopsError as exc:
                if exc.http_status >= 500:
                    raise
                results.append({"error": type(exc).__name__, "detail": _printable(str(exc), 5 * _SHOWN), "status": exc.http_status})
        return {"request_id": rid, "took_ms": elapsed_ms(request), "results": results}

    @app.get("/healthz", response_model=HealthResponse, responses=_responses(503))
    def healthz() -> dict[str, Any]:
        """200 while a release is served: ``status`` ok, updating (the active release is loading; revoked
        entries held back) or degraded (the active release was refused here); 503 with none at all. No token needed."""
        retriever = get_retriever()
        try:
            loaded = retriever.release()
            freshness = retriever.status()
        except KbopsError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
        return {"release_id": loaded.release_id, **freshness}

    @app.get("/release", dependencies=[Depends(auth)], response_model=ReleaseResponse, responses=_responses(401, 503))
    def release() -> dict[str, Any]:
        """The serving release's manifest, the active release and the lag between them (seconds)."""
        retriever = get_retriever()
        m = retriever.release().manifest
        freshness = retriever.status()
        return {**{k: m.get(k) for k in ("release_id", "created_at", "model", "dim", "entry_count", "vector_count", "index_type", "kb_digest")}, **freshness}

    @app.get(
        "/metrics", dependencies=[Depends(auth)], response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition, all workers summed"}, **_responses(401)},
    )
    def metrics_page() -> Response:
        """Prometheus metrics (kbops/serve/metrics.py); the bearer token is needed when the server has one."""
        gauges.refresh()
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    # The review page: its own sub-application with reviewer sessions, separate from the read token.
    app.mount("/review", create_review_app(settings))
    return app


def app_from_environment() -> FastAPI:
    """The app of one worker of ``kbops serve --workers N``: settings from the environment (``KBOPS_*``, ``KBOPS_CONFIG``)."""
    return create_app(Settings.load())
