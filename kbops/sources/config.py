"""The sources config: which upstream systems kbops reads and how.

A TOML file (``KBOPS_SOURCES``) with one ``[[sources]]`` table per source::

    [[sources]]
    name = "products"        # unique; used in record refs and `--source`
    type = "records"         # records | documents | chats | sql
    kind = "product"         # records and sql: product | price | <any other kind>
    path = "products.csv"    # a file, or a directory with `glob`; relative to this file
    mode = "snapshot"        # snapshot (missing = deleted upstream) | feed (op column)
    key = "sku"              # canonical field that identifies a record
    fields = { price = "Price (CNY)" }   # canonical name = column in the file
    max_delete_share = 0.3   # a snapshot deleting more than this is held back

A SQL table source reads any SQLAlchemy database; the URL (with its
credentials) comes from an environment variable named in the file, never
from the file itself::

    [[sources]]
    name = "erp_prices"
    type = "sql"
    kind = "price"
    url_env = "STORE_DB_URL"  # env var holding the SQLAlchemy URL
    table = "prices"          # or query = "SELECT … " (full passes only)
    key = "sku"
    watermark = "updated_at"  # incremental: rows changed since the last run
    reconcile_every = "24h"   # full pass (catches hard deletes) at most this often

Under Airflow, ``conn_id = "store_db"`` names an Airflow Connection instead:
the Airflow adapter resolves it into the ``url_env`` variable for the task
(kbops itself never imports Airflow). Paths are resolved against the config file's directory so the
file can travel with the export it describes.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from kbops.errors import ConfigError, SourceError

SOURCE_TYPES = ("records", "documents", "chats", "sql")
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
    url_env: str = ""
    conn_id: str = ""
    table: str = ""
    query: str = ""
    watermark: str = ""
    reconcile_every: float = 86_400.0

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

    @cached_property
    def inverse_fields(self) -> dict[str, str]:
        """File column → canonical field, for the mapped columns."""
        return {col: canonical for canonical, col in self.fields.items()}

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
    "max_delete_share", "max_document_bytes", "url_env", "conn_id", "table", "query", "watermark", "reconcile_every",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def _seconds(name: str, raw: Any) -> float:
    """'24h', '30m', '90s', '2d' or a number of seconds."""
    match = _DURATION.match(str(raw))
    if not match:
        raise ConfigError(f"source {name!r}: reconcile_every={raw!r} is not a duration such as 24h, 30m or 3600")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


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
    if stype == "sql":
        _check_sql(name, item)
    elif "path" not in item:
        raise ConfigError(f"source {name!r}: `path` is required")
    mode = item.get("mode", "snapshot")
    if mode not in MODES:
        raise ConfigError(f"source {name!r}: mode {mode!r} is not one of {', '.join(MODES)}")
    fmt = item.get("format", "jsonl")
    if stype == "chats" and fmt not in CHAT_FORMATS:
        raise ConfigError(f"source {name!r}: chat format {fmt!r} is not one of {', '.join(CHAT_FORMATS)}")
    if stype in ("records", "sql") and not item.get("kind"):
        raise ConfigError(f"source {name!r}: {stype} sources need a `kind` (product, price, …)")
    share = float(item.get("max_delete_share", 0.3))
    if not 0.0 < share <= 1.0:
        raise ConfigError(f"source {name!r}: max_delete_share={share} must be in (0, 1]")
    default_glob = {"records": "*.csv", "documents": "*.md", "chats": "*.jsonl", "sql": ""}[stype]
    return SourceConfig(
        name=name,
        type=stype,
        path=(base / item.get("path", ".")).resolve(),
        glob=item.get("glob", default_glob),
        kind=item.get("kind", "policy" if stype == "documents" else ""),
        mode=mode,
        key=item.get("key", "sku"),
        fields=dict(item.get("fields", {})),
        format=fmt,
        max_delete_share=share,
        max_document_bytes=int(item.get("max_document_bytes", 5_000_000)),
        url_env=item.get("url_env", ""),
        conn_id=item.get("conn_id", ""),
        table=item.get("table", ""),
        query=item.get("query", ""),
        watermark=item.get("watermark", ""),
        reconcile_every=_seconds(name, item.get("reconcile_every", 86_400)),
    )


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _check_sql(name: str, item: dict[str, Any]) -> None:
    if "url" in item:
        raise ConfigError(f"source {name!r}: put the database URL in an environment variable and name it in `url_env`, not in the file")
    if not item.get("url_env"):
        raise ConfigError(f"source {name!r}: sql sources need `url_env`, the environment variable holding the SQLAlchemy URL")
    if bool(item.get("table")) == bool(item.get("query")):
        raise ConfigError(f"source {name!r}: give exactly one of `table` or `query`")
    if item.get("table") and not _IDENT.match(item["table"]):
        raise ConfigError(f"source {name!r}: table {item['table']!r} is not a plain (schema.)table name")
    if item.get("watermark") and not item.get("table"):
        raise ConfigError(f"source {name!r}: a `watermark` needs `table` (custom queries are read in full)")
