"""SQL table connector: any SQLAlchemy database, incremental by a watermark column.

Each run reads the rows changed since the previous run's watermark
(``updated_at >= last``: ``>=`` so rows sharing the boundary timestamp are
never missed; re-reading them is harmless because unchanged hashes change
nothing). A periodic full pass (``reconcile_every``) reads the whole table
as a snapshot, which is how hard deletes upstream are noticed. Without a
watermark every run is a full pass.

The URL, with its credentials, comes from the environment: the variable named by
``url_env``, else the one the Airflow adapter fills from the source's Airflow
Connection (``conn_id``), else that Connection in Airflow's own environment
form (``AIRFLOW_CONN_<CONN_ID>``). It is never logged (errors show it with the
password hidden). Airflow's ``postgres://`` scheme is read as ``postgresql://``
(psycopg 3, a core dependency).

A database that cannot be reached (refused, timed out, dropped, restarting) is a
:class:`~kbops.errors.TransientError`: the Airflow task is retried, and the other
sources sync meanwhile. A missing driver, a bad URL, a missing table or column
are terminal (:class:`~kbops.errors.ConfigError`, :class:`~kbops.errors.SourceError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import MetaData, Table, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, NoSuchModuleError, NoSuchTableError, OperationalError, ProgrammingError

from kbops.errors import ConfigError, SourceError, TransientError
from kbops.sources.config import SourceConfig, conn_variable
from kbops.sources.files import Parsed, Rejected, parse_row


@dataclass
class SqlPull:
    """What one pull read: parsed rows, whether it was a full pass, the new watermark."""

    items: list[Parsed | Rejected]
    full: bool
    watermark: dict[str, Any] | None


def dump_watermark(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, (int, float, Decimal)):
        return {"type": "number", "value": str(value)}
    return {"type": "text", "value": str(value)}


def load_watermark(data: Mapping[str, Any] | None) -> Any:
    if not data:
        return None
    kind, value = data["type"], data["value"]
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "number":
        return Decimal(value) if "." in value else int(value)
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


#: Seconds a PostgreSQL connection attempt may take before it counts as unreachable (transient).
CONNECT_TIMEOUT = 10


def source_url(source: SourceConfig, env: Mapping[str, str]) -> tuple[str, str]:
    """(the SQLAlchemy URL text, the variable it came from) for ``source``; ConfigError naming what to set."""
    names = [source.url_variable]
    if source.conn_id:
        names.append("AIRFLOW_CONN_" + conn_variable(source.conn_id)[len("KBOPS_CONN_"):])
    for name in names:
        raw = env.get(name, "").strip()
        if raw:
            if raw.startswith("{"):
                raise ConfigError(f"source {source.name!r}: {name} holds a JSON connection; give the Connection as a URI (postgresql://user:password@host:5432/db)")
            return ("postgresql://" + raw[len("postgres://"):] if raw.startswith("postgres://") else raw), name
    if source.url_env:
        raise ConfigError(f"source {source.name!r}: environment variable {source.url_env} is not set; set it to the SQLAlchemy URL of the store database")
    raise ConfigError(
        f"source {source.name!r}: Airflow Connection {source.conn_id!r} was not resolved: define it in Airflow "
        f"(`airflow connections add {source.conn_id} --conn-uri postgresql://…`), or outside Airflow set {names[-1]} to its URI"
    )


def read_sql(source: SourceConfig, env: Mapping[str, str], previous: Any, full: bool) -> SqlPull:
    """Pull rows; ``previous`` is the last watermark, ``full`` forces a full pass."""
    raw_url, variable = source_url(source, env)
    try:
        url = make_url(raw_url)
    except ArgumentError:
        raise ConfigError(f"source {source.name!r}: {variable} does not hold a valid SQLAlchemy URL") from None
    shown = url.render_as_string(hide_password=True)
    full = full or not source.watermark or previous is None
    connect_args = {"connect_timeout": CONNECT_TIMEOUT} if url.get_backend_name() == "postgresql" else {}
    try:
        engine = create_engine(url, connect_args=connect_args)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"source {source.name!r}: cannot use {shown}: {exc}; install its driver or fix {variable}") from None
    try:
        with engine.connect() as conn:
            items, newest = _rows(conn, source, previous, full, shown)
            return SqlPull(items=items, full=full, watermark=dump_watermark(newest if newest is not None else previous))
    except (OperationalError, InterfaceError) as exc:
        # Unreachable, refused, timed out, dropped mid-read: retry later (the task's retries).
        raise TransientError(f"source {source.name!r}: cannot read {shown}: {exc.orig}", source=source.name) from None
    except ProgrammingError as exc:
        raise SourceError(f"source {source.name!r}: the query failed on {shown}: {exc.orig}") from None
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise TransientError(f"source {source.name!r}: the connection to {shown} was lost: {exc.orig}", source=source.name) from None
        raise
    finally:
        engine.dispose()


def _rows(conn: Any, source: SourceConfig, previous: Any, full: bool, shown: str) -> tuple[list[Parsed | Rejected], Any]:
    """Parsed rows and the newest watermark value among them."""
    items: list[Parsed | Rejected] = []
    newest = None
    if source.table:
        schema, _, name = source.table.rpartition(".")
        try:
            table = Table(name, MetaData(), autoload_with=conn, schema=schema or None)
        except NoSuchTableError:
            raise SourceError(f"source {source.name!r}: table {source.table!r} does not exist in {shown}") from None
        stmt = select(table)
        if source.watermark:
            if source.watermark not in table.c:
                raise SourceError(f"source {source.name!r}: watermark column {source.watermark!r} is not in table {source.table!r} (columns: {', '.join(table.c.keys())})")
            column = table.c[source.watermark]
            if not full:
                stmt = stmt.where(column >= previous)
            stmt = stmt.order_by(column)
        result = conn.execute(stmt)
        label = source.table
    else:
        result = conn.execute(text(source.query))
        label = "query"
    for n, row in enumerate(result.mappings(), start=1):
        # The watermark column is bookkeeping, not a fact: a touched row whose
        # content did not change must hash the same.
        cells = {str(k): _cell(v) for k, v in row.items() if k != source.watermark}
        value = row.get(source.watermark) if source.watermark else None
        if value is not None and (newest is None or value > newest):
            newest = value
        items.append(parse_row(source, cells, f"{label} row {n}"))
    return items, newest
