"""kbops.review.decisions and the merge decision: a candidate joins an existing entry as an alternate question."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from kbops.db import engine_for, session_scope
from kbops.errors import AlreadyDecided, InvalidDecision
from kbops.pipeline import apply_decisions, decide, validate_candidates
from kbops.schema import AuditEvent, Candidate, KbEntry, ReviewItem
from tests.helpers import list_items
from tests.review.conftest import entry_by_key


def _active_target(settings, lang):
    with session_scope(settings) as db:
        return db.scalar(select(KbEntry).where(KbEntry.status == "active", KbEntry.lang == lang).order_by(KbEntry.id))


def test_merge_adds_the_question_as_an_alternate_of_the_target(queued):
    s = queued
    item = list_items(s)[0]
    target = _active_target(s, item.lang)
    result = decide(s, [item.id], "merge", by="lin", merge_into=target.entry_key, door="web")
    assert (result.applied, result.merged, result.errors) == (1, 1, {})
    after = entry_by_key(s, target.entry_key)
    added = after.alt_questions[len(target.alt_questions):]
    assert added[0] == item.question and set(added[1:]) <= set(item.alt_questions)
    assert after.answer == target.answer and after.id == target.id
    assert after.revision == target.revision + 1
    assert entry_by_key(s, item.entry_key) is None, "a merge creates no new entry"
    with session_scope(s) as db:
        row = db.get(ReviewItem, item.id)
        assert (row.state, row.decision, row.merge_into, row.decided_via) == ("applied", "merge", target.entry_key, "web")
        assert db.get(Candidate, item.candidate_id).status == "merged"
        event = db.scalar(select(AuditEvent).where(AuditEvent.review_item_id == item.id))
        assert (event.actor, event.door, event.action, event.entry_id) == ("lin", "web", "merge", target.id)
        assert item.question not in event.before["alt_questions"] and item.question in event.after["alt_questions"]
    with pytest.raises(AlreadyDecided, match="lin"):
        decide(s, [item.id], "merge", by="wang", merge_into=target.entry_key)


def test_merge_refuses_a_missing_or_wrong_target_without_touching_the_item(queued):
    s = queued
    item = list_items(s)[0]
    with pytest.raises(InvalidDecision, match="--into"):
        decide(s, [item.id], "merge", by="lin")
    with pytest.raises(InvalidDecision, match="no-such-key"):
        decide(s, [item.id], "merge", by="lin", merge_into="no-such-key")
    other = "en" if item.lang == "zh" else "zh"
    wrong_lang = _active_target(s, other)
    if wrong_lang is not None:
        with pytest.raises(InvalidDecision, match="same language"):
            decide(s, [item.id], "merge", by="lin", merge_into=wrong_lang.entry_key)
    with pytest.raises(InvalidDecision, match="only goes with"):
        decide(s, [item.id], "approve", by="lin", merge_into="x")
    with session_scope(s) as db:
        row = db.get(ReviewItem, item.id)
        assert (row.state, row.decision, row.row_version) == ("open", None, 1)


def test_sql_door_merge_valid_and_invalid(queued):
    s = queued
    good, no_target, bad_target = list_items(s)[:3]
    target = _active_target(s, good.lang)
    with engine_for(s).begin() as conn:
        conn.execute(
            text("UPDATE review_items SET decision = 'merge', decided_by = 'zhao', merge_into = :k WHERE id = :i"),
            {"i": good.id, "k": target.entry_key},
        )
        conn.execute(text("UPDATE review_items SET decision = 'merge', decided_by = 'zhao' WHERE id = :i"), {"i": no_target.id})
        conn.execute(text("UPDATE review_items SET decision = 'merge', decided_by = 'zhao', merge_into = 'nope' WHERE id = :i"), {"i": bad_target.id})
    result = apply_decisions(s)
    assert result.merged == 1
    assert set(result.errors) == {no_target.id, bad_target.id}
    assert "merge_into" in result.errors[no_target.id] and "'nope'" in result.errors[bad_target.id]
    assert good.question in entry_by_key(s, target.entry_key).alt_questions
    with session_scope(s) as db:
        assert db.get(ReviewItem, bad_target.id).state == "open"
        assert db.scalar(select(AuditEvent.door).where(AuditEvent.review_item_id == good.id)) == "sql"


def _cli_env(settings, monkeypatch):
    for key, value in {
        "KBOPS_HOME": str(settings.home),
        "KBOPS_DATABASE_URL": settings.database_url,
        "KBOPS_SOURCES": str(settings.sources_file),
        "KBOPS_EMBED_CACHE": str(settings.embed_cache),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("KBOPS_CONFIG", raising=False)


def test_merge_invalid_resubmit_and_report_from_the_command_line(queued, monkeypatch, capsys):
    import json

    from kbops.cli import main
    from tests.validate import corpus_kit

    s = queued
    _cli_env(s, monkeypatch)
    item = list_items(s)[0]
    target = _active_target(s, item.lang)
    assert main(["review", "merge", str(item.id), "--by", "lin"]) == 2  # no --into and nothing proposed
    assert "--into" in capsys.readouterr().err
    assert main(["review", "merge", str(item.id), "--into", target.entry_key, "--by", "lin"]) == 0
    assert "1 merged" in capsys.readouterr().out
    ids = corpus_kit.insert(s, [{"id": "x", "lang": "zh", "question": "退款到哪张卡？", "answer": "已退到银行卡6222021234567890123。"}], "cli")
    validate_candidates(s)
    assert main(["review", "invalid", "--json"]) == 0
    [row] = [r for r in json.loads(capsys.readouterr().out) if r["candidate_id"] == ids["x"]]
    assert row["reasons"][0].startswith("private_data")
    assert main(["review", "report"]) == 0
    assert "private_data" in capsys.readouterr().out
    assert main(["review", "resubmit", str(ids["x"]), "--by", "lin", "--answer", "退款会按原支付方式退回，3–5个工作日到账。"]) == 0
    assert "passed the gate" in capsys.readouterr().out
    assert main(["review", "resubmit", "99999", "--by", "lin", "--answer", "x"]) == 2
    assert "99999" in capsys.readouterr().err
