"""The bot HTTP API: ``POST /search``, ``GET /healthz``, ``GET /release``.

Reads only the active index release (plus the query log write). When the
``ACTIVE`` pointer moves, the new release is verified and loaded in a
background thread while requests keep being answered from the old one; it
takes over once ready: no restart, no failed or stalled request.
With ``KBOPS_API_TOKEN`` set, every request needs ``Authorization: Bearer <token>``.
The review page (kbops/serve/review_web/) is mounted at ``/review`` with its
own reviewer sign-in; the read token neither opens it nor is needed for it.

Errors answer JSON ``{"error": <class name>, "detail": <message>}``: a
:class:`~kbops.errors.KbopsError` with its class's ``http_status`` (a bad
query → 400, no usable release → 503), a missing or wrong token → 401, a body
that does not fit the schema → FastAPI's 422.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from kbops.config import Settings
from kbops.errors import KbopsError
from kbops.index.search import MAX_TOP_K
from kbops.serve.retriever import Retriever, log_answer
from kbops.serve.review_web import create_review_app


class SearchRequest(BaseModel):
    """A bot query; unknown fields (a misspelt filter) are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., description="the customer's question", max_length=100_000)
    top_k: int = Field(3, description=f"entries to return, 1–{MAX_TOP_K}")
    lang: str | None = Field(None, description="only entries in this language: zh or en")
    tags: list[str] | None = Field(None, description="only entries with one of these tags")
    category: list[str] | None = Field(None, description="only entries of these kinds (price, stock, shipping, warranty, policy, faq…)")


def create_app(settings: Settings, retriever: Retriever | None = None) -> FastAPI:
    app = FastAPI(title="kbops bot API", version="1", description="Answers from the active knowledge-base release, with a handoff flag when unsure.")
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
        return JSONResponse(status_code=exc.http_status, content={"error": type(exc).__name__, "detail": str(exc)})

    @app.post("/search", dependencies=[Depends(auth)])
    def search(req: SearchRequest) -> dict[str, Any]:
        answer = get_retriever().search(req.query, top_k=req.top_k, lang=req.lang, tags=req.tags, categories=req.category)
        log_answer(settings, answer)
        return answer.as_dict()

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        try:
            loaded = get_retriever().release()
        except KbopsError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
        return {"status": "ok", "release_id": loaded.release_id}

    @app.get("/release", dependencies=[Depends(auth)])
    def release() -> dict[str, Any]:
        loaded = get_retriever().release()
        m = loaded.manifest
        return {k: m[k] for k in ("release_id", "created_at", "model", "dim", "entry_count", "vector_count", "index_type", "kb_digest")}

    # The review page: its own sub-application with reviewer sessions, separate from the read token.
    app.mount("/review", create_review_app(settings))
    return app
