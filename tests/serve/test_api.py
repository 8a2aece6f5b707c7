"""The bot HTTP API: search, health, release, auth, release swap without restart."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient

from kbops.index.publish import activate_release, build_release
from kbops.pipeline import ingest
from kbops.review.queue import decide, list_items
from kbops.serve.api import create_app
from kbops.serve.retriever import Retriever


@pytest.fixture
def api(settings, embedder):
    ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    activate_release(settings, build_release(settings, embedder=embedder).release_id)
    s = dataclasses.replace(settings, api_token="s3cret")
    return TestClient(create_app(s, Retriever(s, embedder=embedder))), s


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


@pytest.mark.parametrize("payload", [{"query": ""}, {"query": "ok", "top_k": 0}, {"query": "ok", "top_k": 10**9}, {"query": "ok", "lang": "fr"}])
def test_bad_requests_get_4xx_with_a_message(api, payload):
    client, _ = api
    r = client.post("/search", json=payload, headers=AUTH)
    assert 400 <= r.status_code < 500 and r.json()["detail"]


def test_new_release_is_picked_up_without_restart(api, embedder):
    client, s = api
    first = client.get("/release", headers=AUTH).json()["release_id"]
    activate_release(s, build_release(s, full=True, embedder=embedder).release_id)
    second = client.get("/release", headers=AUTH).json()["release_id"]
    assert second != first
