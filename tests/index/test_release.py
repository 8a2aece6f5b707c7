"""Index releases: complete before activation, verified on load, rollback, no-op publish."""

from __future__ import annotations

import json
from datetime import UTC

import pytest

from kbops.errors import ReleaseError
from kbops.index import release as rel
from kbops.index.publish import list_releases
from kbops.pipeline import activate_release, build_release, decide, ingest, rollback
from tests.helpers import list_items


@pytest.fixture
def published(settings, embedder):
    ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    built = build_release(settings, embedder=embedder)
    activate_release(settings, built.release_id)
    return settings, built


def test_publish_builds_a_verified_release_and_activates_it(published):
    s, built = published
    assert built.status == "built" and built.entries > 100 and built.vectors > built.entries
    assert rel.active_release_id(s.index_dir) == built.release_id
    manifest = rel.read_manifest(s.index_dir, built.release_id, verify=True)
    assert manifest["entry_count"] == built.entries and manifest["dim"] == 384 + 512  # MiniLM's block + the Chinese reader's
    assert not list(rel.releases_dir(s.index_dir).glob(".tmp-*"))


def test_publishing_an_unchanged_kb_builds_nothing(published, embedder):
    s, built = published
    again = build_release(s, embedder=embedder)
    assert again.status == "unchanged" and again.release_id == built.release_id
    assert len(rel.list_release_ids(s.index_dir)) == 1


def test_new_golden_questions_are_calibrated_on_at_the_next_publish_though_the_kb_did_not_change(published, embedder):
    """A store that labels its customers' questions (kbops golden add, kbops review label-gap) expects the next
    publish to calibrate on them; the KB itself did not change, and publish used to build nothing."""
    from tests.helpers import add_golden

    s, built = published
    entry = next(e for e in rel.read_entries(s.index_dir, built.release_id) if e["lang"] == "en")
    add_golden(s, [("do you ship to mars", "handoff"), ("where can i read about it", entry["entry_key"])], by="lin")
    again = build_release(s, embedder=embedder)
    assert again.status == "built" and again.release_id != built.release_id and again.re_embedded == 0
    languages = rel.read_manifest(s.index_dir, again.release_id)["calibration"]["languages"]
    assert languages["en"]["golden"] == 1 and languages["en"]["golden_handoff"] == 1
    activate_release(s, again.release_id)
    assert build_release(s, embedder=embedder).status == "unchanged", "the same golden set: nothing to do"


def test_embedding_cache_means_unchanged_text_is_not_embedded_twice(published, embedder):
    s, _ = published
    before = embedder.stats.misses
    full = build_release(s, full=True, embedder=embedder)
    assert full.status == "built"
    assert embedder.stats.misses == before


def test_corrupt_release_is_refused_and_previous_kept(published, embedder):
    s, built = published
    second = build_release(s, full=True, embedder=embedder)
    path = rel.releases_dir(s.index_dir) / second.release_id / "entries.json"
    path.write_text(json.dumps([]), encoding="utf-8")
    with pytest.raises(ReleaseError, match="checksum"):
        activate_release(s, second.release_id)
    assert rel.active_release_id(s.index_dir) == built.release_id
    assert any("error" in r for r in list_releases(s))


def test_rollback_moves_the_pointer_back(published, embedder):
    s, built = published
    second = build_release(s, full=True, embedder=embedder)
    activate_release(s, second.release_id)
    assert rollback(s)["release_id"] == built.release_id
    assert rel.active_release_id(s.index_dir) == built.release_id
    with pytest.raises(ReleaseError, match="not found"):
        rollback(s, "r-does-not-exist")


def test_validity_windows_are_scheduled_and_expired_entries_dropped(published, embedder):
    from datetime import datetime, timedelta

    from sqlalchemy import select, update

    from kbops.db import session_scope
    from kbops.schema import KbEntry

    s, built = published
    start = datetime(2026, 12, 1, tzinfo=UTC)
    end = start + timedelta(days=1)
    with session_scope(s) as db:
        promo = db.scalar(select(KbEntry).where(KbEntry.entry_key == "product:LM-1001:price:en"))
        db.execute(update(KbEntry).where(KbEntry.id == promo.id).values(valid_from=start, valid_to=end))
    during = build_release(s, embedder=embedder, now=start - timedelta(hours=1))
    assert during.next_change_at == start.isoformat()
    assert rel.read_manifest(s.index_dir, during.release_id)["next_change_at"] == start.isoformat()
    after = build_release(s, embedder=embedder, now=end + timedelta(minutes=1))
    served = json.loads((rel.releases_dir(s.index_dir) / after.release_id / "entries.json").read_text(encoding="utf-8"))
    assert promo.id not in {e["id"] for e in served}
    assert after.entries == during.entries - 1


def test_incremental_publish_equals_a_full_rebuild(published, embedder, store):
    import csv

    from kbops.pipeline import ingest

    s, built = published
    rows = list(csv.DictReader((store / "prices.csv").open(encoding="utf-8")))
    for row in rows:
        if row["sku"] == "LM-1003":
            row["price"] = "1.00"
    with (store / "prices.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    products = store / "products.csv"
    products.write_text("".join(ln for ln in products.read_text(encoding="utf-8").splitlines(keepends=True) if not ln.startswith("LM-1020,")), encoding="utf-8")
    ingest(s)
    misses = embedder.stats.misses
    inc = build_release(s, embedder=embedder)
    assert inc.mode == "incremental" and inc.removed == 8 and inc.re_embedded == 0
    assert embedder.stats.misses == misses, "a price change re-embeds nothing"
    full = build_release(s, full=True, embedder=embedder)
    assert full.mode == "full"

    def contents(release_id):
        manifest, index, entries = rel.read_index_and_entries(s.index_dir, release_id)
        ids = sorted(int(index.id_map.at(i)) for i in range(index.ntotal))
        return ids, sorted(json.dumps(e, sort_keys=True, ensure_ascii=False) for e in entries)

    assert contents(inc.release_id) == contents(full.release_id)
    served = {e["entry_key"]: e for e in rel.read_index_and_entries(s.index_dir, inc.release_id)[2]}
    assert "1.00" in served["product:LM-1003:price:en"]["answer"]
    assert not any(k.startswith("product:LM-1020:") for k in served)


def test_index_type_follows_size_and_is_recorded_in_the_manifest(published, embedder):
    """Below ivf_threshold: exact search; at or above: IVF, converted from the stored
    vectors (nothing re-embedded). With every list probed, IVF ranks exactly like flat."""
    import dataclasses

    import numpy as np

    s, flat = published
    assert rel.read_manifest(s.index_dir, flat.release_id)["index"]["type"] == "flat"
    small = dataclasses.replace(s, ivf_threshold=100, ivf_nprobe=10_000)
    misses = embedder.stats.misses
    built = build_release(small, embedder=embedder, full=False)
    assert built.status == "unchanged", "the index type alone is not a KB change"
    ivf = build_release(small, embedder=embedder, full=True)
    assert embedder.stats.misses == misses
    manifest = rel.read_manifest(s.index_dir, ivf.release_id)
    assert manifest["index"]["type"] == "ivf" and manifest["index"]["trained_on"] == ivf.vectors
    assert manifest["index_type"] == f"IVF{manifest['index']['nlist']},FlatIP"

    flat_loaded = rel.load_release(s.index_dir, flat.release_id)
    ivf_loaded = rel.load_release(s.index_dir, ivf.release_id)
    queries = embedder.encode(["How long is the warranty?", "Can I return an item?", "退货政策是什么"])
    for q in queries:
        d1, i1 = flat_loaded.index.search(q.reshape(1, -1), 10)
        d2, i2 = ivf_loaded.index.search(q.reshape(1, -1), 10)
        assert list(i1[0]) == list(i2[0]) and np.allclose(d1, d2, atol=1e-5)

    ids, vectors = rel.index_contents(ivf_loaded.index)
    assert len(ids) == ivf.vectors and vectors.shape == (ivf.vectors, embedder.dim)


def test_incremental_publish_converts_flat_to_ivf_when_the_kb_crosses_the_threshold(published, embedder, store):
    import dataclasses

    s, flat = published
    (store / "policies" / "gift-cards.md").write_text(
        "# Gift cards\n\n## Can I pay with a gift card?\nYes, gift cards can pay for any order on the store.\n", encoding="utf-8"
    )
    ingest(s)
    decide(s, [i.id for i in list_items(s)], "approve", by="lin")
    crossing = dataclasses.replace(s, ivf_threshold=flat.vectors + 1)
    inc = build_release(crossing, embedder=embedder)
    assert inc.mode == "incremental+reindex" and inc.index_type.startswith("IVF") and inc.added >= 1
    activate_release(s, inc.release_id)
    from kbops.serve.retriever import Retriever

    answer = Retriever(crossing, embedder=embedder).search("Can I pay with a gift card?")
    assert not answer.handoff and "gift cards can pay" in answer.top.answer


# --- issue 13: an empty or shrinking release is not activated without --force ------------------------


def test_an_empty_first_release_is_refused_with_a_message_to_ingest_first(settings, embedder):
    """The first scheduled kb_publish, before any ingest, activated an EMPTY release."""
    from kbops.pipeline import publish

    built = build_release(settings, embedder=embedder)
    assert built.status == "built" and built.entries == 0
    with pytest.raises(ReleaseError, match="ingest") as refused:
        activate_release(settings, built.release_id, embedder=embedder)
    assert refused.value.data["reason"] == "empty" and refused.value.http_status == 409
    assert rel.active_release_id(settings.index_dir) is None
    with pytest.raises(ReleaseError, match="ingest"):
        publish(settings)
    assert rel.active_release_id(settings.index_dir) is None
    assert len(rel.list_release_ids(settings.index_dir)) == 1, "a refused build is reused, not rebuilt on every run"


def _retire_share(settings, share: float) -> int:
    from sqlalchemy import select, update

    from kbops.db import session_scope
    from kbops.schema import KbEntry

    with session_scope(settings) as db:
        ids = db.scalars(select(KbEntry.id).where(KbEntry.status == "active").order_by(KbEntry.id)).all()
        gone = ids[: int(len(ids) * share) + 1]
        db.execute(update(KbEntry).where(KbEntry.id.in_(gone)).values(status="retired", status_reason="test: delisted"))
    return len(gone)


def test_a_release_dropping_more_than_the_set_share_is_refused_unless_forced_and_audited(published, embedder):
    import dataclasses

    from kbops.db import session_scope
    from kbops.kb.audit import audit_events

    s, first = published
    dropped = _retire_share(s, 0.6)
    shrunk = build_release(s, embedder=embedder)
    with pytest.raises(ReleaseError, match="max_release_drop_share") as refused:
        activate_release(s, shrunk.release_id, embedder=embedder)
    data = refused.value.data
    assert data["reason"] == "shrink" and data["dropped"] == dropped and data["serving_entries"] == first.entries and data["max_drop_share"] == 0.5
    assert rel.active_release_id(s.index_dir) == first.release_id, "the previous release keeps serving"
    # A looser bound lets it through; so does --force, audited under the name given.
    assert activate_release(dataclasses.replace(s, max_release_drop_share=0.7), shrunk.release_id, embedder=embedder)["changed"]
    rollback(s, first.release_id)
    result = activate_release(s, shrunk.release_id, embedder=embedder, force=True, by="lin")
    assert result["changed"] and rel.active_release_id(s.index_dir) == shrunk.release_id
    with session_scope(s) as db:
        forced = [e for e in audit_events(db) if e.action == "release_forced"]
    assert forced and forced[0].actor == "lin" and forced[0].after["guard"]["reason"] == "shrink" and forced[0].after["release_id"] == shrunk.release_id


def test_the_drop_share_setting_is_read_and_checked(tmp_path):
    from kbops.config import Settings
    from kbops.errors import ConfigError

    assert Settings.load(env={"KBOPS_HOME": str(tmp_path)}, config_file=None).max_release_drop_share == 0.5
    assert Settings.load(env={"KBOPS_HOME": str(tmp_path), "KBOPS_MAX_RELEASE_DROP_SHARE": "0.8"}, config_file=None).max_release_drop_share == 0.8
    with pytest.raises(ConfigError, match="KBOPS_MAX_RELEASE_DROP_SHARE"):
        Settings.load(env={"KBOPS_HOME": str(tmp_path), "KBOPS_MAX_RELEASE_DROP_SHARE": "1.5"}, config_file=None)
