"""The Arrow bulk path beneath the Airbyte source: one consistent snapshot, parallel key-range chunks, record batches.

Read protocol for one table:
1. A leader transaction (REPEATABLE READ) exports its snapshot and notes `read_at` (the snapshot's time) and the
   read horizon: the start of the oldest transaction still open at the source. The window's upper bound never passes
   the horizon, so a transaction that commits late is read by the next run whatever its cursor value.
2. Each chunk (a primary-key range of a large table) imports that snapshot on its own ADBC connection and streams
   `SELECT ... WHERE <window> AND <key range>` (no ORDER BY) as Arrow record batches.
3. A reader thread decodes while the caller tokenizes and writes Parquet: decode, encode and upload overlap.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from connectors.postgres.connection import (
    Credentials,
    SourceUnavailable,
    adbc_connect,
    application_name,
    connect,
    redact,
)
from connectors.postgres.schema import LiveColumn
from finsight.config import Environment, Table

PIPELINE_DEPTH = 2  # record batches in flight between the decoding thread and the writer: bounds memory
# NUMERIC(p, s) with p <= 18 travels as the integer value * 10^s (int8 on the wire): the client then skips a
# numeric -> text -> decimal round trip per value (a third of the decoding CPU on payments-shaped tables)
SCALED_MAX_PRECISION = 18

_SNAPSHOT_SQL = """
SELECT pg_export_snapshot(),
       statement_timestamp() AT TIME ZONE 'UTC',
       (SELECT min(xact_start) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
           AND xact_start IS NOT NULL AND application_name NOT LIKE %(own)s) AT TIME ZONE 'UTC',
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
         OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
"""


class HorizonInvisible(SourceUnavailable):
    """The connector's role cannot see other sessions' transactions: it could lose late-committing rows."""


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    read_at: datetime  # when the source was read: lands as _EXTRACTED_AT
    horizon: datetime | None  # start of the oldest open transaction, if any

    @property
    def upper(self) -> datetime:
        """Inclusive upper bound for cursors: never past a transaction that may still commit older cursor values."""
        return min(self.read_at, self.horizon) if self.horizon else self.read_at


@dataclass(frozen=True)
class Window:
    """Cursor window of one read: `lower <= cursor` and `cursor <= upper` (or `< upper` for [start, end) backfills)."""

    lower: datetime | None
    upper: datetime
    upper_inclusive: bool = True


@contextmanager
def open_snapshot(env: Environment, source: str, creds: Credentials) -> Iterator[tuple[Snapshot, psycopg.Connection]]:
    """Hold a REPEATABLE READ transaction whose snapshot every chunk imports; released when the read is done.

    Yields the snapshot and the leader connection: control queries (schema, key ranges, delete checks) run on it,
    inside the same snapshot as the chunks' reads.
    """
    conn = connect(env, source, creds)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        row = conn.execute(_SNAPSHOT_SQL, {"own": "finsight-connector%"}).fetchone()
        assert row is not None
        snapshot_id, read_at, horizon, sees_all = row
        if not sees_all:
            raise HorizonInvisible(
                f"source {source!r}: role cannot see other sessions' transactions; "
                "GRANT pg_read_all_stats TO the connector role, or late-committing rows could be missed"
            )
        yield Snapshot(snapshot_id, read_at, horizon), conn
    except psycopg.Error as exc:
        raise SourceUnavailable(f"source {source!r}: cannot take a snapshot: {redact(_first(exc), creds)}") from None
    finally:
        conn.close()


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ts(value: datetime) -> str:
    # our own datetimes, rendered as naive-UTC literals: no user text reaches the SQL
    return f"(TIMESTAMP '{value.isoformat(sep=' ')}' AT TIME ZONE 'UTC')"


@dataclass(frozen=True)
class ChunkQuery:
    """A chunk's SQL, and the NUMERIC columns it reads as scaled integers (name -> scale) to turn back into decimals."""

    sql: str
    scaled: Mapping[str, int] = field(default_factory=dict)

    def decode(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if not self.scaled:
            return batch
        columns = list(batch.columns)
        for i, name in enumerate(batch.schema.names):
            if (scale := self.scaled.get(name)) is not None:
                # same 16-byte unscaled integers: decimal(19, 0) viewed with the column's scale is the exact value
                columns[i] = pc.cast(columns[i], pa.decimal128(19, 0)).view(pa.decimal128(19, scale))
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def scaled_numeric(live: LiveColumn) -> int | None:
    """The scale a NUMERIC column is read at as an integer, or None when it is read as is."""
    if live.pg_type == "numeric" and live.precision is not None and live.precision <= SCALED_MAX_PRECISION:
        return live.scale or 0
    return None


def select_expression(name: str, live: LiveColumn) -> str:
    ident = quote_ident(name)
    if (scale := scaled_numeric(live)) is not None:
        return f"({ident} * {10**scale})::int8 AS {ident}"  # exact: p <= 18 digits fit int8 once scaled
    if live.pg_type == "timestamp with time zone":
        return f"({ident} AT TIME ZONE 'UTC') AS {ident}"  # naive UTC on the wire: RAW is TIMESTAMP_NTZ in UTC
    if live.pg_type in ("json", "jsonb", "uuid"):
        return f"{ident}::text AS {ident}"
    return ident


def select_sql(
    table: Table, live: dict[str, LiveColumn], window: Window, key_range: tuple[int, int] | None
) -> ChunkQuery:
    """The chunk's query: live columns the landed table has, the cursor window, the key range. No ORDER BY."""
    selected = [name for name in table.columns if name in live]
    cols = [select_expression(name, live[name]) for name in selected]
    scaled = {name: scale for name in selected if (scale := scaled_numeric(live[name])) is not None}
    cursor = live[table.cursor]
    cursor_sql = quote_ident(table.cursor)
    as_ts = _ts if cursor.pg_type == "timestamp with time zone" else (lambda v: f"TIMESTAMP '{v.isoformat(sep=' ')}'")
    where = [f"{cursor_sql} {'<=' if window.upper_inclusive else '<'} {as_ts(window.upper)}"]
    if window.lower is not None:
        where.append(f"{cursor_sql} >= {as_ts(window.lower)}")
    if key_range is not None:
        pk = quote_ident(table.primary_key[0])
        where.append(f"{pk} >= {int(key_range[0])} AND {pk} < {int(key_range[1])}")
    return ChunkQuery(f"SELECT {', '.join(cols)} FROM {quote_ident(table.name)} WHERE {' AND '.join(where)}", scaled)


def key_ranges(conn: psycopg.Connection, env: Environment, table: Table) -> list[tuple[int, int] | None]:
    """Split a large table into `chunks_per_table` primary-key ranges (single integer key only)."""
    runtime = env.connectors
    integer_key = len(table.primary_key) == 1 and table.columns[table.primary_key[0]].type in ("int", "bigint")
    if runtime.chunks_per_table == 1 or not integer_key:
        return [None]
    estimate = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", (table.name,)).fetchone()
    if estimate is None or estimate[0] < runtime.chunk_min_rows:
        return [None]
    pk = psycopg.sql.Identifier(table.primary_key[0])
    row = conn.execute(
        psycopg.sql.SQL("SELECT min({}), max({}) FROM {}").format(pk, pk, psycopg.sql.Identifier(table.name))
    ).fetchone()
    if row is None or row[0] is None:
        return [None]
    low, high = int(row[0]), int(row[1]) + 1
    step = max(1, -(-(high - low) // runtime.chunks_per_table))
    return [(start, min(start + step, high)) for start in range(low, high, step)]


def stream_chunk(
    env: Environment, source: str, creds: Credentials, snapshot_id: str, query: ChunkQuery | str
) -> Iterator[Any]:
    """Record batches of one chunk, read inside the leader's exported snapshot."""
    if isinstance(query, str):
        query = ChunkQuery(query)
    conn = adbc_connect(env, source, creds)
    try:
        cur = conn.cursor()
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot_id}'")
        cur.execute(query.sql)
        for batch in cur.fetch_record_batch():
            yield query.decode(batch)
        cur.execute("COMMIT")
    except SourceUnavailable:
        raise
    except Exception as exc:
        # a NUMERIC NaN cannot travel as a scaled integer: name the columns that do
        scaled = f" (NUMERIC read as scaled integers: {', '.join(query.scaled)})" if query.scaled else ""
        raise SourceUnavailable(f"source {source!r}: bulk read failed: {redact(_first(exc), creds)}{scaled}") from None
    finally:
        conn.close()


def pipelined(batches: Iterator[pa.RecordBatch], consume: Callable[[pa.RecordBatch], None]) -> int:
    """Decode on a thread while `consume` runs here; at most PIPELINE_DEPTH batches in flight. Returns rows."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=PIPELINE_DEPTH)
    done = object()
    failure: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        handoff.put(batch, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:
            failure.append(exc)
        finally:
            handoff.put(done)

    thread = threading.Thread(target=produce, name="finsight-decode", daemon=True)
    thread.start()
    rows = 0
    try:
        while (item := handoff.get()) is not done:
            consume(item)
            rows += item.num_rows
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                handoff.get_nowait()
            except queue.Empty:
                thread.join(0.1)
    if failure:
        raise failure[0]
    return rows


def _first(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "ChunkQuery",
    "Snapshot",
    "Window",
    "application_name",
    "key_ranges",
    "open_snapshot",
    "select_sql",
    "stream_chunk",
]
