"""Airbyte-CDK source for FinSight's operational PostgreSQL databases: the control surface (spec, check, discover,
state, the Airbyte protocol), one incremental stream per config table.

The data itself moves on the Arrow bulk path beneath it (connectors/postgres/bulk.py, used by connectors/run.py);
`read_records` serves the Airbyte protocol from the same reads. Incremental windows are
`watermark - lookback <= cursor <= upper`, where `upper` is the source snapshot's read horizon.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import IncrementalMixin, Stream

from connectors.postgres.bulk import Window, open_snapshot, select_sql, stream_chunk
from connectors.postgres.connection import SourceUnavailable, connect, credentials
from connectors.postgres.schema import live_columns
from finsight.config import Environment, Table

_JSON_TYPES = {"string": "string", "int": "integer", "bigint": "integer", "bool": "boolean", "json": "object"}


class TableStream(Stream, IncrementalMixin):
    """One source table. State: {"cursor": "<iso timestamp>", "schema": {...}}; one window per read."""

    def __init__(self, env: Environment, table: Table, lower_bound: datetime | None = None) -> None:
        self.env = env
        self.table = table
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

    def window(self, upper: datetime) -> Window:
        """This read's cursor window, up to `upper` (the snapshot's read horizon)."""
        if self.lower_bound is not None:
            return Window(self.lower_bound, upper)
        watermark = self._state.get("cursor")
        if watermark is None:
            return Window(None, upper)
        lookback = timedelta(minutes=self.env.connectors.cursor_lookback_minutes)
        return Window(datetime.fromisoformat(watermark) - lookback, upper)

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: list[str] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        stream_state: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any]]:
        """The Airbyte protocol's record stream, from the same snapshot-consistent bulk read (one chunk)."""
        if stream_state:
            self.state = dict(stream_state)
        creds = credentials(self.env, self.table.source)
        with open_snapshot(self.env, self.table.source, creds) as (snapshot, conn):
            window = self.window(snapshot.upper)
            if sync_mode != SyncMode.incremental:
                window = Window(None, window.upper)
            query = select_sql(self.table, live_columns(conn, self.table.name), window, None)
            for batch in stream_chunk(self.env, self.table.source, creds, snapshot.snapshot_id, query):
                yield from batch.to_pylist()
        self._state = {**self._state, "cursor": window.upper.isoformat()}


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
        except SourceUnavailable as exc:
            return False, str(exc)
        except Exception as exc:  # the query itself: keep only the first line (never a credential)
            return False, f"cannot query source {self.source!r}: {str(exc).splitlines()[0] if str(exc) else exc}"
        return True, None

    def streams(self, config: Mapping[str, Any], lower_bound: datetime | None = None) -> list[Stream]:
        tables = self.env.postgres_sources[self.source].tables.values()
        return [TableStream(self.env, t, lower_bound) for t in tables]


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
