"""The bot API's contract (issue 13): typed replies in OpenAPI, the bearer scheme, request ids and server
timing on every reply, the batch endpoint, the query log's latency and request id, and ``/metrics``.

One sample-store KB (approved and published) is built once for the module; ``kbops serve --workers 2``
runs on it as a real process for the multi-worker test.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from kbops.config import Settings
from kbops.db import init_db, session_scope
from kbops.index.search import Answer, Hit, Option
from kbops.pipeline import activate_release, build_release, decide, ingest
from kbops.review.queue import list_items
from kbops.schema import QueryLogEntry
from kbops.serve.api import MAX_BATCH, HitModel, OptionModel, SearchResponse, create_app
from kbops.serve.query_log import QueryLogWriter
from kbops.serve.retriever import Retriever
from tests.conftest import MODELS_DIR, SAMPLE

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PRICE_EN = "How much is the Lumi Smart Rice Cooker?"
#: Keys the API adds to ``Answer.as_dict()`` in every search reply.
API_KEYS = {"request_id", "took_ms"}


@pytest.fixture(scope="module")
def published(tmp_path_factory, embedder, embed_cache) -> Settings:
    """The sample store synced, every queued item approved, a release active; the read token set."""
    tmp = tmp_path_factory.mktemp("api-contract")
    shutil.copytree(SAMPLE, tmp / "store")
    settings = Settings.load(env={"KBOPS_HOME": str(tmp / "home"), "KBOPS_DATABASE_URL": f"sqlite:///{tmp / 'kb.sqlite'}",
                                  "KBOPS_SOURCES": str(tmp / "store" / "sources.toml"), "KBOPS_EMBED_CACHE": str(embed_cache),
                                  "KBOPS_MODELS_DIR": MODELS_DIR}, config_file=None)
    init_db(settings)
    ingest(settings)
    with session_scope(settings) as db:
        ids = [i.id for i in list_items(db)]
    decide(settings, ids, "approve", by="lin")
    activate_release(settings, build_release(settings, embedder=embedder).release_id, embedder=embedder)
    return dataclasses.replace(settings, api_token=TOKEN)


@pytest.fixture(scope="module")
def client(published, embedder) -> TestClient:
    return TestClient(create_app(published, Retriever(published, embedder=embedder, background_reload=True)))


def logged(settings: Settings, request_id: str) -> list[QueryLogEntry]:
    with session_scope(settings) as db:
        return list(db.scalars(select(QueryLogEntry).where(QueryLogEntry.request_id == request_id).order_by(QueryLogEntry.id)))


def metric(text: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with ``labels`` in a Prometheus exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


# --- the typed contract --------------------------------------------------------------------------------------


def test_the_response_models_and_answer_as_dict_name_the_same_fields():
    """If this fails, Answer.as_dict() (kbops/index/search.py) and SearchResponse / HitModel / OptionModel
    (kbops/serve/api.py) disagree: type the new field in the API's models, or drop the one nobody sends."""
    hit_values = {"entry_id": 1, "entry_key": "k", "question": "q", "answer": "a", "score": 0.9, "dense": 0.9, "lexical": 0.9, "lang": "en", "tags": ["price"]}
    hit = Hit(**{f.name: hit_values.get(f.name, f.default) for f in dataclasses.fields(Hit)})
    option = Option(**{f.name: {"entry_id": 1, "entry_key": "k", "label": "3L"}.get(f.name) for f in dataclasses.fields(Option)})
    answer = Answer(release_id="r1", query="q", handoff=True, reason="clarify", hits=[hit], options=[option])
    body = answer.as_dict()
    assert set(body) == set(SearchResponse.model_fields) - API_KEYS
    assert set(body["hits"][0]) == set(HitModel.model_fields)
    assert set(body["options"][0]) == set(OptionModel.model_fields)
    SearchResponse.model_validate(body)  # and the values fit the types


def test_openapi_types_every_reply_and_documents_the_errors_and_the_bearer_scheme(client):
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    search = spec["paths"]["/search"]["post"]
    assert search["security"] == [{"bearer": []}]
    assert search["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SearchResponse"}
    assert set(search["responses"]["200"]["headers"]) == {"X-Request-ID", "Server-Timing"}
    for code in ("400", "401", "413", "503"):
        assert search["responses"][code]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}, code
    assert search["responses"]["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ValidationErrorResponse"}
    fields = spec["components"]["schemas"]["SearchResponse"]["properties"]
    assert {"handoff", "reason", "confidence", "options", "release_id", "hits", "request_id", "took_ms", "lang"} <= set(fields)
    assert set(spec["components"]["schemas"]["HitModel"]["properties"]) >= {"entry_id", "entry_key", "question", "answer", "score", "dense", "lexical", "lang", "tags", "kind"}
    assert spec["components"]["schemas"]["ErrorResponse"]["required"] == ["error", "detail"]
    for path, ref in (("/healthz", "HealthResponse"), ("/release", "ReleaseResponse")):
        assert spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{ref}"}
    batch = spec["paths"]["/search/batch"]["post"]
    assert batch["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BatchResponse"}
    assert "security" not in spec["paths"]["/healthz"]["get"]  # load balancers probe it without the token


def test_replies_fit_their_models(client):
    r = client.post("/search", json={"query": PRICE_EN}, headers=AUTH)
    body = SearchResponse.model_validate(r.json())
    assert body.handoff is False and body.answer and "299.00" in body.answer
    assert body.hits[0].kind == "price"
    assert client.get("/healthz").json()["serving_release_id"] == body.release_id
    assert client.get("/release", headers=AUTH).json()["entry_count"] > 0


def test_a_401_says_bearer_in_www_authenticate(client):
    missing = client.post("/search", json={"query": PRICE_EN})
    wrong = client.post("/search", json={"query": PRICE_EN}, headers={"Authorization": "Bearer nope"})
    basic = client.post("/search", json={"query": PRICE_EN}, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    for r in (missing, wrong, basic):
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), (r.status_code, r.headers)
        assert set(r.json()) == {"error", "detail"}
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    assert client.get("/metrics").status_code == 401  # the metrics need the token too when the server has one


# --- request id and server time ------------------------------------------------------------------------------


def test_every_reply_carries_a_request_id_and_the_server_time(client):
    r = client.post("/search", json={"query": PRICE_EN}, headers={**AUTH, "X-Request-ID": "bot-42.turn:7"})
    assert r.headers["X-Request-ID"] == r.json()["request_id"] == "bot-42.turn:7"
    assert r.headers["Server-Timing"].startswith("app;dur=") and float(r.headers["Server-Timing"].split("=")[1]) >= r.json()["took_ms"] > 0
    generated = set()
    for bad in ("has spaces in it", "x" * 129, "", "ünïcode".encode()):
        r = client.post("/search", json={"query": PRICE_EN}, headers={**AUTH, "X-Request-ID": bad})
        assert r.headers["X-Request-ID"] != bad and len(r.headers["X-Request-ID"]) == 32, bad
        generated.add(r.headers["X-Request-ID"])
    assert len(generated) == 4
    # Errors too, even the ones answered before any route (401, 413, 422, 404).
    for r in (client.post("/search", json={"query": "hi"}), client.post("/search", json={"query": "x" * 200_000}, headers=AUTH),
              client.post("/search", json={"top_k": 3}, headers=AUTH), client.get("/nowhere", headers={"X-Request-ID": "mine"})):
        assert r.headers["X-Request-ID"] and r.headers["Server-Timing"].startswith("app;dur="), r.status_code
    assert r.headers["X-Request-ID"] == "mine"


# --- batch ---------------------------------------------------------------------------------------------------


def test_a_batch_answers_each_query_in_order_and_a_bad_one_in_place(client, published):
    queries = [{"query": PRICE_EN}, {"query": "   "}, {"query": "退款多久能到账", "lang": "zh", "top_k": 2}, {"query": "ok", "category": ["spaceships"]}]
    r = client.post("/search/batch", json={"queries": queries}, headers={**AUTH, "X-Request-ID": "batch-1"})
    assert r.status_code == 200
    body = r.json()
    assert body["request_id"] == "batch-1" and body["took_ms"] > 0 and len(body["results"]) == 4
    first, empty, zh, unknown = body["results"]
    assert "299.00" in first["answer"] and first["request_id"] == "batch-1"
    assert empty == {"error": "QueryError", "detail": empty["detail"], "status": 400} and "empty" in empty["detail"]
    assert len(zh["hits"]) <= 2 and all(h["lang"] == "zh" for h in zh["hits"])
    assert unknown["status"] == 400 and "spaceships" in unknown["detail"]
    assert [row.question for row in logged(published, "batch-1")] == [PRICE_EN, "退款多久能到账"]  # the answered ones, in order


def test_a_batch_is_bounded_and_strict(client):
    too_many = client.post("/search/batch", json={"queries": [{"query": "hi"}] * (MAX_BATCH + 1)}, headers=AUTH)
    assert too_many.status_code == 422 and "queries" in too_many.json()["detail"]
    for body in ({"queries": []}, {"queries": [{"query": "hi", "top_k": True}]}, {"queries": [{"query": "hi"}], "extra": 1}, {"query": "hi"}):
        r = client.post("/search/batch", json=body, headers=AUTH)
        assert r.status_code == 422 and set(r.json()) == {"error", "detail", "errors"}, body
    assert client.post("/search/batch", json={"queries": [{"query": "hi"}]}).status_code == 401


def test_a_batch_fails_whole_when_no_release_can_answer(settings, embedder):
    r = TestClient(create_app(settings, Retriever(settings, embedder=embedder))).post("/search/batch", json={"queries": [{"query": "hi"}]})
    assert r.status_code == 503 and r.json()["error"] == "ReleaseError"


# --- the query log -------------------------------------------------------------------------------------------


def test_the_query_log_keeps_latency_and_request_id_and_scrubs_the_query(client, published):
    r = client.post("/search", json={"query": "我的手机13812345678，退款多久到账？"}, headers={**AUTH, "X-Request-ID": "log-1"})
    [row] = logged(published, "log-1")
    assert row.latency_ms == pytest.approx(r.json()["took_ms"], abs=0.01) and row.latency_ms > 0
    assert "13812345678" not in row.question and row.release_id == r.json()["release_id"]


def test_the_query_log_keeps_the_bots_confidence(client, published):
    """What the bot answers by (its calibrated confidence) is logged beside the raw score: low-confidence gaps read it."""
    r = client.post("/search", json={"query": "How much is the Lumi Smart Rice Cooker?"}, headers={**AUTH, "X-Request-ID": "log-conf"})
    [row] = logged(published, "log-conf")
    assert r.json()["confidence"] is not None and row.confidence == pytest.approx(r.json()["confidence"], abs=1e-4)
    r = client.post("/search", json={"query": "Can I pay with seashells on Mars?"}, headers={**AUTH, "X-Request-ID": "log-handoff"})
    [row] = logged(published, "log-handoff")
    assert r.json()["handoff"] and row.handoff and row.confidence == pytest.approx(r.json()["confidence"], abs=1e-4)


def test_a_running_server_writes_the_query_log_off_the_request_path_and_loses_nothing_on_shutdown(published, embedder):
    app = create_app(published, Retriever(published, embedder=embedder, background_reload=True))
    with TestClient(app) as running:  # the lifespan runs: the writer's thread is started
        for i in range(30):
            assert running.post("/search", json={"query": PRICE_EN}, headers={**AUTH, "X-Request-ID": f"bg-{i}"}).status_code == 200
    # Shut down: every queued row is written.
    with session_scope(published) as db:
        ids = set(db.scalars(select(QueryLogEntry.request_id).where(QueryLogEntry.request_id.like("bg-%"))))
    assert ids == {f"bg-{i}" for i in range(30)}


def test_the_writer_drops_and_counts_rows_when_its_queue_is_full(published, embedder):
    dropped: list[int] = []
    writer = QueryLogWriter(published, max_pending=1, on_drop=dropped.append)
    answer = Retriever(published, embedder=embedder).search(PRICE_EN)
    writer.start()
    with writer._done:  # hold the thread's bookkeeping: it cannot finish a batch, so the queue stays full
        accepted = [writer.submit(answer, request_id=f"full-{i}") for i in range(5)]
    writer.close()
    assert accepted.count(True) == 5 - len(dropped) and dropped and 1 <= accepted.count(True) <= 2
    assert len(logged(published, "full-0")) == 1  # the first one queued was written at close


# --- metrics -------------------------------------------------------------------------------------------------


def test_metrics_count_requests_handoffs_and_report_the_serving_release(client):
    before = client.get("/metrics", headers=AUTH).text
    client.post("/search", json={"query": PRICE_EN}, headers=AUTH)
    client.post("/search", json={"query": "Can I pay with seashells on Mars?"}, headers=AUTH)
    client.post("/search", json={"query": ""}, headers=AUTH)
    r = client.get("/metrics", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after, release = r.text, client.get("/release", headers=AUTH).json()["release_id"]

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("kbops_api_requests_total", endpoint="/search", status="200") == 2
    assert delta("kbops_api_requests_total", endpoint="/search", status="400") == 1
    assert delta("kbops_api_request_duration_seconds_count", endpoint="/search") == 3
    assert delta("kbops_search_queries_total", lang="en") == 2
    assert sum(delta("kbops_search_handoffs_total", reason=r, lang="en") for r in ("no_match", "wrong_kind", "ambiguous", "clarify")) == 1
    assert delta("kbops_search_top_score_count", lang="en") == 2 and delta("kbops_search_confidence_count", lang="en") >= 1
    assert metric(after, "kbops_serving_release", release_id=release) == 1
    assert metric(after, "kbops_active_release", release_id=release) == 1
    assert metric(after, "kbops_release_lag_seconds") == 0
    assert metric(after, "kbops_serving_release_age_seconds") > 0


def test_metrics_count_query_vectors_remembered_and_computed(published):
    """A question asked twice runs the model once: one miss, then one hit (KBOPS_QUERY_CACHE).

    The app makes its own retriever here, as ``kbops serve`` does."""
    client = TestClient(create_app(published))
    before = client.get("/metrics", headers=AUTH).text
    question = "How long does a refund take for an opened Lumi Aroma Diffuser?"
    for _ in range(2):
        assert client.post("/search", json={"query": question}, headers=AUTH).status_code == 200
    after = client.get("/metrics", headers=AUTH).text
    assert metric(after, "kbops_query_vectors_total", result="miss") - metric(before, "kbops_query_vectors_total", result="miss") == 1
    assert metric(after, "kbops_query_vectors_total", result="hit") - metric(before, "kbops_query_vectors_total", result="hit") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_two_workers_sums_metrics_over_them_and_flushes_the_query_log_on_shutdown(published, embedder, tmp_path):
    """A real ``kbops serve --workers 2``: each scrape (whichever worker answers) counts every worker's requests,
    every worker's watcher loads a newly activated release, and SIGTERM writes every queued query-log row."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "KBOPS_HOME": str(published.home), "KBOPS_DATABASE_URL": published.database_url,
           "KBOPS_EMBED_CACHE": str(published.embed_cache), "KBOPS_MODELS_DIR": MODELS_DIR, "KBOPS_API_TOKEN": TOKEN,
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_999999.db").write_bytes(b"stale run")  # emptied at start
    kbops = Path(sys.executable).parent / "kbops"
    proc = subprocess.Popen([str(kbops), "serve", "--workers", "2", "--port", str(port), "--no-access-log"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=30) as http:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.3)
            for i in range(24):  # new connections: the kernel spreads them over both workers
                with httpx.Client(base_url=http.base_url, headers=AUTH, timeout=30) as one:
                    assert one.post("/search", json={"query": PRICE_EN}, headers={"X-Request-ID": f"w2-{i}"}).status_code == 200
            for _ in range(4):
                with httpx.Client(base_url=http.base_url, headers=AUTH, timeout=30) as one:
                    text = one.get("/metrics").text
                assert metric(text, "kbops_api_requests_total", endpoint="/search", status="200") == 24
                assert metric(text, "kbops_search_queries_total", lang="en") == 24
            release = http.get("/release").json()["release_id"]
            assert metric(text, "kbops_serving_release", release_id=release) == 1
            # Every worker's own watcher picks up a new release: the old one's gauge (max over live workers) drops to 0.
            newer = build_release(published, full=True, embedder=embedder).release_id
            activate_release(published, newer, embedder=embedder)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                text = http.get("/metrics").text
                if metric(text, "kbops_serving_release", release_id=release) == 0 and metric(text, "kbops_serving_release", release_id=newer) == 1:
                    break
                time.sleep(0.5)
            assert metric(text, "kbops_serving_release", release_id=release) == 0, "a worker still serves the old release"
            assert metric(text, "kbops_serving_release", release_id=newer) == 1 and metric(text, "kbops_release_lag_seconds") == 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    with session_scope(published) as db:
        rows = db.scalars(select(QueryLogEntry).where(QueryLogEntry.request_id.like("w2-%"))).all()
    assert len(rows) == 24 and all(r.latency_ms and r.latency_ms > 0 for r in rows)
    assert not (tmp_path / "metrics" / "counter_999999.db").exists()
