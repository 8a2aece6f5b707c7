"""Concurrent publishes: each SQL-door decision is applied exactly once, and one publish builds at a time.

Real threads, each with its own sessions, against a real KB database (SQLite, and
PostgreSQL when KBOPS_TEST_DATABASE_URL is set): what three `kbops publish` runs or
three kb_publish workers started at the same moment do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select, text

from kbops.db import engine_for, session_scope
from kbops.errors import TransientError
from kbops.index import publish as publish_mod
from kbops.index import release as rel
from kbops.pipeline import apply_decisions, build_release, publish
from kbops.review import queue
from kbops.schema import AuditEvent, IndexRelease, KbEntry
from tests.conftest import MODELS_DIR, ROOT
from tests.helpers import list_items


def _sql_approve(settings, items, by: str = "zhao") -> None:
    """Decide through the SQL door: a plain UPDATE, applied by the next publish."""
    with engine_for(settings).begin() as conn:
        for item in items:
            conn.execute(text("UPDATE review_items SET decision = 'approve', decided_by = :by WHERE id = :i AND state = 'open'"), {"i": item.id, "by": by})


def _plain_items(settings, n: int):
    """Open items that an approval turns into a new entry of their own (no near-duplicate merge)."""
    items = [i for i in list_items(settings) if not i.proposed_merge_into][:n]
    assert len(items) == n
    return items


def _events_and_revisions(settings, items):
    with session_scope(settings) as db:
        events = {i.id: db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.review_item_id == i.id)) for i in items}
        revisions = {i.id: db.scalar(select(KbEntry.revision).where(KbEntry.entry_key == i.entry_key)) for i in items}
    return events, revisions


def _in_threads(n: int, target) -> tuple[list, list[str]]:
    """Run ``target`` in ``n`` threads released together; (results, errors)."""
    barrier, results, errors = threading.Barrier(n), [], []

    def run() -> None:
        barrier.wait()
        try:
            results.append(target())
        except Exception as exc:  # noqa: BLE001 - every failure is reported by the test
            errors.append(repr(exc))

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results, errors


def test_three_concurrent_publishes_apply_each_sql_decision_once_and_build_once(queued):
    s = queued
    items = _plain_items(s, 4)
    _sql_approve(s, items)
    results, errors = _in_threads(3, lambda: publish(s))
    assert errors == []
    events, revisions = _events_and_revisions(s, items)
    assert events == {i.id: 1 for i in items}, "one audit event per decision"
    assert revisions == {i.id: 1 for i in items}, "each entry approved once"
    assert sum(r["apply"]["applied"] for r in results) == len(items)
    assert [r["build"]["status"] for r in results].count("built") == 1, [r["build"] for r in results]
    with session_scope(s) as db:
        assert db.scalar(select(func.count()).select_from(IndexRelease)) == 1
    assert len(rel.list_release_ids(s.index_dir)) == 1


def test_three_kbops_publish_processes_at_once_apply_once_and_build_once(queued):
    """The report exactly: three `kbops publish` processes started together after SQL decisions."""
    s = queued
    items = _plain_items(s, 3)
    _sql_approve(s, items)
    env = {**os.environ, "KBOPS_HOME": str(s.home), "KBOPS_DATABASE_URL": s.database_url, "KBOPS_SOURCES": str(s.sources_file),
           "KBOPS_EMBED_CACHE": str(s.embed_cache), "KBOPS_MODELS_DIR": MODELS_DIR, "PYTHONPATH": str(ROOT)}
    env.pop("KBOPS_CONFIG", None)
    procs = [subprocess.Popen([sys.executable, "-m", "kbops.cli", "publish", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(3)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]
    events, revisions = _events_and_revisions(s, items)
    assert events == {i.id: 1 for i in items} and revisions == {i.id: 1 for i in items}
    assert sum(r["apply"]["applied"] for r in results) == len(items)
    assert [r["build"]["status"] for r in results].count("built") == 1
    assert len(rel.list_release_ids(s.index_dir)) == 1


def test_concurrent_apply_runs_claim_each_decision_once(queued):
    """Without the publish lock (the review page applies right away too), the row claim alone keeps it exactly once."""
    s = queued
    items = _plain_items(s, 6)
    _sql_approve(s, items)
    results, errors = _in_threads(3, lambda: apply_decisions(s))
    assert errors == []
    assert sum(r.applied for r in results) == len(items) and not any(r.errors for r in results)
    events, revisions = _events_and_revisions(s, items)
    assert events == {i.id: 1 for i in items} and revisions == {i.id: 1 for i in items}


def test_a_run_that_listed_a_decision_before_another_applied_it_leaves_it_alone(queued):
    """The interleaving behind the duplicates, made deterministic: run B lists the decided item,
    run A applies it, then B reaches it. B's claim finds the row no longer open."""
    s = queued
    [item] = _plain_items(s, 1)
    _sql_approve(s, [item])
    with session_scope(s) as db:
        assert item.id in queue.decided_items(db)  # run B's list
    assert apply_decisions(s).approved == 1  # run A
    with session_scope(s) as db:
        assert queue.apply_decision(db, s, item.id) == (None, None)  # run B, late
    events, revisions = _events_and_revisions(s, [item])
    assert events == {item.id: 1} and revisions == {item.id: 1}


def test_a_second_publish_waits_for_the_running_one_then_builds_nothing_new(queued, embedder):
    s = queued
    _sql_approve(s, _plain_items(s, 2))
    done: list = []
    with publish_mod.publish_lock(s):  # a publish is running (another thread, another session)
        second = threading.Thread(target=lambda: done.append(publish(s)))
        second.start()
        second.join(2.0)
        assert second.is_alive() and not done, "the second publish must wait for the lock"
        with session_scope(s) as db:
            assert db.scalar(select(func.count()).select_from(IndexRelease)) == 0
    second.join(300)
    assert done and done[0]["build"]["status"] == "built"
    assert build_release(s, embedder=embedder).status == "unchanged"


def test_a_publish_that_cannot_get_the_lock_in_time_says_another_is_running(queued, monkeypatch):
    s = queued
    monkeypatch.setattr(publish_mod, "PUBLISH_LOCK_WAIT", 0.5)
    outcome: list = []
    with publish_mod.publish_lock(s):
        t = threading.Thread(target=lambda: outcome.append(_raises(lambda: build_release(s))))
        started = time.monotonic()
        t.start()
        t.join(30)
    assert isinstance(outcome[0], TransientError) and "another publish is running" in str(outcome[0])
    assert time.monotonic() - started < 20


def test_the_publish_lock_lives_in_the_database_on_postgresql(queued, monkeypatch):
    """Workers on other hosts share only the database: a lock held by another database session blocks a build."""
    s = queued
    if not s.database_url.startswith("postgresql"):
        pytest.skip("a KB shared between hosts is a PostgreSQL KB (set KBOPS_TEST_DATABASE_URL)")
    monkeypatch.setattr(publish_mod, "PUBLISH_LOCK_WAIT", 0.5)
    with engine_for(s).connect() as other_host:
        other_host.execute(text("SELECT pg_advisory_lock(:k)"), {"k": publish_mod.PUBLISH_LOCK_KEY})
        with pytest.raises(TransientError, match="another publish is running"):
            build_release(s)
        other_host.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": publish_mod.PUBLISH_LOCK_KEY})
        other_host.commit()


def _raises(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001
        return exc
    return None
