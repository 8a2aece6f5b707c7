"""``kbops publish --preview``: builds, replays the logged questions, prints the diff, activates nothing."""

from __future__ import annotations

import json

from kbops.cli.app import main
from kbops.db import session_scope
from kbops.index import release as rel
from kbops.pipeline import decide, ingest, publish
from kbops.schema import QueryLogEntry
from tests.helpers import list_items
from tests.serve.test_review_web import make_item


def test_preview_prints_the_release_diff_and_leaves_the_serving_release(settings, embedder, monkeypatch, capsys):
    ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    publish(settings)
    serving = rel.active_release_id(settings.index_dir)
    with session_scope(settings) as db:
        for _ in range(2):
            db.add(QueryLogEntry(question="Do you offer gift wrapping?", handoff=True, reason="no_match", score=0.2, release_id=serving))
    decide(settings, [make_item(settings, question="Do you offer gift wrapping?", answer="Yes: choose it at checkout.", lang="en")], "approve", by="lin")
    for name, value in (("KBOPS_DATABASE_URL", settings.database_url), ("KBOPS_HOME", str(settings.home)), ("KBOPS_SOURCES", str(settings.sources_file)),
                        ("KBOPS_EMBED_CACHE", str(settings.embed_cache)), ("KBOPS_MODELS_DIR", str(settings.models_dir))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KBOPS_CONFIG", raising=False)
    assert main(["publish", "--preview", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    diff = out["preview"]
    assert (diff["against"], diff["questions"], diff["asks"], diff["newly_answered"], diff["new_handoffs"]) == (serving, 1, 2, 2, 0)
    assert rel.active_release_id(settings.index_dir) == serving
    assert main(["publish", "--preview"]) == 0
    text = capsys.readouterr().out
    assert "NOT activated" in text and "newly answered 2" in text and "Do you offer gift wrapping?" in text
    assert main(["publish"]) == 0 and rel.active_release_id(settings.index_dir) == out["build"]["release_id"]  # the previewed build goes live
