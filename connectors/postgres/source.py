"""Airbyte-CDK source for FinSight's operational PostgreSQL databases: one incremental stream per config table.

Incremental reads take `cursor > watermark - lookback AND cursor <= snapshot_time`; the overlap re-reads rows of
transactions that committed late, and the idempotent MERGE downstream absorbs the duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import IncrementalMixin, Stream
from psycopg import sql

from finsight.config import Environment, Table
from finsight.secrets import read_secret

FETCH_ROWS = 20_000  # server-side cursor batch: bounded memory on any table size

_JSON_TYPES = {"string": "string", "int": "integer", "bigint": "integer", "bool": "boolean", "json": "object"}


def connect(env: Environment, source: str) -> psycopg.Connection:
    """Connect with the credentials in Secrets Manager; TLS with full verification outside the local stack."""
    src = env.postgres_sources[source]
    assert src.connection is not None
    conn_cfg = src.connection
    secret = read_secret(env, conn_cfg.secret)
    return psycopg.connect(
        host=conn_cfg.host,
        port=conn_cfg.port,
        dbname=conn_cfg.database,
        user=secret["username"].get_secret_value(),
        password=secret["password"].get_secret_value(),
        sslmode=conn_cfg.sslmode,
        application_name=f"finsight-connector-{source}",
        connect_timeout=15,
    )


def _select_list(table: Table) -> sql.Composed:
    cols = []
    for name, col in table.columns.items():
        ident = sql.Identifier(name)
        # naive UTC on the wire: RAW stores TIMESTAMP_NTZ in UTC
        cols.append(sql.SQL("({} AT TIME ZONE 'UTC') AS {}").format(ident, ident) if col.type == "timestamp" else ident)
    return sql.SQL(", ").join(cols)


class TableStream(Stream, IncrementalMixin):
    """One source table. State: {"cursor": "<iso timestamp>"}; slices: one window per read."""

    def __init__(self, env: Environment, table: Table, upper_bound: datetime, lower_bound: datetime | None = None):
        self.env = env
        self.table = table
        self.upper_bound = upper_bound
        self.lower_bound = lower_bound  # backfills set it; incremental reads derive it from state
        self._state: MutableMapping[str, Any] = {}

    @property
    def name(self) -> str:
        return self.table.qualified

    @property
    def primary_key(self) -> list[str]:
        return list(self.table.primary_key)

    @property
    def cursor_field(self) -> str:
        return self.table.cursor

    @property
    def state(self) -> MutableMapping[str, Any]:
        return self._state

    @state.setter
    def state(self, value: MutableMapping[str, Any]) -> None:
        self._state = dict(value)

    def get_json_schema(self) -> Mapping[str, Any]:
        props = {}
        for name, col in self.table.landed_columns().items():
            json_type = _JSON_TYPES.get(col.type, "string")
            props[name] = {"type": [json_type, "null"]}
        return {"type": "object", "properties": props}

    def window(self) -> tuple[datetime | None, datetime]:
        """(exclusive lower, inclusive upper) bounds on the cursor column for this read."""
        if self.lower_bound is not None:
            return self.lower_bound, self.upper_bound
        watermark = self._state.get("cursor")
        if watermark is None:
            return None, self.upper_bound
        lookback = timedelta(minutes=self.env.connectors.cursor_lookback_minutes)
        return datetime.fromisoformat(watermark) - lookback, self.upper_bound

    def stream_slices(self, **_: Any) -> Iterable[Mapping[str, Any] | None]:
        lower, upper = self.window()
        return [{"lower": lower, "upper": upper}]

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: list[str] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        stream_state: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any]]:
        if stream_state:
            self.state = dict(stream_state)
        window = stream_slice or next(iter(self.stream_slices()))
        lower = window["lower"] if sync_mode == SyncMode.incremental else None
        with connect(self.env, self.table.source) as conn:
            yield from self._rows(conn, lower, window["upper"])
        self._state = {"cursor": window["upper"].isoformat()}

    def _rows(self, conn: psycopg.Connection, lower: datetime | None, upper: datetime) -> Iterator[dict[str, Any]]:
        cursor_col = sql.Identifier(self.table.cursor)
        where = [sql.SQL("{} <= (%(upper)s::timestamp AT TIME ZONE 'UTC')").format(cursor_col)]
        if lower is not None:
            where.append(sql.SQL("{} > (%(lower)s::timestamp AT TIME ZONE 'UTC')").format(cursor_col))
        query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}").format(
            _select_list(self.table), sql.Identifier(self.table.name), sql.SQL(" AND ").join(where), cursor_col
        )
        names = list(self.table.columns)
        with conn.cursor(name=f"finsight_{self.table.name}") as cur:
            cur.itersize = FETCH_ROWS
            cur.execute(query, {"lower": lower, "upper": upper})
            for row in cur:
                yield dict(zip(names, row, strict=True))


def snapshot_time(env: Environment, source: str) -> datetime:
    """The source database's clock, taken once per run: the inclusive upper bound of every window."""
    with connect(env, source) as conn:
        row = conn.execute("SELECT now() AT TIME ZONE 'UTC'").fetchone()
    assert row is not None
    return row[0].replace(tzinfo=None) if row[0].tzinfo else row[0]


def read_primary_keys(env: Environment, table: Table) -> Iterator[tuple[Any, ...]]:
    """All primary keys currently in the source: diffed downstream to find hard deletes."""
    pk = sql.SQL(", ").join(sql.Identifier(c) for c in table.primary_key)
    with connect(env, table.source) as conn, conn.cursor(name=f"finsight_pk_{table.name}") as cur:
        cur.itersize = FETCH_ROWS * 5
        cur.execute(sql.SQL("SELECT {} FROM {}").format(pk, sql.Identifier(table.name)))
        yield from cur


class PostgresSource(AbstractSource):
    """The Airbyte source for one FinSight PostgreSQL database (`config` is unused: the env model is the config)."""

    def __init__(self, env: Environment, source: str) -> None:
        if source not in env.postgres_sources:
            known = ", ".join(env.postgres_sources)
            raise KeyError(f"unknown PostgreSQL source {source!r}; known: {known}")
        self.env = env
        self.source = source

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> tuple[bool, Any]:
        try:
            with connect(self.env, self.source) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            # psycopg messages never contain the password; keep only the first line
            return False, f"cannot connect to source {self.source!r}: {str(exc).splitlines()[0]}"
        return True, None

    def streams(
        self, config: Mapping[str, Any], upper_bound: datetime | None = None, lower_bound: datetime | None = None
    ) -> list[Stream]:
        upper = upper_bound or snapshot_time(self.env, self.source)
        tables = self.env.postgres_sources[self.source].tables.values()
        return [TableStream(self.env, t, upper, lower_bound) for t in tables]


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
