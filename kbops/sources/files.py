"""File-drop readers: CSV/JSONL record files and Markdown/text policy documents.

Readers never raise on a bad row: each malformed row becomes a
:class:`Rejected` with its location and reason, and the rest of the file is
read. A file that cannot be used at all (a required column missing, not
decodable) is one ``Rejected`` for the whole file and contributes no records,
so a broken export can never look like "everything was deleted upstream".
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


class RowError(ValueError):
    """A field value is malformed; the message names the value and the fix."""


def read_records(source: SourceConfig, known: dict[str, str] | None = None) -> Iterator[Parsed | Unchanged | Rejected]:
    """Rows of every record file of a ``records`` source.

    ``known`` maps keys to the raw hash of their current version; a row with
    the same key and raw hash is yielded as :class:`Unchanged`, unparsed.
    """
    known = known or {}
    for path in source.files():
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            yield from _read_jsonl_rows(source, path, known)
        else:
            yield from _read_csv_rows(source, path, known)


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


def _decode_lines(path: Path) -> tuple[list[str], list[Rejected]]:
    """Decode a file line by line so one badly encoded line does not sink the file."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return [line.rstrip("\r") for line in data.decode("utf-8").split("\n")], []
    except UnicodeDecodeError:
        pass  # find the bad lines; keep the good ones
    lines, bad = [], []
    for n, raw in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as exc:
            lines.append("")  # keep line numbers of later rows true
            bad.append(Rejected(f"{path.name}:{n}", f"line is not valid UTF-8 ({exc.reason} at byte {exc.start}); re-export the file as UTF-8"))
    return lines, bad


def _read_csv_rows(source: SourceConfig, path: Path, known: dict[str, str]) -> Iterator[Parsed | Unchanged | Rejected]:
    lines, bad = _decode_lines(path)
    yield from bad
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = next(reader, [])
    missing = [c for c in _required_columns(source) if c not in header]
    if missing:
        yield Rejected(
            path.name,
            f"missing column(s) {', '.join(repr(m) for m in missing)} (header has {header}); "
            "fix the export or map the column in `fields` of the sources config",
            whole_file=True,
        )
        return
    signature = _header_key("\x1f".join(header))
    key_index = header.index(source.column(source.key))
    name, width = path.name, len(header)
    for cells in reader:
        if not cells:
            continue
        if len(cells) != width:
            relation = "more" if len(cells) > width else "fewer"
            yield Rejected(f"{name}:{reader.line_num}", f"row has {len(cells)} cells, {relation} than the header's {width}", truncate(",".join(cells), 500))
            continue
        # The hot path of a re-sync: most rows are byte-identical to their current version.
        digest, key = _raw_hash(signature, cells), cells[key_index].strip()
        if key and known.get(key) == digest:
            yield Unchanged(key, f"{name}:{reader.line_num}")
            continue
        # Only changed rows get here (unchanged ones were skipped above), so the dict is never built for nothing.
        yield _checked(source, key, dict(zip(header, cells)), f"{name}:{reader.line_num}", digest, known)


def _read_jsonl_rows(source: SourceConfig, path: Path, known: dict[str, str]) -> Iterator[Parsed | Unchanged | Rejected]:
    lines, bad = _decode_lines(path)
    yield from bad
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        location = f"{path.name}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Rejected(location, f"not valid JSON ({exc.msg} at column {exc.colno})", truncate(line, 500))
            continue
        if not isinstance(row, dict):
            yield Rejected(location, "each JSONL line must be an object", truncate(line, 500))
            continue
        cells = {k: "" if v is None else str(v) for k, v in row.items()}
        key = cells.get(source.column(source.key), "").strip()
        yield _checked(source, key, cells, location, _raw_hash(_JSONL_KEY, [line]), known)


def _required_columns(source: SourceConfig) -> list[str]:
    required = {"product": ["sku"], "price": ["sku", "price", "currency"]}.get(source.kind, [])
    cols = [source.column(c) for c in dict.fromkeys([source.key, *required])]
    if source.mode == "feed":
        cols.append(source.column("op"))
    return cols


def _raw(row: dict[Any, Any]) -> str:
    return truncate(json.dumps(row, ensure_ascii=False, default=str), 500)


def parse_row(source: SourceConfig, row: dict[str, str], location: str) -> Parsed | Rejected:
    """Map columns to canonical fields and check them for the source's kind."""
    inverse = source.inverse_fields
    fields = {inverse.get(col, col): (value or "").strip() for col, value in row.items() if col is not None}
    key = fields.get(source.key, "")
    op = "upsert"
    if source.mode == "feed":
        op = fields.pop("op", "").lower()
        if op not in ("upsert", "delete"):
            return Rejected(location, f"op {op!r} is not 'upsert' or 'delete'", _raw(row))
    if not key:
        return Rejected(location, f"key field {source.column(source.key)!r} is empty", _raw(row))
    with_nul = [k for k, v in fields.items() if "\x00" in v]
    if with_nul:  # PostgreSQL cannot store NUL in text: refuse the row, not the batch
        return Rejected(location, f"field(s) {with_nul} contain a NUL character (\\x00); remove it from the export", _raw(row).replace("\x00", "\\x00"))
    too_long = [k for k, v in fields.items() if len(v) > _MAX_FIELD]
    if too_long:
        return Rejected(location, f"field(s) {too_long} longer than {_MAX_FIELD} characters", truncate(str(row), 500))
    if op == "delete":
        return Parsed(key=key, payload={}, location=location, op="delete")
    try:
        payload = _CHECKS.get(source.kind, _generic)(fields)
    except RowError as exc:
        return Rejected(location, str(exc), _raw(row))
    return Parsed(key=key, payload=payload, location=location)


def _generic(fields: dict[str, str]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v != ""}


def _product(fields: dict[str, str]) -> dict[str, Any]:
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


def _price(fields: dict[str, str]) -> dict[str, Any]:
    out = _generic(fields)
    out["price"] = _money(out.get("price", ""))
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


def _money(raw: str) -> str:
    """A price as a canonical decimal string ("299.00"); refuses "¥abc", "-5"."""
    text = raw.strip()
    if not _MONEY.match(text):
        raise RowError(f"price {raw!r} is not a non-negative amount such as 299.00")
    try:
        value = Decimal(text.lstrip("¥￥$€£ ").replace(",", ""))
    except InvalidOperation:  # pragma: no cover - regex already guards
        raise RowError(f"price {raw!r} is not a number") from None
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


def read_documents(source: SourceConfig) -> Iterator[Parsed | Rejected]:
    """Each Markdown / text file is one ``policy`` record keyed by its relative path."""
    base = source.path if source.path.is_dir() else source.path.parent
    for path in source.files():
        rel = str(path.relative_to(base))
        size = path.stat().st_size
        if size > source.max_document_bytes:
            yield Rejected(rel, f"document is {size:,} bytes, over the {source.max_document_bytes:,} byte limit; split it or raise max_document_bytes", whole_file=True)
            continue
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            yield Rejected(rel, f"document is not valid UTF-8 ({exc.reason} at byte {exc.start}); save it as UTF-8", whole_file=True)
            continue
        if not text.strip():
            yield Rejected(rel, "document is empty", whole_file=True)
            continue
        if "\x00" in text:
            yield Rejected(rel, "document contains a NUL character (\\x00), so it is not text; save it as plain UTF-8", whole_file=True)
            continue
        title = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("# ")), path.stem)
        lang = _lang_from_name(path.name) or detect_lang(text)
        yield Parsed(key=rel, payload={"title": title, "lang": lang, "text": text}, location=rel)


def _lang_from_name(name: str) -> str | None:
    parts = name.lower().split(".")
    return parts[-2] if len(parts) >= 3 and parts[-2] in ("zh", "en") else None
