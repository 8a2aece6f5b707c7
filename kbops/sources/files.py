"""File-drop readers: CSV/JSONL record files and Markdown/text policy documents.

Readers never raise on a bad row: each malformed row becomes a
:class:`Rejected` with its location and reason, and the rest of the file is
read. A rejected row names its key whenever the key can be read (even from a
line that is not valid UTF-8), so sync keeps that key's current version
instead of taking it for deleted upstream. A file that cannot be used at all
(a required column missing, a cut-off last row, a writer still rewriting it)
is one ``Rejected`` for the whole file and contributes no records, so a broken
export can never look like "everything was deleted upstream".

Files are read through :mod:`kbops.sources.snapshot` (a stable snapshot; its
hash is what the run ledger keeps).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

from kbops.sources.config import SourceConfig
from kbops.sources.snapshot import FileSnapshot, read_snapshot
from kbops.text import detect_lang, truncate

CURRENCIES = frozenset({"CNY", "HKD", "USD", "EUR", "GBP", "JPY", "TWD", "SGD"})
SHIPPING_CLASSES = frozenset({"standard", "express", "bulky", "free"})
_MAX_FIELD = 10_000


@dataclass(frozen=True)
class Parsed:
    """A well-formed upstream record."""

    key: str
    payload: dict[str, Any]
    location: str
    op: str = "upsert"
    raw_hash: str | None = None


class Unchanged(NamedTuple):
    """A row byte-identical to the current version's (recognised without parsing).

    A NamedTuple, not a dataclass: a re-sync makes one per unchanged row.
    """

    key: str
    location: str


@dataclass(frozen=True)
class Rejected:
    """A row or file refused, with the reason (shown by `kbops sync`)."""

    location: str
    reason: str
    raw: str | None = None
    whole_file: bool = False
    #: The record key, when it could be read: that key keeps its current version.
    key: str | None = None


class RowError(ValueError):
    """A field value is malformed; the message names the value and the fix."""


def snapshot_files(source: SourceConfig, keep_data: bool = True) -> list[FileSnapshot]:
    """Every file of the source, each read once as a stable snapshot (see :mod:`kbops.sources.snapshot`).

    ``keep_data=False``: hashes only (each file's bytes are dropped once hashed).
    """
    limit = source.max_document_bytes if source.type == "documents" else None
    snaps = (read_snapshot(path, source.settle_seconds, limit=limit) for path in source.files())
    return [snap if keep_data else replace(snap, data=None) for snap in snaps]


def read_records(
    source: SourceConfig, known: dict[str, str] | None = None, snapshots: list[FileSnapshot] | None = None
) -> Iterator[Parsed | Unchanged | Rejected]:
    """Rows of every record file of a ``records`` source.

    ``known`` maps keys to the raw hash of their current version; a row with
    the same key and raw hash is yielded as :class:`Unchanged`, unparsed.
    ``snapshots``: the files as already read (sync hashes and parses the same
    bytes); by default they are read here.
    """
    known = known or {}
    for snap in snapshot_files(source) if snapshots is None else snapshots:
        if snap.data is None:
            yield Rejected(snap.name, f"file is unusable: {snap.problem}", whole_file=True)
        elif snap.data and not snap.data.endswith(b"\n"):
            yield _cut_off(snap.name, "its last row has no line end")
        elif snap.path.suffix.lower() in (".jsonl", ".ndjson"):
            yield from _read_jsonl_rows(source, snap.name, snap.data, known)
        else:
            yield from _read_csv_rows(source, snap.name, snap.data, known)


def _cut_off(name: str, why: str) -> Rejected:
    return Rejected(
        name,
        f"file looks cut off ({why}), as if read while being written; nothing is read from it and no deletions are inferred. "
        "If the export is complete, end every row (the last one too) with a line break",
        whole_file=True,
    )


def _header_key(header: str) -> bytes:
    """The file's header, as a blake2b key: the same cells under other columns hash differently."""
    return hashlib.blake2b(header.encode("utf-8"), digest_size=32).digest()


def _raw_hash(header_key: bytes, values: Iterable[str]) -> str:
    return hashlib.blake2b("\x1f".join(values).encode("utf-8"), digest_size=16, key=header_key).hexdigest()


_JSONL_KEY = _header_key("jsonl")


def _checked(
    source: SourceConfig, key: str, row: dict[str, str], location: str, digest: str, known: dict[str, str]
) -> Parsed | Unchanged | Rejected:
    """Unchanged when the key's current version has this raw hash; else parse ``row``."""
    if key and known.get(key) == digest:
        return Unchanged(key, location)
    item = parse_row(source, row, location)
    return replace(item, raw_hash=digest) if isinstance(item, Parsed) else item


def _decode(data: bytes) -> tuple[str, dict[int, str]]:
    """The file's text, and the reason for each line (by number) that is not valid UTF-8.

    A bad line is decoded with replacement characters, so its other cells (the
    key, usually ASCII) can still be read; its row is refused, never parsed.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), {}
    except UnicodeDecodeError:
        pass  # find the bad lines; keep the good ones
    lines, bad = [], {}
    for n, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            lines.append(raw.decode("utf-8", errors="replace"))
            bad[n] = f"line is not valid UTF-8 ({exc.reason} at byte {exc.start}); re-export the file as UTF-8"
    return "\n".join(lines), bad


def _decode_lines(path: Path) -> tuple[list[str], list[Rejected]]:
    """A file's lines, with a :class:`Rejected` for each line that is not valid UTF-8 (kept as "" so line numbers hold).

    The chat reader's interface (it reads its files itself); record files go through :func:`_decode`.
    """
    text, bad = _decode(path.read_bytes())
    lines = [line.rstrip("\r") for line in text.split("\n")]
    for n in bad:
        lines[n - 1] = ""
    return lines, [Rejected(f"{path.name}:{n}", reason) for n, reason in bad.items()]


def _readable(key: str) -> str | None:
    """A key read from a refused row, if it is one (not empty, no undecodable bytes in it)."""
    key = key.strip()
    return key if key and "\ufffd" not in key else None


def _refused(location: str, reason: str, key: str | None, raw: str | None) -> Rejected:
    return Rejected(location, reason, raw, key=key)


def _read_csv_rows(source: SourceConfig, name: str, data: bytes, known: dict[str, str]) -> list[Parsed | Unchanged | Rejected]:
    """Every row of one CSV file, or one whole-file Rejected (a missing column, a cut-off last row).

    Returned as a list, not yielded: whether the file is usable is known only at its last row.
    """
    text, bad = _decode(data)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    missing = [c for c in _required_columns(source) if c not in header]
    if missing:
        return [
            Rejected(
                name,
                f"missing column(s) {', '.join(repr(m) for m in missing)} (header has {header}); "
                "fix the export or map the column in `fields` of the sources config",
                whole_file=True,
            )
        ]
    signature = _header_key("\x1f".join(header))
    key_index = header.index(source.column(source.key))
    width = len(header)
    out: list[Parsed | Unchanged | Rejected] = []
    last_row_partial = False
    previous = reader.line_num
    for cells in reader:
        first, previous = previous + 1, reader.line_num
        if not cells:
            continue
        location = f"{name}:{reader.line_num}"
        broken = [n for n in range(first, reader.line_num + 1) if n in bad] if bad else []
        if broken:
            key = _readable(cells[key_index]) if len(cells) > key_index else None
            out.append(_refused(f"{name}:{broken[0]}", bad[broken[0]], key, truncate(",".join(cells), 500)))
            last_row_partial = False
            continue
        if len(cells) != width:
            relation = "more" if len(cells) > width else "fewer"
            key = _readable(cells[key_index]) if len(cells) > key_index else None
            out.append(_refused(location, f"row has {len(cells)} cells, {relation} than the header's {width}", key, truncate(",".join(cells), 500)))
            last_row_partial = True
            continue
        last_row_partial = False
        # The hot path of a re-sync: most rows are byte-identical to their current version.
        digest, key = _raw_hash(signature, cells), cells[key_index].strip()
        if key and known.get(key) == digest:
            out.append(Unchanged(key, location))
            continue
        # Only changed rows get here (unchanged ones were skipped above), so the dict is never built for nothing.
        out.append(_checked(source, key, dict(zip(header, cells)), location, digest, known))
    if last_row_partial:
        return [_cut_off(name, f"its last row, line {previous}, has fewer or more cells than the header")]
    return out


_JSONL_KEY_FIELD = re.compile(r'"(?P<field>[^"\\]+)"\s*:\s*"(?P<value>[^"\\]*)"')


def _jsonl_key(source: SourceConfig, line: str) -> str | None:
    """The key of a JSONL line that cannot be parsed, if its ``"key": "value"`` pair is intact."""
    column = source.column(source.key)
    for match in _JSONL_KEY_FIELD.finditer(line):
        if match.group("field") == column:
            return _readable(match.group("value"))
    return None


def _read_jsonl_rows(source: SourceConfig, name: str, data: bytes, known: dict[str, str]) -> list[Parsed | Unchanged | Rejected]:
    """Every line of one JSONL file, or one whole-file Rejected when its last line is cut off."""
    text, bad = _decode(data)
    out: list[Parsed | Unchanged | Rejected] = []
    last_line_partial = False
    last = 0
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        location, last = f"{name}:{n}", n
        last_line_partial = False
        if n in bad:
            out.append(_refused(location, bad[n], _jsonl_key(source, line), truncate(line, 500)))
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            out.append(_refused(location, f"not valid JSON ({exc.msg} at column {exc.colno})", _jsonl_key(source, line), truncate(line, 500)))
            last_line_partial = True
            continue
        if not isinstance(row, dict):
            out.append(Rejected(location, "each JSONL line must be an object", truncate(line, 500)))
            continue
        cells = {k: "" if v is None else str(v) for k, v in row.items()}
        key = cells.get(source.column(source.key), "").strip()
        out.append(_checked(source, key, cells, location, _raw_hash(_JSONL_KEY, [line]), known))
    if last_line_partial:
        return [_cut_off(name, f"its last line, line {last}, is not complete JSON")]
    return out


def _required_columns(source: SourceConfig) -> list[str]:
    required = {"product": ["sku"], "price": ["sku", "price", "currency"]}.get(source.kind, [])
    cols = [source.column(c) for c in dict.fromkeys([source.key, *required])]
    if source.mode == "feed":
        cols.append(source.column("op"))
    return cols


def _raw(row: dict[Any, Any]) -> str:
    return truncate(json.dumps(row, ensure_ascii=False, default=str), 500)


def parse_row(source: SourceConfig, row: dict[str, str], location: str) -> Parsed | Rejected:
    """Map columns to canonical fields and check them for the source's kind.

    A refused row with a key names it (:attr:`Rejected.key`): that key keeps its current version.
    """
    inverse = source.inverse_fields
    fields = {inverse.get(col, col): (value or "").strip() for col, value in row.items() if col is not None}
    key = fields.get(source.key, "")
    named = _readable(key)
    op = "upsert"
    if source.mode == "feed":
        op = fields.pop("op", "").lower()
        if op not in ("upsert", "delete"):
            return _refused(location, f"op {op!r} is not 'upsert' or 'delete'", named, _raw(row))
    if not key:
        return Rejected(location, f"key field {source.column(source.key)!r} is empty", _raw(row))
    with_nul = [k for k, v in fields.items() if "\x00" in v]
    if with_nul:  # PostgreSQL cannot store NUL in text: refuse the row, not the batch
        return _refused(location, f"field(s) {with_nul} contain a NUL character (\\x00); remove it from the export", named and named.replace("\x00", ""), _raw(row).replace("\x00", "\\x00"))
    too_long = [k for k, v in fields.items() if len(v) > _MAX_FIELD]
    if too_long:
        return _refused(location, f"field(s) {too_long} longer than {_MAX_FIELD} characters", named if named and len(named) <= 300 else None, truncate(str(row), 500))
    if op == "delete":
        return Parsed(key=key, payload={}, location=location, op="delete")
    try:
        payload = _CHECKS.get(source.kind, _generic)(fields, source)
    except RowError as exc:
        return _refused(location, str(exc), named, _raw(row))
    return Parsed(key=key, payload=payload, location=location)


def _generic(fields: dict[str, str], source: SourceConfig | None = None) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v != ""}


def _product(fields: dict[str, str], source: SourceConfig) -> dict[str, Any]:
    out = _generic(fields)
    if not out.get("name_zh") and not out.get("name_en") and not out.get("name"):
        raise RowError("product has no name: fill name_zh or name_en")
    for numeric in ("stock", "warranty_months"):
        if numeric in out:
            out[numeric] = _non_negative_int(numeric, out[numeric])
    if "shipping_class" in out and out["shipping_class"] not in SHIPPING_CLASSES:
        raise RowError(
            f"shipping_class {out['shipping_class']!r} is not one of {', '.join(sorted(SHIPPING_CLASSES))}"
        )
    return out


def _price(fields: dict[str, str], source: SourceConfig) -> dict[str, Any]:
    out = _generic(fields)
    out["price"] = _money(out.get("price", ""), *source.price_bound())
    currency = out.get("currency", "").upper()
    if currency not in CURRENCIES:
        raise RowError(f"currency {currency or '(empty)'!r} is unknown; use one of {', '.join(sorted(CURRENCIES))}")
    out["currency"] = currency
    for bound in ("valid_from", "valid_to"):
        if bound in out:
            out[bound] = parse_time(out[bound], bound).isoformat()
    if "valid_from" in out and "valid_to" in out and out["valid_from"] >= out["valid_to"]:
        raise RowError(f"valid_from {out['valid_from']} is not before valid_to {out['valid_to']}")
    return out


_MONEY = re.compile(r"^[¥￥$€£]?\s*(\d{1,3}(?:,\d{3})*|\d+)(\.\d{1,2})?$")


def _money(raw: str, bound: Decimal, setting: str) -> str:
    """A price as a canonical decimal string ("299.00"); refuses "¥abc", "-5", "NaN", "1e308" and prices over ``bound``."""
    text = raw.strip()
    shown = repr(raw) if len(raw) <= 40 else f"{raw[:20]!r}… ({len(raw)} characters)"
    if not _MONEY.match(text):
        raise RowError(f"price {shown} is not a non-negative amount such as 299.00")
    try:
        value = Decimal(text.lstrip("¥￥$€£ ").replace(",", ""))
    except InvalidOperation:  # pragma: no cover - regex already guards
        raise RowError(f"price {shown} is not a number") from None
    if value > bound:
        raise RowError(f"price {shown} is above {setting}; fix the export, or raise that bound if the price is real")
    return f"{value:.2f}"


def _non_negative_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise RowError(f"{name} {raw!r} is not a whole number") from None
    if value < 0:
        raise RowError(f"{name} {raw!r} is negative")
    return value


def parse_time(raw: str, name: str = "time") -> datetime:
    """An ISO date or datetime; dates and naive times are read as UTC."""
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RowError(f"{name} {raw!r} is not an ISO date such as 2026-11-25 or 2026-11-25T00:00:00+08:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_CHECKS = {"product": _product, "price": _price}


# --- documents --------------------------------------------------------------------


def read_documents(source: SourceConfig, snapshots: list[FileSnapshot] | None = None) -> Iterator[Parsed | Rejected]:
    """Each Markdown / text file is one ``policy`` record keyed by its relative path.

    A document that cannot be used names its key, so the version in the KB stays.
    """
    base = source.path if source.path.is_dir() else source.path.parent
    for snap in snapshot_files(source) if snapshots is None else snapshots:
        rel = str(snap.path.relative_to(base))
        if snap.data is None:
            reason = f"document is {snap.problem}; split it or raise max_document_bytes" if "byte limit" in (snap.problem or "") else f"document is unusable: {snap.problem}"
            yield Rejected(rel, reason, whole_file=True, key=rel)
            continue
        try:
            text = snap.data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            yield Rejected(rel, f"document is not valid UTF-8 ({exc.reason} at byte {exc.start}); save it as UTF-8", whole_file=True, key=rel)
            continue
        if not text.strip():
            yield Rejected(rel, "document is empty", whole_file=True, key=rel)
            continue
        if "\x00" in text:
            yield Rejected(rel, "document contains a NUL character (\\x00), so it is not text; save it as plain UTF-8", whole_file=True, key=rel)
            continue
        if source.kind == "policy" and not any(ln.startswith("## ") for ln in text.splitlines()):
            # The policy convention (kbops.extract.policies): each "## " heading is a question. Without one the
            # document says nothing; refused with its key, so the sections of its version in the KB stay served.
            yield Rejected(
                rel,
                "policy document has no '## ' heading, so it yields no questions; write each question as a '## ' heading "
                "with its answer below (see examples/sample_store/README.md); its version in the KB, if any, is kept",
                whole_file=True,
                key=rel,
            )
            continue
        title = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("# ")), snap.path.stem)
        lang = _lang_from_name(snap.name) or detect_lang(text)
        yield Parsed(key=rel, payload={"title": title, "lang": lang, "text": text}, location=rel)


def _lang_from_name(name: str) -> str | None:
    parts = name.lower().split(".")
    return parts[-2] if len(parts) >= 3 and parts[-2] in ("zh", "en") else None
