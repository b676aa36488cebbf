"""Reconcile CURATED with the source databases: same keys and the same value in every column ("caught up").

Every landed column is compared: plain columns by value; a PAN column by its last four digits and by its token,
which must be the keyed MAC of the source's card number under a known key version (PanTokenizer.verify).
A stale non-key column therefore counts as a difference, not only a missing key or an old cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import sql

from connectors.pci import PanTokenizer
from finsight import warehouse
from finsight.config import Environment, PciClass, Table
from finsight.local.stack import LocalStack
from finsight.secrets import read_secret


@dataclass(frozen=True)
class TableDiff:
    table: str
    source_rows: int
    curated_rows: int
    missing: int  # in source, not in curated (or different there)
    extra: int  # in curated, not in source (duplicates, undeleted or stale rows)

    @property
    def equal(self) -> bool:
        return self.source_rows == self.curated_rows and not self.missing and not self.extra


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, Decimal):
        return value.normalize()  # NUMBER(18, 2) and numeric(18, 2) may differ in trailing zeros
    return value


def _source_expression(name: str, logical: str) -> sql.Composable:
    ident = sql.Identifier(name)
    if logical == "timestamp":
        return sql.SQL("({} AT TIME ZONE 'UTC')").format(ident)  # the connector lands naive UTC
    if logical == "json":
        return sql.SQL("{}::text").format(ident)  # landed as the source's own text
    return ident


def _source_rows(stack: LocalStack, table: Table) -> list[tuple]:
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(_source_expression(c, col.type) for c, col in table.columns.items()),
        sql.Identifier(table.name),
    )
    with stack.admin_connect(table.source) as conn:
        return [tuple(_norm(v) for v in row) for row in conn.execute(query).fetchall()]


def _curated_columns(table: Table) -> list[str]:
    out = []
    for name, col in table.columns.items():
        out += [f"{name}_token", f"{name}_last4"] if col.pci is PciClass.PAN else [name]
    return [c.upper() for c in out]


def _comparable(table: Table, source: list[tuple], curated: list[tuple], tokens: PanTokenizer) -> tuple[set, set]:
    """Both sides as tuples of the source's columns; a PAN compares equal when last4 and keyed token both match."""
    names, landed = list(table.columns), _curated_columns(table)
    pans = {n for n, col in table.columns.items() if col.pci is PciClass.PAN}
    rows = [dict(zip(names, row, strict=True)) for row in source]
    clear = {tuple(r[k] for k in table.primary_key): r for r in rows}
    s = {tuple(("pan", tokens.last4(r[n]), r[n]) if n in pans else r[n] for n in names) for r in rows}
    c = set()
    for row in curated:
        r = dict(zip(landed, row, strict=True))
        pan_at_source = clear.get(tuple(r[k.upper()] for k in table.primary_key), {})
        values = []
        for n in names:
            if n not in pans:
                values.append(r[n.upper()])
                continue
            token, pan = r[f"{n}_TOKEN".upper()], pan_at_source.get(n)
            verified = pan if pan and token and tokens.verify(pan, token) else ("unverified", token) if token else None
            values.append(("pan", r[f"{n}_LAST4".upper()], verified))
        c.add(tuple(values))
    return s, c


def reconcile(env: Environment, stack: LocalStack) -> list[TableDiff]:
    tokens = PanTokenizer.from_secret(read_secret(env, env.secrets.pan_tokenization_key))
    diffs = []
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        for table in env.tables():
            cols = _curated_columns(table)
            # fakesnow 0.11 reads a NULL TIMESTAMP_NTZ back as 1970-01-01 over the connector: ask for NULL-ness too
            nulls = ", ".join(f"{c} IS NULL" for c in cols)
            cur.execute(
                f"SELECT {', '.join(cols)}, {nulls} FROM {env.snowflake.schemas['curated']}.{table.curated_name}"
            )
            curated = [
                tuple(
                    None if is_null else _norm(v) for v, is_null in zip(row[: len(cols)], row[len(cols) :], strict=True)
                )
                for row in cur.fetchall()
            ]
            source = _source_rows(stack, table)
            s, c = _comparable(table, source, curated, tokens)
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
