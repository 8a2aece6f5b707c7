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
    max_delete_share = 0.3   # a snapshot deleting this share of the records or more is held back
    max_price = 50000        # prices above this are quarantined (default: Settings.max_price)
    settle_seconds = 0.2     # a file changed this recently is re-checked before it is read

Every key is type-checked when the file is loaded: a wrong type is one
:class:`~kbops.errors.ConfigError` naming the key, the file and the fix.

A SQL table source reads any SQLAlchemy database; the URL (with its
credentials) never sits in the file. Name either an Airflow Connection
(``conn_id``) or an environment variable (``url_env``), or both::

    [[sources]]
    name = "erp_prices"
    type = "sql"
    kind = "price"
    conn_id = "store_db"      # an Airflow Connection (UI, `airflow connections add`, AIRFLOW_CONN_STORE_DB)
    # url_env = "STORE_DB_URL"  # or/and: an env var holding the SQLAlchemy URL (wins when set)
    table = "prices"          # or query = "SELECT … " (full passes only)
    key = "sku"
    watermark = "updated_at"  # incremental: rows changed since the last run
    reconcile_every = "24h"   # full pass (catches hard deletes) at most this often

``conn_id`` alone is enough: under Airflow the adapter resolves the Connection
into :attr:`SourceConfig.url_variable` for the task (kbops itself never
imports Airflow); outside Airflow (``kbops sync``) the same Connection given in
Airflow's environment form, ``AIRFLOW_CONN_STORE_DB=postgresql://user:pw@host/db``,
is read directly. A standard ``postgresql://`` (or Airflow's ``postgres://``)
URI works: psycopg 3, SQLAlchemy's default PostgreSQL driver, is a core
dependency. Paths are resolved against the config file's directory so the
file can travel with the export it describes.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

from kbops.config import DEFAULT_MAX_PRICE, Settings
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
    #: This source's price bound from sources.toml; None: the store-wide ``Settings.max_price``.
    max_price: Decimal | None = None
    #: ``Settings.max_price``, put here by :func:`with_settings` (the readers see no Settings).
    default_max_price: Decimal = Decimal(DEFAULT_MAX_PRICE)
    settle_seconds: float = 0.2

    @property
    def url_variable(self) -> str:
        """The environment variable holding this SQL source's URL: ``url_env`` when set, else the one the
        Airflow adapter fills from ``conn_id`` (``KBOPS_CONN_<CONN_ID>``)."""
        return self.url_env or conn_variable(self.conn_id)

    def price_bound(self) -> tuple[Decimal, str]:
        """The largest price accepted, and where it is set (for the quarantine reason)."""
        if self.max_price is not None:
            return self.max_price, f"max_price {self.max_price:.2f} of source {self.name!r} (sources.toml)"
        return self.default_max_price, f"max_price {self.default_max_price:.2f} (KBOPS_MAX_PRICE or [kbops].max_price in kbops.toml, or max_price of source {self.name!r} in sources.toml)"

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


def conn_variable(conn_id: str) -> str:
    """The environment variable the Airflow adapter puts Connection ``conn_id``'s URL in (``KBOPS_CONN_STORE_DB``)."""
    return "KBOPS_CONN_" + re.sub(r"[^A-Za-z0-9]", "_", conn_id).upper()


def with_settings(source: SourceConfig, settings: Settings) -> SourceConfig:
    """``source`` with the store-wide defaults it does not set itself (the price bound)."""
    return replace(source, default_max_price=Decimal(str(settings.max_price)))


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
    for n, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise ConfigError(f"sources config {path}: entry {n} of `sources` is {item!r}, not a [[sources]] table; write each source as a [[sources]] table")
        try:
            out.append(_source(item, path.parent))
        except ConfigError as exc:
            # Every mistake names the file it is in.
            raise ConfigError(f"sources config {path}: {exc}", **exc.data) from None
        if out[-1].name in seen:
            raise ConfigError(f"sources config {path}: source name {out[-1].name!r} is used twice")
        seen.add(out[-1].name)
    return out


_ALLOWED = {
    "name", "type", "path", "glob", "kind", "mode", "key", "fields", "format", "max_delete_share", "max_document_bytes",
    "url_env", "conn_id", "table", "query", "watermark", "reconcile_every", "max_price", "settle_seconds",
}
_TEXT_KEYS = ("type", "path", "glob", "kind", "mode", "key", "format", "url_env", "conn_id", "table", "query", "watermark")
_NUMBER_KEYS = {"max_delete_share": "0.3", "max_price": "50000", "settle_seconds": "0.2"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def _seconds(name: str, raw: Any) -> float:
    """'24h', '30m', '90s', '2d' or a number of seconds."""
    match = _DURATION.match(str(raw)) if isinstance(raw, (str, int, float)) and not isinstance(raw, bool) else None
    if not match:
        raise ConfigError(f"source {name!r}: `reconcile_every` = {raw!r} must be a duration such as \"24h\", \"30m\" or 3600", key="reconcile_every")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _check_types(name: str, item: dict[str, Any]) -> None:
    """One ConfigError per wrong type, naming the key and an example of the right one."""
    for key in _TEXT_KEYS:
        if key in item and not isinstance(item[key], str):
            raise ConfigError(f"source {name!r}: `{key}` = {item[key]!r} must be a text in quotes, e.g. {key} = \"…\"", key=key)
    for key, example in _NUMBER_KEYS.items():
        value = item.get(key)
        if key in item and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"source {name!r}: `{key}` = {value!r} must be a number without quotes, e.g. {key} = {example}", key=key)
    if "max_document_bytes" in item and (isinstance(item["max_document_bytes"], bool) or not isinstance(item["max_document_bytes"], int)):
        raise ConfigError(f"source {name!r}: `max_document_bytes` = {item['max_document_bytes']!r} must be a whole number without quotes, e.g. max_document_bytes = 5000000", key="max_document_bytes")
    fields = item.get("fields", {})
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise ConfigError(f"source {name!r}: `fields` = {fields!r} must be a table of canonical name = \"file column\", e.g. fields = {{ price = \"Price (CNY)\" }}", key="fields")


def _source(item: dict[str, Any], base: Path) -> SourceConfig:
    name = item.get("name")
    if "name" in item and not isinstance(name, str):
        raise ConfigError(f"a [[sources]] table's `name` = {name!r} must be a text in quotes, e.g. name = \"products\"", key="name")
    if not name:
        raise ConfigError(f"a [[sources]] table has no `name`: {item!r}; give it one, e.g. name = \"products\"", key="name")
    unknown = set(item) - _ALLOWED
    if unknown:
        raise ConfigError(f"source {name!r}: unknown keys {sorted(unknown)}; allowed: {sorted(_ALLOWED)}")
    _check_types(name, item)
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
        raise ConfigError(f"source {name!r}: `max_delete_share` = {share} must be above 0 and at most 1, e.g. max_delete_share = 0.3", key="max_delete_share")
    max_price = Decimal(str(item["max_price"])) if "max_price" in item else None
    if max_price is not None and max_price <= 0:
        raise ConfigError(f"source {name!r}: `max_price` = {item['max_price']!r} must be a positive amount, e.g. max_price = 50000", key="max_price")
    settle = float(item.get("settle_seconds", 0.2))
    if not 0.0 <= settle <= 60.0:
        raise ConfigError(f"source {name!r}: `settle_seconds` = {settle} must be between 0 and 60, e.g. settle_seconds = 0.2", key="settle_seconds")
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
        max_price=max_price,
        settle_seconds=settle,
    )


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _check_sql(name: str, item: dict[str, Any]) -> None:
    if "url" in item:
        raise ConfigError(f"source {name!r}: keep the database URL out of the file: name an Airflow Connection in `conn_id`, or an environment variable holding the URL in `url_env`")
    if not item.get("url_env") and not item.get("conn_id"):
        raise ConfigError(
            f"source {name!r}: sql sources need `conn_id` (an Airflow Connection, e.g. conn_id = \"store_db\") "
            "or `url_env` (an environment variable holding the SQLAlchemy URL, e.g. url_env = \"STORE_DB_URL\")"
        )
    if bool(item.get("table")) == bool(item.get("query")):
        raise ConfigError(f"source {name!r}: give exactly one of `table` or `query`")
    if item.get("table") and not _IDENT.match(item["table"]):
        raise ConfigError(f"source {name!r}: table {item['table']!r} is not a plain (schema.)table name")
    if item.get("watermark") and not item.get("table"):
        raise ConfigError(f"source {name!r}: a `watermark` needs `table` (custom queries are read in full)")
