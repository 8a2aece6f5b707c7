"""End to end: no planted private value is stored, logged, exported or served anywhere.

A chat log carries every value of the planted set (tests/data/planted_private.jsonl: ≥ 100 values
over the classes issue 12 lists, zh + en), each in three sessions, in customer and agent turns,
inside questions the miner proposes and answers it keeps. The whole loop runs: sync → extract →
validate → route → approve every queued item → build and activate a release → export → golden
questions → ``/search`` through the bot API (queries carrying planted values, so they reach the
query log). Then every table of the KB database (all columns, found by reflection, so a table
added later is scanned too), every file under KBOPS_HOME (the database file, the release's
entries.json, lexical.json, manifest…), the export, the ``/search`` answers and hits and the
captured log output are searched for every planted value and its fragments, raw and after NFKC
normalisation. Zero is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, select

from kbops.db import session_scope
from kbops.errors import ConfigError
from kbops.index import golden
from kbops.index.search import Answer
from kbops.kb.audit import record_audit
from kbops.kb.candidates import Proposal, propose
from kbops.pipeline import activate_release, build_release, decide, export_faq, ingest
from kbops.schema import AuditEvent, Candidate, KbEntry, QueryLogEntry
from kbops.serve.api import create_app
from kbops.serve.query_log import log_answer
from kbops.serve.retriever import Retriever
from tests.helpers import add_golden, list_items

PLANTED_FILE = Path(__file__).parent / "data" / "planted_private.jsonl"
PLANTED: list[dict[str, Any]] = [json.loads(line) for line in PLANTED_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]

# General questions the miner proposes (one topic per session), with the agents' canned answers.
TOPICS = {
    "zh": [
        ("电饭煲内胆可以放洗碗机洗吗？", "内胆不建议放洗碗机清洗，高温水流和洗涤剂容易损伤不粘涂层，请用软布加中性洗洁精手洗。"),
        ("护眼台灯能调色温吗？", "护眼台灯支持三档色温调节，长按开关键三秒即可切换暖光、自然光和冷光。"),
        ("扫地机器人能拖地吗？", "扫地机器人自带拖地模块，装上水箱和拖布后在应用里打开拖地模式就可以边扫边拖。"),
        ("加湿器可以加精油吗？", "加湿器的水箱不能直接加精油，精油会腐蚀水箱，请使用机身顶部的香薰盒添加。"),
        ("空气炸锅第一次用要空烧吗？", "空气炸锅首次使用前建议二百度空烧十分钟，去除涂层气味后再清洗一遍炸篮即可。"),
        ("电动牙刷刷头多久换一次？", "电动牙刷刷头建议每三个月更换一次，刷毛明显外翻时也应该提前更换。"),
    ],
    "en": [
        ("Can the rice cooker inner pot go in the dishwasher?", "The inner pot should not go in the dishwasher; hot jets and detergent wear the non-stick coating; wash it by hand."),
        ("Can the desk lamp change its colour temperature?", "The desk lamp has three colour temperatures; hold the power button for three seconds to switch between warm, natural and cool light."),
        ("Can the robot vacuum mop the floor?", "The robot vacuum has a mopping module; fit the water tank and the mop pad, then turn on mopping mode in the app."),
        ("Can I put essential oil in the humidifier?", "Essential oil must not go into the humidifier tank because it damages the plastic; use the aroma tray on top of the unit instead."),
        ("Does the air fryer need a first empty run?", "Before the first use run the air fryer empty at 200 degrees for ten minutes to burn off the coating smell, then wash the basket."),
        ("How often should I replace the toothbrush head?", "Replace the toothbrush head every three months, or sooner when the bristles start to splay outwards."),
    ],
}

QUERIES = [
    "我是刘静怡，电饭煲内胆可以放洗碗机洗吗？",
    "座机010-62345678，护眼台灯能调色温吗？",
    "我的微信号 lumi_fan88，加湿器可以加精油吗？",
    "寄到海淀区上庄镇永丰路690号要几天？火星能送吗",
    "Hi, I'm Oliver Brennan. Can the robot vacuum mop the floor?",
    "email ｊｏｈｎ．ｓｍｉｔｈ＠ｅｘａｍｐｌｅ．ｃｏｍ can I pay with seashells?",
    "Ship to Flat 5, 12 rue de la Paix, Paris - how often should I replace the toothbrush head?",
    "passport number 533821946 does the air fryer need a first empty run?",
]


def needles() -> list[tuple[int, str]]:
    """(planted index, text that must not survive): every value and its listed fragments."""
    return [(i, text) for i, p in enumerate(PLANTED) for text in [p["value"], *p.get("fragments", [])]]


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def leaks_in(where: str, haystack: str) -> list[tuple[str, int, str]]:
    """(where, planted index, text found) for planted values in ``haystack``, raw or after NFKC normalisation of both sides."""
    normal = nfkc(haystack)
    return [(where, i, value) for i, value in needles() if value in haystack or nfkc(value) in normal]


def write_chat_log(path: Path) -> int:
    """Each planted value in three sessions, as a customer turn, an agent turn and inside the asked question."""
    lines = []
    for i, p in enumerate(PLANTED):
        zh = p["lang"] == "zh"
        topics = TOPICS[p["lang"]]
        for r in range(3):
            question, answer = topics[(i + r) % len(topics)]
            ack = p.get("reply") or ("好的，收到。" if zh else "Thanks, noted.")
            asked = f"{p['text']}{'，' if zh else ', '}{question}" if r == 1 else question
            replied = f"{answer} {p['text']}" if r == 2 else answer
            turns = [
                {"role": "customer", "text": p["text"]},
                {"role": "agent", "text": ack},
                {"role": "customer", "text": asked},
                {"role": "agent", "text": replied},
            ]
            if p.get("reply"):  # the agent addresses the customer by name once more at the end
                turns += [{"role": "customer", "text": "谢谢" if zh else "thanks"}, {"role": "agent", "text": p["reply"]}]
            lines.append(json.dumps({"session_id": f"P{i:03d}-{r}", "lang": p["lang"], "sku": None, "started_at": "2026-11-20T10:00:00+08:00", "turns": turns}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="ignore")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def scan_database(url: str) -> list[tuple[str, int, str]]:
    """Every column of every table (reflected from the live database, not from kbops.schema)."""
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    found = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            cells = [_as_text(v) for row in conn.execute(select(table)) for v in row]
            found += leaks_in(f"table {table.name}", "\n".join(cells))
    engine.dispose()
    return found


def scan_files(root: Path) -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        found += leaks_in(f"file {path.relative_to(root)}", path.read_bytes().decode("utf-8", errors="ignore"))
    return found


@pytest.mark.slow
def test_no_planted_private_value_is_stored_logged_exported_or_served(settings, store, embedder, tmp_path, caplog, capsys):
    assert len(PLANTED) >= 100
    caplog.set_level(logging.DEBUG)
    sessions = write_chat_log(store / "chats" / "planted.jsonl")
    assert sessions == 3 * len(PLANTED)

    ingest(settings)
    with session_scope(settings) as db:
        proposed = db.scalars(select(Candidate).where(Candidate.origin == "chat")).all()
    assert len(proposed) >= 6, "the miner proposes the recurring topics (the test would prove nothing otherwise)"
    waiting = list_items(settings)
    assert waiting
    decide(settings, [i.id for i in waiting], "approve", by="e2e")
    release_id = build_release(settings, embedder=embedder).release_id
    assert release_id
    activate_release(settings, release_id, embedder=embedder, check_golden=False)
    with session_scope(settings) as db:
        entries = db.scalars(select(KbEntry).where(KbEntry.status == "active", KbEntry.origin == "chat")).all()
        chat_key = entries[0].entry_key if entries else None
    assert chat_key, "chat-mined entries are published"
    export = tmp_path / "export.jsonl"
    assert export_faq(settings, export) > 0
    add_golden(settings, [("我是刘静怡，座机010-62345678，" + TOPICS["zh"][0][0], chat_key)], by="e2e")

    s = dataclasses.replace(settings, api_token="tok")
    client = TestClient(create_app(s, Retriever(s, embedder=embedder)))
    responses = []
    for query in QUERIES:
        r = client.post("/search", json={"query": query, "top_k": 5}, headers={"Authorization": "Bearer tok"})
        assert r.status_code == 200, r.text
        body = r.json()
        body.pop("query")  # the caller's own query echoed back to it; what the bot serves is scanned
        responses.append(body)

    leaks = scan_database(settings.database_url)
    leaks += scan_files(settings.home)
    leaks += leaks_in("export", export.read_text(encoding="utf-8"))
    leaks += leaks_in("/search responses", json.dumps(responses, ensure_ascii=False))
    captured = capsys.readouterr()
    leaks += leaks_in("log output", caplog.text + captured.out + captured.err)
    leaked = sorted({i for _, i, _ in leaks})
    summary = sorted({where for where, _, _ in leaks})
    assert leaks == [], f"{len(leaked)} of {len(PLANTED)} planted values leaked ({len(leaks)} finds) into: {summary}\n" + "\n".join(
        f"{PLANTED[i]['class']}: {PLANTED[i]['value']}" for i in leaked
    )


# --- each store scrubs on its own (the chat sync scrubs first; these hold when a stage does not) ---

PRIVATE_ZH = "我是刘静怡，座机010-62345678，微信号 lumi_fan88，寄到海淀区上庄镇永丰路690号"
PRIVATE_VALUES = ("刘静怡", "010-62345678", "lumi_fan88", "永丰路690号")


def _clean(stored: Any) -> list[str]:
    text = _as_text(stored)
    return [v for v in PRIVATE_VALUES if v in text]


def test_a_proposal_with_private_data_is_stored_scrubbed(settings):
    """kbops.kb.candidates is the one place a candidate is created: whatever a stage built, nothing private is stored."""
    proposal = Proposal(
        entry_key="chat:zh:test",
        origin="chat",
        kind="faq",
        lang="zh",
        question=PRIVATE_ZH + "，内胆能放洗碗机吗？",
        answer="内胆不建议放洗碗机清洗。" + PRIVATE_ZH,
        alt_questions=[PRIVATE_ZH],
        evidence={"sessions": ["S1"], "excerpts": [{"session": "S1", "turn": 2, "question": PRIVATE_ZH, "answer": PRIVATE_ZH}]},
    )
    with session_scope(settings) as db:
        propose(db, proposal, None)
    with session_scope(settings) as db:
        stored = db.scalars(select(Candidate)).one()
        assert _clean([stored.question, stored.answer, stored.alt_questions, stored.evidence]) == []
        assert stored.evidence["sessions"] == ["S1"] and stored.evidence["excerpts"][0]["session"] == "S1"
        assert stored.question.endswith("内胆能放洗碗机吗？") and "[PHONE]" in stored.answer


def test_audit_snapshots_and_notes_are_scrubbed(settings):
    with session_scope(settings) as db:
        record_audit(
            db, actor="lin", door="cli", action="reject",
            before={"question": PRIVATE_ZH, "answer": PRIVATE_ZH, "alt_questions": [PRIVATE_ZH], "entry_key": "chat:zh:20261120123456789", "revision": 3},
            after={"status": "retired"}, note="客户说：" + PRIVATE_ZH,
        )
    with session_scope(settings) as db:
        event = db.scalars(select(AuditEvent)).one()
        assert _clean([event.before, event.after, event.note]) == []
        assert event.before["entry_key"] == "chat:zh:20261120123456789" and event.before["revision"] == 3


def test_golden_questions_are_scrubbed_before_they_are_stored_or_quoted(settings):
    with session_scope(settings) as db, pytest.raises(ConfigError) as refused:
        golden.add_golden(db, [(PRIVATE_ZH, "")], by="lin")
    assert _clean(str(refused.value)) == []


def test_query_log_scrubs_every_class(settings):
    log_answer(settings, Answer(release_id="r1", query=PRIVATE_ZH + "，护照号E12345678，ｘｘ＠ｑｑ．ｃｏｍ", handoff=True, reason="low_score"))
    with session_scope(settings) as db:
        logged = db.scalars(select(QueryLogEntry.question)).one()
    assert _clean(logged) == [] and "E12345678" not in logged and "qq" not in logged.lower()
