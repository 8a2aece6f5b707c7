"""kbops.extract.mining: incremental mining in the KB database, and unanswered topics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kbops.cli import main
from kbops.db import session_scope
from kbops.errors import ConfigError
from kbops.extract.mining import Coverage, gap_coverage, list_gaps, mine_chats, product_skus
from kbops.pipeline import decide, extract_candidates, ingest, publish, sync_sources
from kbops.schema import Candidate, ChatExchange, ChatGap, ChatSession, KbEntry
from kbops.serve.retriever import Retriever
from tests.helpers import list_items

ENGLISH_CHATS = Path(__file__).parent / "data" / "english_chats.jsonl"


def _counts(settings) -> tuple[int, int, int]:
    with session_scope(settings) as db:
        return (
            db.scalar(select(func.count()).select_from(ChatSession)),
            db.scalar(select(func.count()).select_from(ChatSession).where(ChatSession.mined.is_(True))),
            db.scalar(select(func.count()).select_from(ChatExchange)),
        )


def test_sessions_already_mined_are_not_re_mined(settings, store):
    sync_sources(settings, only="chats")
    first = extract_candidates(settings)
    sessions, mined, exchanges = _counts(settings)
    assert first.sessions == sessions == mined > 0 and exchanges > 0
    with session_scope(settings) as db:
        before = {(r.session_id, r.turn_index): r.id for r in db.scalars(select(ChatExchange))}

    again = extract_candidates(settings)
    assert (again.sessions, again.exchanges, again.proposed) == (0, 0, 0)
    assert _counts(settings) == (sessions, mined, exchanges)

    # A day's new log: only its sessions are mined; earlier exchanges are untouched.
    shutil.copy(ENGLISH_CHATS, store / "chats" / "day2.jsonl")
    sync_sources(settings, only="chats")
    day2 = extract_candidates(settings)
    assert day2.sessions == 12
    with session_scope(settings) as db:
        after = {(r.session_id, r.turn_index): r.id for r in db.scalars(select(ChatExchange))}
        assert {k: after[k] for k in before} == before
        kinds = {k: n for k, n in db.execute(select(ChatExchange.kind, func.count()).group_by(ChatExchange.kind))}
        assert kinds["handoff"] >= 2 and kinds["qa"] > 0
        chat = db.scalars(select(Candidate).where(Candidate.origin == "chat", Candidate.lang == "en")).all()
        returns = [c for c in chat if "30 days" in c.answer]
        assert len(returns) == 1 and returns[0].support == 3
        assert 0 < returns[0].evidence["quality"] <= 1
        assert {(e["session"], e["turn"]) for e in returns[0].evidence["excerpts"]} == {("EN001", 2), ("EN002", 0), ("EN003", 0)}
    assert _counts(settings)[1] == _counts(settings)[0]


def test_handed_off_questions_become_an_open_gap_listed_by_the_cli(settings, store, monkeypatch, capsys):
    shutil.copy(ENGLISH_CHATS, store / "chats" / "day2.jsonl")
    sync_sources(settings, only="chats")
    result = extract_candidates(settings)
    assert result.gaps >= 1
    with session_scope(settings) as db:
        gaps = list_gaps(db, lang="en")
        fan = [g for g in gaps if "fan" in g.question.lower()]
        assert len(fan) == 1 and fan[0].support == 3 and fan[0].status == "open"
        assert fan[0].reasons == {"handoff": 2, "no_answer": 1}
        assert {e["session"] for e in fan[0].evidence} == {"EN010", "EN011", "EN012"}
    for key, value in {
        "KBOPS_HOME": str(settings.home),
        "KBOPS_DATABASE_URL": settings.database_url,
        "KBOPS_SOURCES": str(settings.sources_file),
        "KBOPS_EMBED_CACHE": str(settings.embed_cache),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("KBOPS_CONFIG", raising=False)
    capsys.readouterr()
    assert main(["review", "gaps", "--lang", "en", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any("fan" in r["question"].lower() and r["support"] == 3 for r in rows)
    assert main(["review", "gaps"]) == 0
    assert "ceiling fan" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:  # argparse's usage error: one line naming the flag, exit 2
        main(["review", "gaps", "--limit", "0"])
    assert usage.value.code == 2
    err = capsys.readouterr().err
    assert "--limit" in err and "'0'" in err and "Traceback" not in err


FAN = "Can someone install the ceiling fan for me?"


def test_a_topic_is_covered_when_the_served_release_answers_it_not_when_an_entry_is_approved(settings, embedder):
    """Coverage is the bot's own answer from the active release: an approved, unpublished entry covers nothing."""
    assert gap_coverage(settings, [FAN], embedder) == [Coverage(False, 0.0)]  # nothing published yet
    ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    publish(settings)
    rice = "How much is the Lumi Smart Rice Cooker?"
    answered, fan, gift = gap_coverage(settings, [rice, FAN, "Do you sell gift cards?"], embedder)
    bot = Retriever(settings, embedder=embedder).search(rice)
    assert answered.covered and answered.confidence == pytest.approx(bot.confidence, abs=1e-4) and not bot.handoff
    assert not fan.covered and not gift.covered
    with session_scope(settings) as db:
        db.add(
            KbEntry(
                entry_key="faq:install", origin="import", kind="faq", lang="en",
                question="Do you install ceiling fans?", alt_questions=["Is ceiling fan installation offered?"],
                answer="Yes, installation is free in mainland cities.", fingerprint="x", approved_by="lin", approved_via="cli",
            )
        )
    assert not gap_coverage(settings, [FAN], embedder)[0].covered  # approved, not served yet
    publish(settings)
    [fan] = gap_coverage(settings, [FAN], embedder)
    assert fan.covered and fan.confidence == pytest.approx(Retriever(settings, embedder=embedder).search(FAN).confidence, abs=1e-4)


def test_gap_coverage_without_a_model_or_with_another_models_release_leaves_topics_open(settings, embedder, caplog):
    ingest(settings)
    decide(settings, [i.id for i in list_items(settings)], "approve", by="lin")
    publish(settings)
    rice = "How much is the Lumi Smart Rice Cooker?"
    assert gap_coverage(settings, [rice], embedder)[0].covered
    assert gap_coverage(settings, [rice], None) == [Coverage(False, 0.0)]
    assert "no embedding model" in caplog.text
    other = type("OtherModel", (), {"model_id": "another-model", "dim": embedder.dim})()
    assert gap_coverage(settings, [rice], other) == [Coverage(False, 0.0)]
    assert "cannot answer them" in caplog.text and "another-model" in caplog.text


def test_gaps_are_replaced_not_accumulated(settings, store):
    shutil.copy(ENGLISH_CHATS, store / "chats" / "day2.jsonl")
    sync_sources(settings, only="chats")
    extract_candidates(settings)
    with session_scope(settings) as db:
        n = db.scalar(select(func.count()).select_from(ChatGap))
    (store / "chats" / "day3.jsonl").write_text(
        json.dumps({"session_id": "EN100", "turns": [
            {"role": "customer", "text": "Do you offer installation for a ceiling fan?"},
            {"role": "agent", "text": "Transferring you to our installation team."},
        ]}) + "\n",
        encoding="utf-8",
    )
    sync_sources(settings, only="chats")
    assert extract_candidates(settings).sessions == 1
    with session_scope(settings) as db:
        assert db.scalar(select(func.count()).select_from(ChatGap)) == n
        [fan] = [g for g in list_gaps(db, lang="en") if "fan" in g.question.lower()]
        assert fan.support == 4


def test_bad_chat_input_is_recorded_never_crashes_and_is_stored_as_text(settings, store):
    lines = [
        json.dumps({"session_id": "X1", "turns": [
            {"role": "customer", "text": '<script>alert("x")</script>Do you ship to Hong Kong?'},
            {"role": "agent", "text": "We currently deliver to mainland China only, so we can't ship to Hong Kong."},
        ]}),
        json.dumps({"session_id": "X2", "turns": [{"role": "customer", "text": "x" * 1_000_000}, {"role": "agent", "text": "ok"}]}),
        json.dumps({"session_id": "X3", "turns": [{"role": "customer" if i % 2 == 0 else "agent", "text": f"turn {i}"} for i in range(10_000)]}),
        '{"session_id": "X4", "turns": [{"role": "customer", "text": "cut off',
        json.dumps({"session_id": "X5", "turns": [{"role": "robot", "text": "?"}]}),
    ]
    path = store / "chats" / "bad.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8") + "能开发票吗\n".encode("gbk"))
    [result] = sync_sources(settings, only="chats")
    assert result.quarantined == 3  # the cut-off line, the unknown role, the GBK line
    notes = "\n".join(result.messages)
    assert "markup" in notes and "1,000,000" in notes and "10000 turns" in notes
    extract_candidates(settings)
    with session_scope(settings) as db:
        stored = {s.session_key: s for s in db.scalars(select(ChatSession).where(ChatSession.session_key.in_(["X1", "X2", "X3"])))}
        assert set(stored) == {"X1", "X2", "X3"} and all(s.mined for s in stored.values())
        assert "<" not in json.dumps(stored["X1"].turns) and "Hong Kong" in stored["X1"].turns[0]["text"]
        assert max(len(t["text"]) for t in stored["X2"].turns) <= 4_000
        texts = [c.question + c.answer for c in db.scalars(select(Candidate).where(Candidate.origin == "chat"))]
        assert texts and not any("<" in t or "script" in t.lower() for t in texts)


class _UnloadableModel:
    """An embedder whose model fails when first used (e.g. an ONNX export that cannot be built)."""

    dim = 384

    def unk_share(self, text):
        raise ConfigError("the ONNX export of the model could not be built; set KBOPS_EMBED_BACKEND=torch")

    encode = unk_share


def test_a_model_that_cannot_be_loaded_degrades_to_lexical_grouping(settings, caplog):
    sync_sources(settings, only="chats")
    with session_scope(settings) as db:
        mined = mine_chats(db, settings, _UnloadableModel())
    assert mined.sessions > 0 and mined.proposals
    assert "lexical similarity only" in caplog.text and "KBOPS_EMBED_BACKEND=torch" in caplog.text


def test_a_rewritten_follow_up_keeps_its_source_turn_and_checks_through_the_database(settings, store):
    """The table stores only the rewritten question; the candidate's evidence still names the turn it came from."""
    first, follow = "能开增值税专用发票吗？", "那如果税号填错了怎么办"
    answer = "可以在订单详情页申请换开，原发票作废后会按正确的信息重新开具。"
    sessions = [
        {"session_id": f"F{i}", "lang": "zh", "turns": [
            {"role": "customer", "text": first},
            {"role": "agent", "text": "可以的。下单后在订单详情页申请发票，选择增值税专用发票，填写公司名称和税号即可。"},
            {"role": "customer", "text": follow},
            {"role": "agent", "text": answer},
        ]}
        for i in range(2)
    ]
    (store / "chats" / "follow_ups.jsonl").write_text("\n".join(json.dumps(s, ensure_ascii=False) for s in sessions), encoding="utf-8")
    sync_sources(settings)
    extract_candidates(settings)
    with session_scope(settings) as db:
        assert "LM-1001" in product_skus(db)
        stored = db.scalars(select(ChatExchange).where(ChatExchange.question.like("关于增值税专用发票%"))).all()
        assert stored and all(r.question == "关于增值税专用发票，如果税号填错了怎么办" for r in stored)
        [candidate] = db.scalars(select(Candidate).where(Candidate.origin == "chat", Candidate.answer.like("%换开%"))).all()
        evidence = candidate.evidence
    assert candidate.support >= 2
    assert evidence["context_turns"] and "增值税专用发票" in evidence["context_turns"][0]
    assert evidence["checks"][0] == f"rewritten from an earlier turn ({follow})"
    assert "general scope (增值税专用发票)" in evidence["checks"]
