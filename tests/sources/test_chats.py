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
        # consecutive customer lines merged; the row's SKU kept on the turn; the transfer
        # line (用户发起转人工, transfer flag 1) marks the customer question before it
        {"role": "customer", "text": "在吗 这个锅能用电磁炉吗", "sku": "100012", "handoff": True},
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
    # The transfer line is dropped and marks the customer question it followed as handed off.
    assert s.turns == [{"role": "customer", "text": "在吗", "handoff": True}, {"role": "agent", "text": "您好"}]


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


# --- bad input: never a crash, always a recorded reason ------------------------------


def test_jddc_session_split_across_the_file_is_one_session(tmp_path):
    rows = JDDC_SESSION[:2] + JDDC_SESSION[7:] + JDDC_SESSION[2:3]
    found = sessions(read_chats(jddc_source(write_jddc(tmp_path, rows))))
    assert set(found) == {"S1", "S2"}
    assert [t["role"] for t in found["S1"].turns] == ["customer", "agent"]


def test_jddc_truncated_line_is_quarantined_and_the_rest_read(tmp_path):
    path = tmp_path / "jddc.txt"
    good = "\n".join("\t".join(r) for r in JDDC_SESSION)
    path.write_text(good + "\nS3\tU3\t0\t0", encoding="utf-8")  # cut off mid-row, no newline
    items = list(read_chats(jddc_source(path)))
    [rej] = rejected(items)
    assert rej.location == f"jddc.txt:{len(JDDC_SESSION) + 1}" and "found 4" in rej.reason
    assert set(sessions(items)) == {"S1", "S2"}


def test_jddc_line_in_another_encoding_is_quarantined(tmp_path):
    path = tmp_path / "jddc.txt"
    lines = ["\t".join(r).encode("utf-8") for r in JDDC_SESSION]
    lines.insert(1, "\t".join(["S1", "U1", "0", "0", "0", "nan", "发票怎么开"]).encode("gbk"))
    path.write_bytes(b"\n".join(lines) + b"\n")
    items = list(read_chats(jddc_source(path)))
    [rej] = rejected(items)
    assert rej.location == "jddc.txt:2" and "UTF-8" in rej.reason
    assert set(sessions(items)) == {"S1", "S2"}


def test_jddc_ten_thousand_turn_session_and_one_megabyte_turn(tmp_path):
    rows = [["BIG", "U9", str(i % 2), "0", "0", "nan", f"第{i}句"] for i in range(10_000)]
    rows.insert(1, ["BIG", "U9", "1", "0", "0", "nan", "好" * 1_000_000])
    items = list(read_chats(jddc_source(write_jddc(tmp_path, rows))))
    [s] = sessions(items).values()
    assert len(s.turns) <= MAX_TURNS
    assert all(len(t["text"]) <= MAX_TURN_CHARS for t in s.turns)
    assert any("10001 turns" in n for n in s.notes) and any("1,000,000" in n for n in s.notes)


@pytest.mark.parametrize(
    "text",
    [
        '<script>alert("x")</script>能开发票吗？',
        '能开发票吗？<img src=x onerror="alert(1)">',
        "&lt;script&gt;alert(1)&lt;/script&gt;能开发票吗？",
        '<a href="javascript:alert(1)">能开发票吗？</a>',
        "<SCRIPT>document.cookie",
    ],
)
def test_markup_in_customer_text_is_stored_as_plain_text(tmp_path, text):
    line = {"session_id": "H1", "turns": [{"role": "customer", "text": text}, {"role": "agent", "text": "可以的"}]}
    [s] = read_chats(jsonl_source(write_jsonl(tmp_path, [line])))
    stored = s.turns[0]["text"] if s.turns[0]["role"] == "customer" else ""
    assert "<" not in stored and ">" not in stored and "script" not in stored.lower()
    assert any("markup" in n for n in s.notes) or "&lt;" in text
    if "能开发票吗" in text:
        assert "能开发票吗" in stored


def test_control_characters_are_removed(tmp_path):
    line = {"session_id": "C1", "turns": [{"role": "customer", "text": "能开\x00发票\x1b吗"}, {"role": "agent", "text": "可以"}]}
    [s] = read_chats(jsonl_source(write_jsonl(tmp_path, [line])))
    assert s.turns[0]["text"] == "能开 发票 吗"


def test_jsonl_turn_timing_and_sku_are_kept(tmp_path):
    line = {
        "session_id": "T1",
        "turns": [
            {"role": "customer", "text": "Does the LM-1001 fit a 5 litre pot?", "sku": "LM-1001", "at": "2026-11-20T10:02:11+08:00"},
            {"role": "agent", "text": "Yes, it does.", "at": "2026-11-20T10:02:40+08:00"},
        ],
    }
    [s] = read_chats(jsonl_source(write_jsonl(tmp_path, [line])))
    assert s.turns[0]["sku"] == "LM-1001" and s.turns[0]["at"] == "2026-11-20T10:02:11+08:00"
    assert s.turns[1]["at"] == "2026-11-20T10:02:40+08:00"


def test_private_data_in_a_session_never_reaches_the_turns(tmp_path):
    line = {
        "session_id": "P1",
        "turns": [
            {"role": "customer", "text": "我叫王小明，手机13812345678，地址上海市浦东新区张江路88号3栋1201"},
            {"role": "agent", "text": "王先生您好，已记录"},
            {"role": "customer", "text": "My name is Daniel Hughes, email daniel.h@example.com, card 6222021234567890"},
        ],
    }
    [s] = read_chats(jsonl_source(write_jsonl(tmp_path, [line])))
    stored = json.dumps(s.turns, ensure_ascii=False)
    for value in ("王小明", "13812345678", "张江路", "王先生", "Daniel", "Hughes", "daniel.h@example.com", "6222021234567890"):
        assert value not in stored


def test_a_name_the_customer_gives_is_scrubbed_in_the_agents_turns_too(tmp_path):
    """Issue 12: "王芳您好" survived after "我叫王芳" was scrubbed; a name once known is scrubbed in the whole session."""
    line = {
        "session_id": "N1",
        "turns": [
            {"role": "customer", "text": "我叫王芳，刚下的单"},
            {"role": "agent", "text": "王芳您好，很高兴为您服务"},
            {"role": "customer", "text": "座机010-62345678，微信号 lumi_fan88"},
            {"role": "agent", "text": "好的王芳，已为您备注"},
        ],
    }
    [s] = read_chats(jsonl_source(write_jsonl(tmp_path, [line])))
    assert [t["text"] for t in s.turns] == ["我叫[NAME]，刚下的单", "[NAME]您好，很高兴为您服务", "座机[PHONE]，微信号 [WECHAT]", "好的[NAME]，已为您备注"]


def test_full_width_private_data_is_scrubbed_in_jddc_turns(tmp_path):
    rows = [["F1", "U1", "0", "0", "0", "nan", "手机１３８１２３４５６７８，邮箱ｘｘ＠ｑｑ．ｃｏｍ"], ["F1", "U1", "1", "0", "0", "nan", "收到"]]
    [s] = sessions(read_chats(jddc_source(write_jddc(tmp_path, rows)))).values()
    assert s.turns[0]["text"] == "手机[PHONE]，邮箱[EMAIL]"
