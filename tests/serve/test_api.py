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
    r = client.post("/search", json={"query": "Is the Lumi Smart Rice Cooker in stock?", "category": ["stock"], "top_k": 5}, headers=AUTH)
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


# --- never a 500, never a traceback (issue 12) ------------------------------------------------------


def _raw(client: TestClient, body: bytes, headers: dict[str, str] | None = None):
    return client.post("/search", content=body, headers={**(headers or {}), "Content-Type": "application/json"})


@pytest.fixture
def server_errors_as_responses(settings, embedder):
    """The API over an empty KB, with a server error answered as a response (a 500) instead of raised into the test."""
    return TestClient(create_app(settings, Retriever(settings, embedder=embedder)), raise_server_exceptions=False)


def test_a_lone_surrogate_in_the_query_is_a_4xx_json_answer_not_a_500(server_errors_as_responses):
    """Issue 12: ``{"query": "\\ud800退货"}`` (a JSON escape for half a UTF-16 pair) answered 500."""
    client = server_errors_as_responses
    for body in ('{"query": "\\ud800退货"}', '{"query": "退货\\udfff"}', '{"query": "ok", "tags": ["\\ud800"]}', '{"query": "ok", "\\ud800": 1}'):
        r = _raw(client, body.encode("utf-8"))
        assert r.status_code == 422, (body, r.status_code, r.text[:300])
        assert r.json()["error"] == "RequestValidationError" and isinstance(r.json()["detail"], str), body


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_top_k_that_is_not_a_finite_number_is_a_422_not_a_500(server_errors_as_responses, value):
    """Issue 12: ``"top_k": NaN`` answered 500 (the 422 body echoed NaN, which JSON cannot carry)."""
    r = _raw(server_errors_as_responses, f'{{"query": "ok", "top_k": {value}}}'.encode())
    assert r.status_code == 422, r.text[:300]
    assert r.json()["error"] == "RequestValidationError" and "top_k" in r.json()["detail"]


@pytest.mark.parametrize("value", [True, False, 3.0, "3", [3], None])
def test_top_k_is_a_strict_whole_number(server_errors_as_responses, value):
    """Issue 12: ``"top_k": true`` was accepted as 1."""
    r = server_errors_as_responses.post("/search", json={"query": "ok", "top_k": value})
    assert r.status_code == 422, (value, r.status_code, r.text[:300])
    assert "top_k" in r.json()["detail"]


def test_the_retriever_refuses_a_boolean_top_k_and_a_query_that_is_not_text(settings, embedder):
    """The shared check (the CLI's `kbops ask` and the API both go through it), not only the API's schema."""
    retriever = Retriever(settings, embedder=embedder)
    for kwargs, says in [({"top_k": True}, "top_k"), ({"top_k": 2.0}, "top_k")]:
        with pytest.raises(QueryError, match=says):
            retriever.search("ok", **kwargs)
    with pytest.raises(QueryError, match="UTF-8"):
        retriever.search("\udcff退货")  # what a non-UTF-8 byte in argv becomes (surrogateescape)
    with pytest.raises(QueryError, match="text"):
        retriever.search(b"bytes")  # type: ignore[arg-type]


def test_a_huge_query_is_refused_without_echoing_it_back(server_errors_as_responses):
    """Issue 12: a 1 MB query's 422 echoed the whole input. The body limit answers 413 first, and no error echoes input."""
    client = server_errors_as_responses
    r = client.post("/search", json={"query": "退" * 1_000_000})
    assert r.status_code == 413 and len(r.content) < 1_000, (r.status_code, len(r.content))
    assert r.json()["error"] == "PayloadTooLarge" and "limit" in r.json()["detail"]
    # The same without a Content-Length (a chunked upload) is counted as it arrives.
    r = client.post("/search", content=iter([b'{"query": "', b"x" * 300_000, b'"}']), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and len(r.content) < 1_000
    # Under the body limit, a validation error names the field but does not echo the value.
    secret = "13812345678 " * 2_000  # 24 KB: two of them stay under the 64 KiB body limit
    for payload in ({"query": secret, "colour": secret}, {"query": ["not", secret]}, {"query": "ok", secret[:50]: 1}):
        r = client.post("/search", json=payload)
        assert r.status_code == 422 and "13812345678" not in r.text and len(r.content) < 2_000, (r.status_code, r.text[:300])


def test_every_error_path_answers_json_with_error_and_detail(api):
    client, _ = api
    cases = [
        (client.post("/search", json={"query": "hi"}), 401),
        (client.get("/nowhere", headers=AUTH), 404),
        (client.get("/search", headers=AUTH), 405),
        (client.post("/search", json={"query": ""}, headers=AUTH), 400),
        (client.post("/search", json={"top_k": 3}, headers=AUTH), 422),
        (client.post("/search", content=b"\xff\xfe\x00garbage", headers={**AUTH, "Content-Type": "application/json"}), 422),
        (client.post("/search", content=b"[1, 2]", headers={**AUTH, "Content-Type": "application/json"}), 422),
        (client.post("/search", json={"query": "x" * 200_000}, headers=AUTH), 413),
    ]
    for r, status in cases:
        assert r.status_code == status and r.headers["content-type"].startswith("application/json"), (status, r.status_code, r.text[:200])
        body = r.json()
        assert set(body) >= {"error", "detail"} and isinstance(body["error"], str) and isinstance(body["detail"], str), (status, body)
