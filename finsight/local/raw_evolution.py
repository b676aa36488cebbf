"""Local stand-in for Snowflake's ENABLE_SCHEMA_EVOLUTION on RAW tables: before the pipe's COPY of a file, RAW
gains the columns the file carries and widens the NUMBERs it carries wider (same rules as CURATED, in
snowpark/schema_evolution.py). Without it, COPY ... MATCH_BY_COLUMN_NAME would silently drop a new column.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from finsight.aws import client
from finsight.config import Environment
from snowpark.schema_evolution import evolve_statements, record, table_columns


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


class _CursorSession:
    """The two Snowpark calls schema_evolution needs (`sql(...).collect()`), over a connector cursor."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def sql(self, text: str) -> _CursorSession:
        self._text = text
        return self

    def collect(self) -> list[tuple[Any, ...]]:
        self._cursor.execute(self._text)
        return self._cursor.fetchall() if self._cursor.description else []


def evolve_raw_for_file(env: Environment, cursor: Any, target: str, key: str) -> list[str]:
    """Make RAW table `target` (SCHEMA.TABLE) hold the columns of the landed file `key`; returns the changes."""
    body = client(env, "s3").get_object(Bucket=env.aws.s3.bucket, Key=key)["Body"].read()
    landed = {f.name.upper(): arrow_to_snowflake(f.type) for f in pq.read_schema(io.BytesIO(body))}
    schema, _, table = target.partition(".")
    session = _CursorSession(cursor)
    changes = evolve_statements(target, table_columns(session, schema, table), landed)
    for _, _, ddl in changes:
        cursor.execute(ddl)
    record(session, target, changes, f"file {key}")
    return [f"{target}.{col}: {change}" for col, change, _ in changes]
