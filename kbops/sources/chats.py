"""Chat-log readers: our JSONL format and the JDDC tab-separated format.

Both produce :class:`Session` objects whose turns are already normalised and
scrubbed of private data, so nothing private reaches the database:

* the whole session is scrubbed at once (:func:`kbops.pii.scrub_session`): a
  name the customer gives in one turn is scrubbed in every turn, both roles;

* consecutive turns by the same sender are merged;
* JDDC agents' multi-message turns (``!@@@!``) are split then re-joined;
* system lines (``用户发起转人工``, transfers), empty and ``NULL`` turns are dropped;
  a transfer marks the customer turn it follows with ``"handoff": true`` (the
  question a human had to take over: input for "unanswered topics");
* HTML/script markup and control characters are removed, so what reaches the
  review page or the index is plain text (recorded as a note);
* text is capped at ``MAX_TURN_CHARS`` and sessions at ``MAX_TURNS`` (recorded);
* SKU and timing context are kept: the session's ``sku``/``started_at`` and,
  when the log has them, each turn's ``sku`` and ``at``.

A JDDC session whose rows are not contiguous in the file is gathered into one
session (JDDC files are sorted by session, but a concatenated export is not).

JSONL: one session per line::

    {"session_id": "S0001", "lang": "zh", "sku": "LM-1001", "started_at": "2026-11-20T10:02:11+08:00",
     "turns": [{"role": "customer", "text": "在吗"}, {"role": "agent", "text": "您好"}]}
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kbops.pii import scrub, scrub_session
from kbops.sources.config import SourceConfig
from kbops.sources.files import Rejected, RowError, _decode_lines, parse_time
from kbops.text import detect_lang, truncate

MAX_TURN_CHARS = 4_000
MAX_TURNS = 400
ROLES = {"customer": "customer", "user": "customer", "0": "customer", "agent": "agent", "1": "agent", "system": "system"}
_SYSTEM_MARKERS = ("用户发起转人工", "转人工", "会话已转接", "[系统消息]", "system:")
_TRANSFER_MARKERS = ("用户发起转人工", "转人工", "会话已转接")
_SCRIPT = re.compile(r"<(script|style|iframe|object)\b[^>]*>.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>|<!--.*?-->")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class Session:
    key: str
    lang: str
    sku: str | None
    started_at: datetime | None
    turns: list[dict[str, Any]] = field(default_factory=list)
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
                extra = {k: str(t[k]) for k in ("sku", "at") if t.get(k) not in (None, "")}
                raw_turns.append((role, str(t.get("text") or ""), extra))
            yield _session(key, raw_turns, obj.get("lang"), obj.get("sku"), parse_time(started, "started_at") if started else None)
        except json.JSONDecodeError as exc:
            yield Rejected(location, f"not valid JSON ({exc.msg} at column {exc.colno})", scrub(truncate(line, 300)))
        except RowError as exc:
            yield Rejected(location, str(exc), scrub(truncate(line, 300)))


def _read_jddc(path: Path) -> Iterator[Session | Rejected]:
    """JDDC: session id, customer id, sender (0/1), transfer, repeat, SKU, text."""
    lines, bad = _decode_lines(path)
    yield from bad
    order: list[str] = []
    rows: dict[str, list[tuple[str, str, dict[str, str]]]] = {}
    skus: dict[str, str] = {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 7:
            yield Rejected(f"{path.name}:{n}", f"expected 7 tab-separated columns, found {len(cols)}", scrub(truncate(line, 300)))
            continue
        sid, _cust, sender, transfer, _repeat, row_sku = (c.strip() for c in cols[:6])
        text = "\t".join(cols[6:])
        role = ROLES.get(sender)
        if role is None:
            yield Rejected(f"{path.name}:{n}", f"sender {sender!r} is not 0 (customer) or 1 (agent)", None)
            continue
        if not sid:
            yield Rejected(f"{path.name}:{n}", "session id (column 1) is empty", scrub(truncate(line, 300)))
            continue
        if sid not in rows:
            order.append(sid)
            rows[sid] = []
        extra: dict[str, str] = {}
        if row_sku and row_sku.lower() not in ("nan", "null", "none"):
            skus[sid] = extra["sku"] = row_sku
        if transfer == "1":
            extra["transfer"] = "1"
        rows[sid].append((role, text, extra))
    for sid in order:
        yield _session(sid, rows.pop(sid), None, skus.get(sid), None)


def clean_text(text: str) -> tuple[str, bool]:
    """Plain text from a chat turn: markup and control characters removed.

    Returns the text and whether markup was found (recorded as a note). Entities
    are decoded once and any markup they spelled is removed again, so
    ``&lt;script&gt;`` cannot come back as a tag.
    """
    had_markup = False
    if "<" in text or "&" in text:
        stripped = _TAG.sub(" ", _SCRIPT.sub(" ", text))
        if "&" in stripped:
            stripped = html.unescape(stripped)
            stripped = _TAG.sub(" ", _SCRIPT.sub(" ", stripped))
        had_markup = stripped != text and ("<" in text)
        text = stripped
    text = _CONTROL.sub(" ", text)
    return text, had_markup


def _session(
    key: str, raw_turns: list[tuple[str, str, dict[str, str]]], lang: str | None, sku: object, started: datetime | None
) -> Session:
    notes: list[str] = []
    if len(raw_turns) > MAX_TURNS:
        notes.append(f"session had {len(raw_turns)} turns; kept the first {MAX_TURNS}")
        raw_turns = raw_turns[:MAX_TURNS]
    markup = 0
    kept: list[dict[str, Any]] = []  # cleaned turns, not yet scrubbed or merged
    for role, text, extra in raw_turns:
        if len(text) > MAX_TURN_CHARS * 2:
            # Cut before any regex work: a 1 MB turn must not cost a 1 MB scan per pattern.
            notes.append(f"a {role} turn of {len(text):,} characters was truncated to {MAX_TURN_CHARS:,}")
            text = text[: MAX_TURN_CHARS * 2]
            cut = True
        else:
            cut = False
        text, had_markup = clean_text(text)
        markup += had_markup
        text = " ".join(part.strip() for part in text.split("!@@@!") if part.strip())
        text = " ".join(text.split()) if "\n" in text or "  " in text else text.strip()
        transfer = extra.get("transfer") == "1" or text.startswith(_TRANSFER_MARKERS)
        if transfer:
            # The customer question just before a transfer is one a human had to take over.
            for previous in reversed(kept):
                if previous["role"] == "customer":
                    previous["handoff"] = True
                    break
        if role == "system" or not text or text.upper() == "NULL" or text.startswith(_SYSTEM_MARKERS):
            continue
        kept.append({"role": role, "text": text, "extra": extra, "cut": cut})
    # Scrub the whole session at once, before the final cut (so a cut never leaves half a phone
    # number unscrubbed): a name the customer gave ("我叫王芳") is scrubbed in every turn, the
    # agent's greeting ("王芳您好") included.
    for cleaned, text in zip(kept, scrub_session([t["text"] for t in kept])):
        cleaned["text"] = text
    turns: list[dict[str, Any]] = []
    for item in kept:
        role, text, extra = item["role"], item["text"], item["extra"]
        if len(text) > MAX_TURN_CHARS:
            if not item["cut"]:
                notes.append(f"a {role} turn of {len(text):,} characters was truncated to {MAX_TURN_CHARS:,}")
            text = text[:MAX_TURN_CHARS]
        if turns and turns[-1]["role"] == role:
            merged = turns[-1]["text"] + " " + text
            if len(merged) > MAX_TURN_CHARS:
                if len(turns[-1]["text"]) < MAX_TURN_CHARS:
                    notes.append(f"merged {role} turns exceeded {MAX_TURN_CHARS:,} characters; truncated")
                merged = merged[:MAX_TURN_CHARS]
            turns[-1]["text"] = merged
            for k in ("sku", "at"):
                if k in extra and k not in turns[-1]:
                    turns[-1][k] = extra[k]
            if item.get("handoff"):
                turns[-1]["handoff"] = True
        else:
            turn: dict[str, Any] = {"role": role, "text": text}
            turn.update({k: extra[k] for k in ("sku", "at") if k in extra})
            if item.get("handoff"):
                turn["handoff"] = True
            turns.append(turn)
    if markup:
        notes.append(f"markup (HTML/script tags) removed from {markup} turn(s); stored as plain text")
    all_text = " ".join(t["text"] for t in turns)
    return Session(
        key=key,
        lang=lang if lang in ("zh", "en") else detect_lang(all_text),
        sku=str(sku) if sku else None,
        started_at=started,
        turns=turns,
        notes=notes,
    )
