"""Golden questions gate activation: a release that would answer fewer of them is refused."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from kbops.cli import main
from kbops.db import session_scope
from kbops.errors import ConfigError, GoldenRegression
from kbops.index import release as rel
from kbops.kb.audit import audit_events
from kbops.pipeline import activate_release, build_release, decide, ingest, rollback
from kbops.pipeline import check_golden as check_active
from kbops.schema import IndexRelease, KbEntry
from tests.helpers import add_golden, list_golden, list_items, remove_golden

RETURNS_EN = "policy:returns.en:"  # prefix of the English returns-policy entries


@pytest.fixture
def published(settings, embedder):
    ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    built = build_release(settings, embedder=embedder)
    activate_release(settings, built.release_id, embedder=embedder)
    return settings, built


def _entry(settings, question_part: str) -> tuple[str, str]:
    with session_scope(settings) as db:
        entry = db.scalars(select(KbEntry).where(KbEntry.status == "active", KbEntry.question.contains(question_part))).first()
        return entry.entry_key, entry.question


def test_golden_questions_must_point_at_active_entries(published):
    s, _ = published
    key, question = _entry(s, "return")
    assert add_golden(s, [(question, key), (question, key)], by="lin") == 1
    assert add_golden(s, [(question, key)], by="lin") == 0, "re-adding is a no-op"
    with pytest.raises(ConfigError, match="no active KB entry 'product:NOPE'"):
        add_golden(s, [("How much?", "product:NOPE")], by="lin")
    with pytest.raises(ConfigError, match="--by"):
        add_golden(s, [(question, key)], by=" ")
    assert [g["entry_key"] for g in list_golden(s)] == [key]


def test_a_question_the_bot_must_hand_off_is_a_golden_question_too(published, embedder):
    """`handoff` as the expected entry: correct when the bot hands it off, a miss (with what it answered)
    when it answers — an out-of-scope question a release starts answering is a regression."""
    s, _ = published
    key, question = _entry(s, "return")
    assert add_golden(s, [("What's the weather in Paris?", "handoff"), (question, "handoff")], by="lin") == 2
    score = check_active(s, embedder)
    assert (score.correct, score.total) == (1, 2)
    assert [(m["question"], m["expected"], m["got"]) for m in score.misses] == [(question, "handoff", key)]


def test_a_release_that_loses_a_golden_answer_is_refused_unless_forced(published, embedder):
    s, first = published
    key, question = _entry(s, "return")
    other_key, other_q = _entry(s, "warranty")
    add_golden(s, [(question, key), (other_q, other_key)], by="lin")
    assert check_active(s, embedder).correct == 2

    with session_scope(s) as db:  # the entry a golden question relies on is withdrawn
        db.execute(update(KbEntry).where(KbEntry.entry_key == key).values(status="retired"))
    worse = build_release(s, embedder=embedder)
    with pytest.raises(GoldenRegression) as refused:
        activate_release(s, worse.release_id, embedder=embedder)
    message = str(refused.value)
    assert "1/2" in message and "2/2" in message and question in message and key in message and "--force" in message
    data = refused.value.data  # for code: the same facts, without parsing the message
    assert (data["correct"], data["total"], data["active_correct"], data["release_id"]) == (1, 2, 2, worse.release_id)
    assert [m["question"] for m in data["lost"]] == [question]
    assert rel.active_release_id(s.index_dir) == first.release_id, "the previous release keeps serving"

    forced = activate_release(s, worse.release_id, embedder=embedder, force=True, by="ops-wang")
    assert forced["golden"]["forced"] and rel.active_release_id(s.index_dir) == worse.release_id
    with session_scope(s) as db:
        events = [e for e in audit_events(db) if e.action == "release_forced"]
        assert events and events[0].actor == "ops-wang" and events[0].after["release_id"] == worse.release_id
        assert db.get(IndexRelease, worse.release_id).stats["golden"]["correct"] == 1

    assert rollback(s)["release_id"] == first.release_id, "rollback is never blocked by the golden check"


def test_an_equal_or_better_release_activates_and_the_score_is_recorded(published, embedder):
    s, first = published
    key, question = _entry(s, "return")
    add_golden(s, [(question, key)], by="lin")
    again = build_release(s, full=True, embedder=embedder)
    result = activate_release(s, again.release_id, embedder=embedder)
    assert result["golden"] == {"correct": 1, "total": 1, "active_correct": 1, "forced": False}
    with session_scope(s) as db:
        assert db.get(IndexRelease, first.release_id).stats["golden"]["correct"] == 1
    remove_golden(s, list_golden(s)[0]["id"])
    with pytest.raises(ConfigError, match="no golden question 999"):
        remove_golden(s, 999)


def test_golden_commands_from_the_cli(published, monkeypatch, capsys, tmp_path):
    s, _ = published
    for k, v in {"KBOPS_HOME": str(s.home), "KBOPS_DATABASE_URL": s.database_url, "KBOPS_EMBED_CACHE": str(s.embed_cache)}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("KBOPS_CONFIG", raising=False)
    key, question = _entry(s, "return")
    golden_file = tmp_path / "golden.jsonl"
    golden_file.write_text(json.dumps({"question": question, "entry_key": key}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert main(["golden", "add", "--file", str(golden_file), "--by", "lin"]) == 0
    assert main(["golden", "check"]) == 0
    assert "1/1 golden questions" in capsys.readouterr().out
    with session_scope(s) as db:
        db.execute(update(KbEntry).where(KbEntry.entry_key == key).values(status="retired"))
    assert main(["publish"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: release ") and "golden" in err and "Traceback" not in err
    assert main(["publish", "--force"]) == 2
    assert "--by" in capsys.readouterr().err
    assert main(["publish", "--force", "--by", "ops-wang"]) == 0
    assert "FORCED" in capsys.readouterr().out
    assert main(["golden", "check"]) == 1
