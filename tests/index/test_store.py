"""The shared release store (kbops/index/store.py) against a real S3-compatible server.

moto's server mode (``ThreadedMotoServer``) is a real HTTP S3 endpoint on
127.0.0.1: s3fs talks to it over the network exactly as it would to MinIO or
AWS. One "host" publishes into ``s3://…``; two Retriever replicas, each with its
own cache directory and no access to the publisher's index directory, serve from it.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import pytest

from kbops import pipeline
from kbops.errors import ReleaseError
from kbops.index import release as rel
from kbops.index.publish import list_releases
from kbops.index.store import FsspecStore, LocalStore, store_for, sync_from_store
from kbops.pipeline import activate_release, build_release
from kbops.serve.retriever import Retriever
from tests.serve.live import approve_all, set_price

moto_server = pytest.importorskip("moto.server", reason="moto[server] (the dev extra) is not installed")

PRICE_Q = "How much is the Lumi Smart Rice Cooker 3L?"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """A moto S3 server on a free local port, with one bucket; yields its endpoint URL."""
    import boto3

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test").create_bucket(Bucket="kb-releases")
    yield endpoint
    server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)


def _on_s3(settings, endpoint, prefix):
    """Settings publishing to the module's S3 server, under a prefix of this test run's own
    (the server is shared by the SQLite and PostgreSQL runs of each test)."""
    return dataclasses.replace(settings, release_store=f"s3://kb-releases/{prefix}-{uuid.uuid4().hex[:8]}", release_store_endpoint=endpoint)


def _replica(settings, embedder, tmp_path, name):
    """A bot replica on another "host": its own home and cache, no access to the publisher's index dir."""
    s = dataclasses.replace(settings, index_dir=tmp_path / name / "no-index", release_cache=tmp_path / name / "cache")
    return Retriever(s, embedder=embedder, background_reload=True, watch_interval=0.2)


def _answer(retriever, question=PRICE_Q) -> str:
    """The answers of the top hits (the bot may hand off on a calibrated threshold; the facts served are what matter)."""
    return " | ".join(h.answer for h in retriever.search(question, top_k=3).hits)


def test_default_store_is_the_index_directory(settings):
    store = store_for(settings)
    assert isinstance(store, LocalStore) and store.is_dir(settings.index_dir)
    shared = store_for(dataclasses.replace(settings, release_store=str(settings.home / "shared")))
    assert isinstance(shared, LocalStore) and not shared.is_dir(settings.index_dir)


@pytest.mark.slow
def test_publish_to_s3_and_serve_two_replicas_through_a_price_change(settings, embedder, store, tmp_path, s3_endpoint, aws_env):
    """Publish on one host into S3; two replicas with separate caches serve it; a price change republished reaches both."""
    s = _on_s3(settings, s3_endpoint, "two-replicas")
    approve_all(s)
    first = build_release(s, embedder=embedder).release_id
    activate_release(s, first, embedder=embedder)
    bucket = store_for(s)
    assert isinstance(bucket, FsspecStore)
    assert bucket.active_release_id() == first
    assert json.loads(bucket.read("REVOKED.json"))["release_id"] == first
    replicas = [_replica(s, embedder, tmp_path, f"replica{i}") for i in (1, 2)]
    try:
        for r in replicas:
            assert r.release().release_id == first
            assert "299.00" in _answer(r)
            assert (r._dir / "releases" / first / "manifest.json").is_file()  # pulled into its own cache
        set_price(store, "LM-1001", "259.00")
        approve_all(s)
        second = build_release(s, embedder=embedder).release_id
        activate_release(s, second, embedder=embedder)
        assert bucket.active_release_id() == second
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(r.status()["serving_release_id"] == second for r in replicas):
            time.sleep(0.1)
        for r in replicas:
            assert r.status()["serving_release_id"] == second
            assert "259.00" in _answer(r) and "299.00" not in _answer(r)
    finally:
        for r in replicas:
            r.close()


def test_store_writes_manifest_after_files_and_pointer_last(tmp_path, s3_endpoint, aws_env):
    """The order a reader can observe: a release is listed only with its manifest; ACTIVE moves last."""
    store = FsspecStore("s3://kb-releases/order", client_kwargs={"endpoint_url": s3_endpoint}, use_listings_cache=False)
    seen: list[str] = []
    write = store.write
    store.write = lambda name, data: (seen.append(name), write(name, data))[1]  # type: ignore[method-assign]
    index_dir = tmp_path / "index"
    rid = "r20261201T000000000000-abcdef12"
    release_dir = rel.releases_dir(index_dir) / rid
    release_dir.mkdir(parents=True)
    for name in rel.FILES:
        (release_dir / name).write_bytes(name.encode())
    (release_dir / "manifest.json").write_text(json.dumps({"format": rel.FORMAT, "checksums": {}}))
    (index_dir / "ACTIVE").write_text(rid + "\n")
    (index_dir / "REVOKED.json").write_text("{}")
    store.upload_release(index_dir, rid)
    store.upload_overlay(index_dir)
    store.upload_pointer(index_dir)
    assert seen == [*(f"releases/{rid}/{n}" for n in rel.FILES), f"releases/{rid}/manifest.json", "REVOKED.json", "ACTIVE"]
    assert store.release_ids() == [rid] and store.active_release_id() == rid
    # The manifest's checksums do not match the files: a replica refuses to cache it.
    with pytest.raises(ReleaseError, match="does not match its checksum"):
        store.pull_release(rid, tmp_path / "cache")
    assert not (rel.releases_dir(tmp_path / "cache") / rid).exists()
    store.delete_release(rid)
    assert store.release_ids() == []


@pytest.mark.slow
def test_a_release_built_on_one_worker_is_activated_on_another(settings, embedder, store, tmp_path, s3_endpoint, aws_env):
    """Celery runs build_release and activate_release on whichever worker is free: worker B, whose index
    directory never saw the release, pulls it (verified) from the store, activates it, and the store's
    ACTIVE moves; the next build on worker A starts from what the store serves."""
    worker_a = _on_s3(settings, s3_endpoint, "two-workers")
    worker_b = dataclasses.replace(worker_a, index_dir=tmp_path / "worker-b" / "index")
    approve_all(worker_a)
    built = build_release(worker_a, embedder=embedder).release_id
    assert store_for(worker_a).release_ids() == [built]  # uploaded at build time: files, then manifest
    assert store_for(worker_a).active_release_id() is None
    activate_release(worker_b, built, embedder=embedder)
    assert store_for(worker_a).active_release_id() == built
    assert rel.active_release_id(worker_b.index_dir) == built
    # kb_publish's tasks (kbops.airflow_adapter.publish_step) first bring the worker's index dir up to the store.
    assert sync_from_store(worker_a) == built and rel.active_release_id(worker_a.index_dir) == built
    assert build_release(worker_a, embedder=embedder).status == "unchanged"


def test_releases_and_rollback_on_any_host_follow_the_store(settings, embedder, store, tmp_path, s3_endpoint, aws_env):
    """`kbops releases` and `kbops rollback` on a host that did not publish the latest release: the list and the
    active flag are the store's (what every replica serves), and a rollback pulls the release it needs and moves
    the store's ACTIVE — not only this host's index directory."""
    host_a = _on_s3(settings, s3_endpoint, "rollback")
    host_b = dataclasses.replace(host_a, index_dir=tmp_path / "host-b" / "index")
    approve_all(host_a)
    first = build_release(host_a, embedder=embedder).release_id
    activate_release(host_a, first, embedder=embedder)
    set_price(store, "LM-1001", "259.00")
    approve_all(host_b)
    second = build_release(host_b, embedder=embedder).release_id
    activate_release(host_b, second, embedder=embedder)
    assert rel.active_release_id(host_a.index_dir) == first  # host A's own directory is behind the cluster

    listed = list_releases(host_a)
    assert [r["release_id"] for r in listed] == [second, first]
    assert [r["active"] for r in listed] == [True, False]
    assert all("error" not in r for r in listed)

    out = pipeline.rollback(host_a)
    assert out["release_id"] == first and out["previous"] == second
    assert store_for(host_a).active_release_id() == first
    assert [r["active"] for r in list_releases(host_b)] == [False, True]
    with pytest.raises(ReleaseError, match="not in the release store"):
        pipeline.rollback(host_b, "20990101T000000Z-nope")
