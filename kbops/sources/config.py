"""The sources config: which upstream systems kbops reads and how.

A TOML file (``KBOPS_SOURCES``) with one ``[[sources]]`` table per source::

    [[sources]]
    name = "products"        # unique; used in record refs and `--source`
    type = "records"         # records | documents | chats
    kind = "product"         # records only: product | price | <any other kind>
    path = "products.csv"    # a file, or a directory with `glob`; relative to this file
    mode = "snapshot"        # snapshot (missing = deleted upstream) | feed (op column)
    key = "sku"              # canonical field that identifies a record
    fields = { price = "Price (CNY)" }   # canonical name = column in the file
    max_delete_share = 0.3   # a snapshot deleting more than this is held back

Credentials never go in this file; later connectors read them from the
environment. Paths are resolved against the config file's directory so the
file can travel with the export it describes.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbops.errors import ConfigError, SourceError

SOURCE_TYPES = ("records", "documents", "chats")
MODES = ("snapshot", "feed")
CHAT_FORMATS = ("jsonl", "jddc")


@dataclass(frozen=True)
class SourceConfig:
    """One configured source."""

    name: str
    type: str
    path: Path
    glob: str = "*"
    kind: str = ""
    mode: str = "snapshot"
    key: str = "sku"
    fields: dict[str, str] = field(default_factory=dict)
    format: str = "jsonl"
    max_delete_share: float = 0.3
    max_document_bytes: int = 5_000_000

    def files(self) -> list[Path]:
        """The files this source reads now, in a stable order."""
        if self.path.is_file():
            return [self.path]
        if self.path.is_dir():
            return sorted(p for p in self.path.glob(self.glob) if p.is_file())
        raise SourceError(
            f"source {self.name!r}: path {self.path} does not exist; "
            "fix `path` in the sources config or restore the export"
        )

    def column(self, canonical: str) -> str:
        """The file's column name for a canonical field (identity unless mapped)."""
        return self.fields.get(canonical, canonical)


def load_sources(path: Path) -> list[SourceConfig]:
    """Parse and check the sources config file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"sources config {path} does not exist; check KBOPS_SOURCES") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"sources config {path} is not valid TOML: {exc}") from None
    raw = data.get("sources")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"sources config {path} has no [[sources]] tables")
    seen: set[str] = set()
    out = []
    for item in raw:
        out.append(_source(item, path.parent))
        if out[-1].name in seen:
            raise ConfigError(f"sources config {path}: source name {out[-1].name!r} is used twice")
        seen.add(out[-1].name)
    return out


_ALLOWED = {
    "name", "type", "path", "glob", "kind", "mode", "key", "fields", "format",
    "max_delete_share", "max_document_bytes",
}


def _source(item: dict[str, Any], base: Path) -> SourceConfig:
    name = item.get("name")
    if not name or not isinstance(name, str):
        raise ConfigError(f"a [[sources]] table has no name: {item!r}")
    unknown = set(item) - _ALLOWED
    if unknown:
        raise ConfigError(f"source {name!r}: unknown keys {sorted(unknown)}; allowed: {sorted(_ALLOWED)}")
    stype = item.get("type")
    if stype not in SOURCE_TYPES:
        raise ConfigError(f"source {name!r}: type {stype!r} is not one of {', '.join(SOURCE_TYPES)}")
    if "path" not in item:
        raise ConfigError(f"source {name!r}: `path` is required")
    mode = item.get("mode", "snapshot")
    if mode not in MODES:
        raise ConfigError(f"source {name!r}: mode {mode!r} is not one of {', '.join(MODES)}")
    fmt = item.get("format", "jsonl")
    if stype == "chats" and fmt not in CHAT_FORMATS:
        raise ConfigError(f"source {name!r}: chat format {fmt!r} is not one of {', '.join(CHAT_FORMATS)}")
    if stype == "records" and not item.get("kind"):
        raise ConfigError(f"source {name!r}: records sources need a `kind` (product, price, …)")
    share = float(item.get("max_delete_share", 0.3))
    if not 0.0 < share <= 1.0:
        raise ConfigError(f"source {name!r}: max_delete_share={share} must be in (0, 1]")
    default_glob = {"records": "*.csv", "documents": "*.md", "chats": "*.jsonl"}[stype]
    return SourceConfig(
        name=name,
        type=stype,
        path=(base / item["path"]).resolve(),
        glob=item.get("glob", default_glob),
        kind=item.get("kind", "policy" if stype == "documents" else ""),
        mode=mode,
        key=item.get("key", "sku"),
        fields=dict(item.get("fields", {})),
        format=fmt,
        max_delete_share=share,
        max_document_bytes=int(item.get("max_document_bytes", 5_000_000)),
    )
