"""Airbyte-CDK source for FinSight's operational PostgreSQL databases: the control surface (spec, check, discover,
state, the Airbyte protocol), one incremental stream per config table.

The data itself moves on the Arrow bulk path beneath it (connectors/postgres/bulk.py, used by connectors/run.py);
`read_records` serves the Airbyte protocol from the same reads. Incremental windows are
`watermark - lookback <= cursor <= upper`, where `upper` is the source snapshot's read horizon.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import IncrementalMixin, Stream

from connectors.pan_key import tokenizer_for
from connectors.pci import PanTokenizer
from connectors.postgres.bulk import Window, open_snapshot, select_sql, stream_chunk
from connectors.postgres.connection import Credentials, SourceUnavailable, connect, credentials
from connectors.postgres.schema import live_columns
from finsight.config import Environment, PciClass, Table

_JSON_TYPES = {"string": "string", "int": "integer", "bigint": "integer", "bool": "boolean", "json": "object"}


class TableStream(Stream, IncrementalMixin):
    """One source table. State: {"cursor": "<iso timestamp>", "schema": {...}}; one window per read."""

    def __init__(
        self,
        env: Environment,
        table: Table,
        lower_bound: datetime | None = None,
        creds: Credentials | None = None,
        tokenizer: PanTokenizer | None = None,
    ) -> None:
        self.env = env
        self.table = table
        self.lower_bound = lower_bound  # backfills set it; incremental reads derive it from state
        self.creds = creds  # the protocol's `--config` credentials; None: the environment's secret
        self.tokenizer = tokenizer  # None: built from Secrets Manager on the first read
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

    def _tokenizer(self) -> PanTokenizer:
        if self.tokenizer is None:
            self.tokenizer = tokenizer_for(self.env)
        return self.tokenizer

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
        creds = self.creds or credentials(self.env, self.table.source)
        with open_snapshot(self.env, self.table.source, creds) as (snapshot, conn):
            window = self.window(snapshot.upper)
            if sync_mode != SyncMode.incremental:
                window = Window(None, window.upper)
            query = select_sql(self.table, live_columns(conn, self.table.name), window, None)
            for batch in stream_chunk(self.env, self.table.source, creds, snapshot.snapshot_id, query):
                yield from protocol_rows(self.table, batch, self._tokenizer())
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


def protocol_rows(table: Table, batch: pa.RecordBatch, tokenizer: PanTokenizer) -> list[dict[str, Any]]:
    """A bulk batch as RECORD data in the landed shape: PAN columns tokenized exactly as the landing writer does
    (`<col>_token`, `<col>_last4`), so no clear card number reaches stdout; values made JSON-safe."""
    by_name = {name.lower(): batch.column(i) for i, name in enumerate(batch.schema.names)}
    for col, spec in table.columns.items():
        if spec.pci is PciClass.PAN and col in by_name:
            by_name[f"{col}_token"], by_name[f"{col}_last4"] = tokenizer.tokenize(by_name.pop(col))
    names = [n for n in table.landed_columns() if n in by_name]
    rows = pa.Table.from_arrays([by_name[n] for n in names], names=names).to_pylist()
    return [{k: _json_safe(v) for k, v in row.items()} for row in rows]


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # exact: a float would round money
    if isinstance(value, bytes):
        return value.hex()
    return value


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
