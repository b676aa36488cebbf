"""Local stand-in for Snowflake's ENABLE_SCHEMA_EVOLUTION on RAW tables, and for how COPY casts a wider NUMBER.

Before the pipe's COPY of a file, RAW gains the columns the file carries that it lacks, and nothing else: Snowpipe's
schema evolution adds columns (and drops NOT NULL), it never widens a type ("Table schema evolution",
https://docs.snowflake.com/en/user-guide/data-load-schema-evolution). Without the ADD, COPY ... MATCH_BY_COLUMN_NAME
would silently drop a new column.

A file column that is a wider NUMBER than RAW's is loaded as Snowflake loads it: value by value. A value whose
integer digits fit RAW's NUMBER(p, s) loads (extra fractional digits are rounded to s by the cast); one that does not
fails the whole file ("you can't load a value into a NUMBER column if the number of digits to the left of the
decimal point exceeds the precision of the column minus its scale": "Numeric data types",
https://docs.snowflake.com/en/sql-reference/data-types-numeric), with Snowflake's error text, so the player
quarantines it like any file the pipe cannot load. Widening RAW is the deploy's job (`finsight migrate`:
snowpark.schema_evolution.widen_to_declared); then the released file loads.
"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import snowflake.connector.errors

from finsight.aws import client
from finsight.config import Environment
from snowpark.schema_evolution import columns_of, evolve_statements, number_parts, record, table_columns, widened

# Snowflake's error for a number that does not fit its column (100039, SQLSTATE 22003)
OUT_OF_RANGE_ERRNO = 100039


def arrow_to_snowflake(t: pa.DataType) -> str:
    if pa.types.is_decimal(t):
        return f"NUMBER({t.precision}, {t.scale})"
    if pa.types.is_integer(t):
        return "NUMBER(38, 0)" if t.bit_width == 64 else "NUMBER(10, 0)"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP_NTZ"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_floating(t):
        return "FLOAT"
    return "VARCHAR"


class CursorSession:
    """The two Snowpark calls schema_evolution needs (`sql(...).collect()`), over a connector cursor."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def sql(self, text: str) -> CursorSession:
        self._text = text
        return self

    def collect(self) -> list[tuple[Any, ...]]:
        self._cursor.execute(self._text)
        return self._cursor.fetchall() if self._cursor.description else []


def out_of_range(values: list[Any], column_type: str) -> Any | None:
    """The first value whose integer digits do not fit `column_type` (NUMBER(p, s)) once rounded to its scale."""
    parts = number_parts(column_type)
    if parts is None:
        return None
    precision, scale = parts
    limit = Decimal(10) ** (precision - scale)
    quantum = Decimal(1).scaleb(-scale)
    for value in values:
        if value is not None and abs(Decimal(value).quantize(quantum, rounding="ROUND_HALF_UP")) >= limit:
            return value
    return None


def check_numbers_fit(body: bytes, schema: pa.Schema, current: dict[str, str]) -> None:
    """Raise Snowflake's COPY error when a value of a column landed wider than RAW's NUMBER does not fit it."""
    wider = [f.name for f in schema if widened(current.get(f.name.upper(), ""), arrow_to_snowflake(f.type))]
    if not wider:
        return
    values = pq.read_table(io.BytesIO(body), columns=wider)  # only the wider columns are read
    for name in wider:
        bad = out_of_range(values.column(name).to_pylist(), current[name.upper()])
        if bad is not None:
            raise snowflake.connector.errors.ProgrammingError(
                msg=f"Numeric value '{bad}' is out of range", errno=OUT_OF_RANGE_ERRNO, sqlstate="22003"
            )


def columns_now(cursor: Any, tables: list[str]) -> dict[str, dict[str, str]]:
    """SCHEMA.TABLE -> {column: type} for these tables, in one query: what a drain starts its `known` from."""
    return columns_of(CursorSession(cursor), tables)


def evolve_raw_for_file(
    env: Environment, cursor: Any, target: str, key: str, known: dict[str, dict[str, str]] | None = None
) -> list[str]:
    """Make RAW table `target` (SCHEMA.TABLE) gain the columns of the landed file `key` it lacks; returns the changes.
    Raises ProgrammingError (a file error: quarantined) when a wider NUMBER value does not fit RAW's column.

    known: RAW's columns as one drain has seen them (filled and kept current here), so a drain asks the warehouse
    once per table, not once per file. The ADD is IF NOT EXISTS, and a value that does not fit is checked again
    against the warehouse (the deploy may have widened the column since), so a stale entry costs nothing."""
    body = client(env, "s3").get_object(Bucket=env.aws.s3.bucket, Key=key)["Body"].read()
    file_schema = pq.read_schema(io.BytesIO(body))
    landed = {f.name.upper(): arrow_to_snowflake(f.type) for f in file_schema}
    schema, _, table = target.partition(".")
    session = CursorSession(cursor)
    kept = (known or {}).get(target)
    current = kept if kept is not None else table_columns(session, schema, table)
    try:
        check_numbers_fit(body, file_schema, current)  # before any DDL: a refused file changes nothing
    except snowflake.connector.errors.ProgrammingError:
        if kept is None:
            raise
        current = table_columns(session, schema, table)
        check_numbers_fit(body, file_schema, current)
    added = [c for c in evolve_statements(target, current, landed) if c[0] not in current]
    for _, _, ddl in added:
        cursor.execute(ddl)
    record(session, target, added, f"file {key}")
    if known is not None:
        known[target] = {**current, **{column: landed[column] for column, _, _ in added}}
    return [f"{target}.{col}: {change}" for col, change, _ in added]
