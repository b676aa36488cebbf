"""Reconcile CURATED with the source databases: same keys, same cursor values (what "caught up" means)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from finsight import warehouse
from finsight.config import Environment, Table
from finsight.local.stack import LocalStack


@dataclass(frozen=True)
class TableDiff:
    table: str
    source_rows: int
    curated_rows: int
    missing: int  # in source, not in curated (or older there)
    extra: int  # in curated, not in source (duplicates or undeleted rows)

    @property
    def equal(self) -> bool:
        return self.source_rows == self.curated_rows and not self.missing and not self.extra


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None, microsecond=value.microsecond)
    return value


def _source_rows(stack: LocalStack, table: Table) -> list[tuple]:
    cols = [*table.primary_key, table.cursor]
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(
            sql.SQL("({} AT TIME ZONE 'UTC')").format(sql.Identifier(c))
            if table.columns[c].type == "timestamp"
            else sql.Identifier(c)
            for c in cols
        ),
        sql.Identifier(table.name),
    )
    with stack.admin_connect(table.source) as conn:
        return [tuple(_norm(v) for v in row) for row in conn.execute(query).fetchall()]


def reconcile(env: Environment, stack: LocalStack) -> list[TableDiff]:
    diffs = []
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        for table in env.tables():
            cols = ", ".join(c.upper() for c in [*table.primary_key, table.cursor])
            cur.execute(f"SELECT {cols} FROM {env.snowflake.schemas['curated']}.{table.curated_name}")
            curated = [tuple(_norm(v) for v in row) for row in cur.fetchall()]
            source = _source_rows(stack, table)
            s, c = set(source), set(curated)
            diffs.append(TableDiff(table.qualified, len(source), len(curated), len(s - c), len(c - s)))
    return diffs


def mock_api_records(env: Environment, source: str, base: str | None = None) -> dict[str, int]:
    """stream -> records the mock API server holds now (its loopback-only admin endpoint)."""
    import requests

    assert env.local is not None
    url = base or f"http://127.0.0.1:{env.local.mock_api_port}"
    resp = requests.get(f"{url}/_admin/records", params={"source": source}, timeout=10)
    resp.raise_for_status()
    return resp.json()


def reconcile_apis(env: Environment, base: str | None = None) -> list[TableDiff]:
    """CURATED of every API stream against the mock server: one row per record, no duplicate keys."""
    diffs = []
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        for name, api in env.api_sources.items():
            held = mock_api_records(env, name, base)
            for stream in api.streams.values():
                keys = ", ".join(c.upper() for c in stream.primary_key)
                cur.execute(
                    f"SELECT COUNT(*), COUNT(DISTINCT ({keys})) "
                    f"FROM {env.snowflake.schemas['curated']}.{stream.curated_name}"
                )
                rows, distinct = cur.fetchone()
                source = held.get(stream.name, 0)
                diffs.append(TableDiff(stream.qualified, source, rows, max(0, source - distinct), rows - distinct))
    return diffs
