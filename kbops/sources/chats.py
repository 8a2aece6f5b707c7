"""Chat-log readers: our JSONL format and the JDDC tab-separated format.

Both produce :class:`Session` objects whose turns are already normalised and
scrubbed of private data, so nothing private reaches the database:

* consecutive turns by the same sender are merged;
* JDDC agents' multi-message turns (``!@@@!``) are split then re-joined;
* system lines (``用户发起转人工``, transfers), empty and ``NULL`` turns are dropped;
* text is capped at ``MAX_TURN_CHARS`` and sessions at ``MAX_TURNS`` (recorded).

JSONL: one session per line::

    {"session_id": "S0001", "lang": "zh", "sku": "LM-1001", "started_at": "2026-11-20T10:02:11+08:00",
     "turns": [{"role": "customer", "text": "在吗"}, {"role": "agent", "text": "您好"}]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator

from kbops.pii import scrub
from kbops.sources.config import SourceConfig
from kbops.sources.files import Rejected, RowError, _decode_lines, parse_time
from kbops.text import detect_lang, truncate

MAX_TURN_CHARS = 4_000
MAX_TURNS = 400
ROLES = {"customer": "customer", "user": "customer", "0": "customer", "agent": "agent", "1": "agent", "system": "system"}
_SYSTEM_MARKERS = ("用户发起转人工", "转人工", "会话已转接", "[系统消息]", "system:")


@dataclass
class Session:
    key: str
    lang: str
    sku: str | None
    started_at: datetime | None
    turns: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_chats(source: SourceConfig) -> Iterator[Session | Rejected]:
    reader = _read_jddc if source.format == "jddc" else _read_jsonl
    for path in source.files():
        yield from reader(path)


def _read_jsonl(path: Path) -> Iterator[Session | Rejected]:
    lines, bad = _decode_lines(path)
    yield from bad
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        location = f"{path.name}:{n}"
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise RowError("each line must be a JSON object (one session)")
            key = str(obj.get("session_id") or "").strip()
            if not key:
                raise RowError("session_id is missing")
            turns = obj.get("turns")
            if not isinstance(turns, list):
                raise RowError("turns must be a list of {role, text} objects")
            started = obj.get("started_at")
            raw_turns = []
            for t in turns:
                if not isinstance(t, dict):
                    raise RowError("each turn must be an object with role and text")
                role = ROLES.get(str(t.get("role", "")).lower())
                if role is None:
                    raise RowError(f"turn role {t.get('role')!r} is not customer, agent or system")
                raw_turns.append((role, str(t.get("text") or "")))
            yield _session(key, raw_turns, obj.get("lang"), obj.get("sku"), parse_time(started, "started_at") if started else None)
        except json.JSONDecodeError as exc:
            yield Rejected(location, f"not valid JSON ({exc.msg} at column {exc.colno})", scrub(truncate(line, 300)))
        except RowError as exc:
            yield Rejected(location, str(exc), scrub(truncate(line, 300)))


def _read_jddc(path: Path) -> Iterator[Session | Rejected]:
    """JDDC: session id, customer id, sender (0/1), transfer, repeat, SKU, text."""
    lines, bad = _decode_lines(path)
    yield from bad
    current: str | None = None
    sku: str | None = None
    turns: list[tuple[str, str]] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 7:
            yield Rejected(f"{path.name}:{n}", f"expected 7 tab-separated columns, found {len(cols)}", scrub(truncate(line, 300)))
            continue
        sid, _cust, sender, _transfer, _repeat, row_sku = cols[:6]
        text = "\t".join(cols[6:])
        role = ROLES.get(sender.strip())
        if role is None:
            yield Rejected(f"{path.name}:{n}", f"sender {sender!r} is not 0 (customer) or 1 (agent)", None)
            continue
        if sid != current:
            if current is not None:
                yield _session(current, turns, None, sku, None)
            current, sku, turns = sid, None, []
        if row_sku and row_sku.lower() not in ("nan", "null"):
            sku = row_sku
        turns.append((role, text))
    if current is not None:
        yield _session(current, turns, None, sku, None)


def _session(key: str, raw_turns: list[tuple[str, str]], lang: str | None, sku: object, started: datetime | None) -> Session:
    notes: list[str] = []
    turns: list[dict[str, str]] = []
    if len(raw_turns) > MAX_TURNS:
        notes.append(f"session had {len(raw_turns)} turns; kept the first {MAX_TURNS}")
        raw_turns = raw_turns[:MAX_TURNS]
    for role, text in raw_turns:
        text = " ".join(part.strip() for part in text.split("!@@@!") if part.strip())
        if role == "system" or not text or text.upper() == "NULL" or text.startswith(_SYSTEM_MARKERS):
            continue
        if len(text) > MAX_TURN_CHARS:
            notes.append(f"a {role} turn of {len(text):,} characters was truncated to {MAX_TURN_CHARS:,}")
            text = text[:MAX_TURN_CHARS]
        text = scrub(text)
        if turns and turns[-1]["role"] == role:
            turns[-1]["text"] += " " + text
        else:
            turns.append({"role": role, "text": text})
    all_text = " ".join(t["text"] for t in turns)
    return Session(
        key=key,
        lang=lang if lang in ("zh", "en") else detect_lang(all_text),
        sku=str(sku) if sku else None,
        started_at=started,
        turns=turns,
        notes=notes,
    )
