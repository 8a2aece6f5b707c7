"""kbops.sources.chats: JDDC and JSONL chat logs become clean, scrubbed sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kbops.sources.chats import MAX_TURN_CHARS, MAX_TURNS, Session, read_chats
from kbops.sources.config import SourceConfig
from kbops.sources.files import Rejected


def jddc_source(path: Path) -> SourceConfig:
    return SourceConfig(name="jddc", type="chats", path=path, format="jddc", glob="*.txt")


def jsonl_source(path: Path) -> SourceConfig:
    return SourceConfig(name="chats", type="chats", path=path, format="jsonl", glob="*.jsonl")


def write_jddc(tmp_path: Path, rows: list[list[str]]) -> Path:
    path = tmp_path / "jddc.txt"
    path.write_text("\n".join("\t".join(r) for r in rows) + "\n", encoding="utf-8")
    return path


def write_jsonl(tmp_path: Path, sessions: list[dict | str]) -> Path:
    path = tmp_path / "chats.jsonl"
    lines = [s if isinstance(s, str) else json.dumps(s, ensure_ascii=False) for s in sessions]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sessions(items) -> dict[str, Session]:
    return {i.key: i for i in items if isinstance(i, Session)}


def rejected(items) -> list[Rejected]:
    return [i for i in items if isinstance(i, Rejected)]


# session id, customer id, sender (0 customer / 1 agent), transfer, repeat, sku, text
JDDC_SESSION = [
    ["S1", "U1", "0", "0", "0", "nan", "在吗"],
    ["S1", "U1", "0", "0", "0", "100012", "这个锅能用电磁炉吗"],
    ["S1", "U1", "1", "0", "0", "nan", "您好!@@@!可以的，支持电磁炉和燃气灶!@@@!"],
    ["S1", "U1", "1", "0", "0", "nan", "NULL"],
    ["S1", "U1", "0", "1", "0", "nan", "用户发起转人工"],
    ["S1", "U1", "1", "0", "0", "nan", "还有其他问题吗"],
    ["S1", "U1", "0", "0", "0", "nan", "没有了，我的手机13812345678"],
    ["S2", "U2", "0", "0", "0", "nan", "发票怎么开"],
    ["S2", "U2", "1", "0", "0", "nan", "在[订单x]详情页申请就可以"],
]


def test_jddc_turns_are_split_merged_and_cleaned(tmp_path):
    items = list(read_chats(jddc_source(write_jddc(tmp_path, JDDC_SESSION))))
    assert rejected(items) == []
    s1 = sessions(items)["S1"]
    assert s1.turns == [
        # consecutive customer lines merged
        {"role": "customer", "text": "在吗 这个锅能用电磁炉吗"},
        # !@@@! messages split and re-joined; NULL and the transfer line dropped, so the
        # next agent line is merged into the same agent turn
        {"role": "agent", "text": "您好 可以的，支持电磁炉和燃气灶 还有其他问题吗"},
        # private data scrubbed
        {"role": "customer", "text": "没有了，我的手机[PHONE]"},
    ]
    assert s1.lang == "zh"


def test_jddc_keeps_sku_and_treats_nan_as_none(tmp_path):
    found = sessions(read_chats(jddc_source(write_jddc(tmp_path, JDDC_SESSION))))
    assert found["S1"].sku == "100012"
    assert found["S2"].sku is None


def test_jddc_placeholders_are_kept(tmp_path):
    found = sessions(read_chats(jddc_source(write_jddc(tmp_path, JDDC_SESSION))))
    assert found["S2"].turns[-1] == {"role": "agent", "text": "在[订单x]详情页申请就可以"}


def test_jddc_row_with_wrong_column_count_is_rejected(tmp_path):
    rows = JDDC_SESSION[:3] + [["S1", "U1", "1", "0", "0"]] + JDDC_SESSION[3:]
    items = list(read_chats(jddc_source(write_jddc(tmp_path, rows))))
    [rej] = rejected(items)
    assert rej.location == "jddc.txt:4"
    assert "7" in rej.reason and "5" in rej.reason
    assert set(sessions(items)) == {"S1", "S2"}


def test_jddc_unknown_sender_is_rejected(tmp_path):
    rows = JDDC_SESSION + [["S2", "U2", "2", "0", "0", "nan", "???"]]
    [rej] = rejected(read_chats(jddc_source(write_jddc(tmp_path, rows))))
    assert "'2'" in rej.reason


def test_jddc_rejected_line_does_not_keep_private_data(tmp_path):
    rows = JDDC_SESSION + [["S3", "U3", "0", "手机13812345678"]]
    [rej] = rejected(read_chats(jddc_source(write_jddc(tmp_path, rows))))
    assert "13812345678" not in (rej.raw or "")


# --- JSONL ------------------------------------------------------------------------


def test_jsonl_session_is_read(tmp_path):
    path = write_jsonl(
        tmp_path,
        [
            {
                "session_id": "S0001",
                "lang": "zh",
                "sku": "LM-1001",
                "started_at": "2026-11-20T10:02:11+08:00",
                "turns": [
                    {"role": "customer", "text": "在吗"},
                    {"role": "system", "text": "会话已转接"},
                    {"role": "agent", "text": "您好"},
                ],
            }
        ],
    )
    [s] = read_chats(jsonl_source(path))
    assert s.key == "S0001" and s.sku == "LM-1001" and s.lang == "zh"
    assert s.started_at.isoformat() == "2026-11-20T10:02:11+08:00"
    assert s.turns == [{"role": "customer", "text": "在吗"}, {"role": "agent", "text": "您好"}]


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ({"session_id": "S1", "turns": [{"role": "bot", "text": "hi"}]}, "'bot'"),
        ({"session_id": "", "turns": []}, "session_id"),
        ({"session_id": "S1", "turns": "hello"}, "turns"),
        ({"session_id": "S1", "started_at": "yesterday", "turns": []}, "'yesterday'"),
        ("{not json", "JSON"),
    ],
)
def test_jsonl_bad_session_is_rejected_and_others_read(tmp_path, line, named):
    good = {"session_id": "S2", "turns": [{"role": "user", "text": "Do you ship to Hong Kong?"}]}
    items = list(read_chats(jsonl_source(write_jsonl(tmp_path, [line, good]))))
    [rej] = rejected(items)
    assert rej.location == "chats.jsonl:1"
    assert named in rej.reason
    assert list(sessions(items)) == ["S2"]
    assert sessions(items)["S2"].lang == "en"


def test_jsonl_rejected_session_does_not_keep_private_data(tmp_path):
    line = {"session_id": "S1", "turns": [{"role": "robot", "text": "电话13812345678 mail a.b@example.com"}]}
    [rej] = read_chats(jsonl_source(write_jsonl(tmp_path, [line])))
    assert isinstance(rej, Rejected)
    assert "13812345678" not in rej.raw and "a.b@example.com" not in rej.raw


def test_very_long_session_is_capped_with_a_note(tmp_path):
    turns = [{"role": "customer" if i % 2 == 0 else "agent", "text": f"turn {i}"} for i in range(10_000)]
    [s] = read_chats(jsonl_source(write_jsonl(tmp_path, [{"session_id": "LONG", "turns": turns}])))
    assert len(s.turns) == MAX_TURNS
    assert s.turns[-1]["text"] == f"turn {MAX_TURNS - 1}"
    assert any("10000" in note and str(MAX_TURNS) in note for note in s.notes)


def test_huge_turn_is_truncated_with_a_note(tmp_path):
    turns = [{"role": "customer", "text": "x" * 1_000_000}, {"role": "agent", "text": "您好，可以的"}]
    [s] = read_chats(jsonl_source(write_jsonl(tmp_path, [{"session_id": "BIG", "turns": turns}])))
    assert len(s.turns[0]["text"]) == MAX_TURN_CHARS
    assert s.turns[1]["text"] == "您好，可以的"
    assert len(s.notes) == 1 and "1,000,000" in s.notes[0]


def test_normal_session_has_no_notes(tmp_path):
    line = {"session_id": "S1", "turns": [{"role": "customer", "text": "hi"}, {"role": "agent", "text": "hello"}]}
    [s] = read_chats(jsonl_source(write_jsonl(tmp_path, [line])))
    assert s.notes == []
