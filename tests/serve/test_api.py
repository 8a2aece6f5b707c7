"""The bot HTTP API: search, health, release, auth, release swap without restart."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from fastapi.testclient import TestClient

from kbops.errors import (
    AccountError,
    AlreadyDecided,
    CandidateNotFound,
    ConfigError,
    InvalidDecision,
    NotFound,
    QueryError,
    ReleaseError,
    ReviewItemNotFound,
    TerminalError,
    TransientError,
)
from kbops.index import release as rel
from kbops.pipeline import activate_release, build_release, decide, ingest
from kbops.serve.api import create_app
from kbops.serve.retriever import Retriever
from tests.helpers import list_items


@pytest.fixture
def api(settings, embedder):
    ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    activate_release(settings, build_release(settings, embedder=embedder).release_id)
    s = dataclasses.replace(settings, api_token="s3cret")
    return TestClient(create_app(s, Retriever(s, embedder=embedder, background_reload=True))), s


AUTH = {"Authorization": "Bearer s3cret"}


def test_search_health_and_release(api):
    client, _ = api
    r = client.post("/search", json={"query": "How much is the Lumi Smart Rice Cooker?"}, headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert body["handoff"] is False and "299.00" in body["answer"] and body["release_id"]
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/release", headers=AUTH).json()["release_id"] == body["release_id"]
    assert client.get("/openapi.json").status_code == 200


def test_read_token_is_required(api):
    client, _ = api
    assert client.post("/search", json={"query": "hi"}).status_code == 401
    assert client.post("/search", json={"query": "hi"}, headers={"Authorization": "Bearer nope"}).status_code == 401


@pytest.mark.parametrize(
    "payload, says",
    [
        ({"query": ""}, "empty"),
        ({"query": "   "}, "empty"),
        ({"query": "x" * 100_000}, "limit"),
        ({"query": "ok", "top_k": 0}, "top_k"),
        ({"query": "ok", "top_k": -1}, "top_k"),
        ({"query": "ok", "top_k": 10**9}, "top_k"),
        ({"query": "ok", "lang": "fr"}, "lang"),
        ({"query": "ok", "category": ["spaceships"]}, "category 'spaceships' is not in this release"),
        ({"query": "ok", "colour": "red"}, "colour"),
        ({"top_k": 3}, "query"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(api, payload, says):
    client, _ = api
    r = client.post("/search", json=payload, headers=AUTH)
    assert 400 <= r.status_code < 500
    assert says in json.dumps(r.json()["detail"], ensure_ascii=False)


def test_binary_and_mixed_script_input_is_handled(api):
    client, _ = api
    r = client.post("/search", content=b"\xff\xfe\x00garbage", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422
    mixed = client.post("/search", json={"query": "Lumi 电饭煲 how much 多少钱 \u0000\U0001F600 ٣"}, headers=AUTH)
    assert mixed.status_code == 200 and "handoff" in mixed.json()


def test_category_and_tag_filters(api):
    client, _ = api
    r = client.post("/search", json={"query": "How much is the Lumi Smart Rice Cooker?", "category": ["stock"], "top_k": 5}, headers=AUTH)
    assert r.status_code == 200 and r.json()["hits"] and all("stock" in h["tags"] for h in r.json()["hits"])
    r = client.post("/search", json={"query": "退款多久能到账", "category": ["policy"], "lang": "zh"}, headers=AUTH)
    assert r.status_code == 200 and all(h["lang"] == "zh" and "policy" in h["tags"] for h in r.json()["hits"])


def test_new_release_is_picked_up_without_restart_or_a_failed_request(api, embedder):
    client, s = api
    first = client.get("/release", headers=AUTH).json()["release_id"]
    second = build_release(s, full=True, embedder=embedder).release_id
    activate_release(s, second)
    seen = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = client.post("/search", json={"query": "How much is the Lumi Smart Rice Cooker?"}, headers=AUTH)
        assert r.status_code == 200 and "299.00" in r.json()["answer"]
        seen.add(r.json()["release_id"])
        if r.json()["release_id"] == second:
            break
    assert seen <= {first, second} and second in seen


def test_a_corrupt_new_release_is_refused_and_the_old_one_keeps_serving(api, embedder):
    client, s = api
    first = client.get("/release", headers=AUTH).json()["release_id"]
    bad = build_release(s, full=True, embedder=embedder).release_id
    (rel.releases_dir(s.index_dir) / bad / "index.faiss").write_bytes(b"truncated")
    rel.pointer_path(s.index_dir).write_text(bad + "\n", encoding="utf-8")  # as if activated by hand
    for _ in range(20):
        r = client.post("/search", json={"query": "退款多久能到账"}, headers=AUTH)
        assert r.status_code == 200 and r.json()["release_id"] == first
        time.sleep(0.05)


class RefusingRetriever:
    """Stands in for the search engine behind the API's retriever seam: every call raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def search(self, *args, **kwargs):
        raise self.error

    def release(self):
        raise self.error


@pytest.mark.parametrize(
    "error, status",
    [
        (QueryError("the query is empty; send the customer's question"), 400),
        (TerminalError("the filter names no known tag", tag="x"), 400),
        (NotFound("no entry 'faq:zh:x'", entry_key="faq:zh:x"), 404),
        (ReleaseError("no active release; run `kbops publish` first"), 503),
        (TransientError("database error: locked; retry"), 503),
        (ConfigError("index_dir /nowhere does not exist"), 500),
    ],
)
def test_errors_answer_their_class_status_with_the_same_json_shape(settings, error, status):
    client = TestClient(create_app(settings, RefusingRetriever(error)))
    r = client.post("/search", json={"query": "hi"})
    assert r.status_code == status == type(error).http_status
    assert r.json() == {"error": type(error).__name__, "detail": str(error)}
    assert client.get("/release").status_code == status


def test_a_user_error_is_a_4xx_never_a_500(settings):
    """Every error a caller can fix (a TerminalError that is not about server configuration) answers 4xx."""
    user_errors = [QueryError, TerminalError, NotFound, AccountError, InvalidDecision, AlreadyDecided, ReviewItemNotFound, CandidateNotFound]
    for cls in user_errors:
        client = TestClient(create_app(settings, RefusingRetriever(cls(f"{cls.__name__} for the caller"))))
        r = client.post("/search", json={"query": "hi"})
        assert 400 <= r.status_code < 500 and r.json()["error"] == cls.__name__, cls


def test_no_release_yet_is_a_503_with_the_fix(settings, embedder):
    client = TestClient(create_app(settings, Retriever(settings, embedder=embedder)))
    r = client.post("/search", json={"query": "How much is the Lumi Smart Rice Cooker?"})
    assert r.status_code == 503 and r.json()["error"] == "ReleaseError" and "kbops publish" in r.json()["detail"]
    assert client.get("/healthz").status_code == 503
