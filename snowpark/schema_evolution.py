"""Warehouse side of source schema evolution: RAW and CURATED follow what the connectors land, never lose a column.

- a column a batch lands that the table lacks is added (RAW: Snowflake's ENABLE_SCHEMA_EVOLUTION does this for
  Snowpipe, and only this; the local pipe player adds the columns `evolve_statements` names and nothing else;
  CURATED: MERGE_TABLE calls `evolve_curated` first);
- a NUMBER is never widened by a load: Snowpipe's schema evolution adds columns, it does not change a type ("Table
  schema evolution", https://docs.snowflake.com/en/user-guide/data-load-schema-evolution). RAW's NUMBERs are
  widened by the deploy (`widen_to_declared`, run by `finsight migrate` before schemachange) once the catalog
  declares the wider type, precision only: ALTER TABLE ... ALTER COLUMN ... SET DATA TYPE changes a NUMBER's
  precision, never its scale ("ALTER TABLE ... ALTER COLUMN",
  https://docs.snowflake.com/en/sql-reference/sql/alter-table-column). CURATED follows RAW before each MERGE;
- nothing is ever dropped: a column gone at the source keeps its history and receives NULLs.
Every change is recorded in OPS.SCHEMA_VERSIONS (table, column, change, batch/run/deploy).
See docs/runbooks/source-schema-change.md.
"""

from __future__ import annotations

import re
from typing import Any

from snowpark.sql_text import literal, literal_list

SCHEMA_VERSIONS = "OPS.SCHEMA_VERSIONS"
META = ("_BATCH_ID", "_EXTRACTED_AT", "_ROW_NUMBER", "_OP", "_MERGED_AT")
_NUMBER = re.compile(r"^NUMBER\((\d+),\s*(\d+)\)$")
_COLUMNS_SQL = (
    "SELECT table_schema, table_name, column_name, data_type, numeric_precision, numeric_scale "
    "FROM information_schema.columns WHERE table_schema IN ({schemas}) AND table_name IN ({tables}) "
    "ORDER BY table_schema, table_name, ordinal_position"
)


def snowflake_type(data_type: str, precision: int | None, scale: int | None) -> str:
    """information_schema's description -> the type text our DDL uses (NUMBER(p, s), VARCHAR, ...)."""
    if data_type in ("NUMBER", "DECIMAL", "NUMERIC") and precision is not None:
        return f"NUMBER({precision}, {scale or 0})"
    return {"TEXT": "VARCHAR", "STRING": "VARCHAR"}.get(data_type, data_type)


def number_parts(type_text: str) -> tuple[int, int] | None:
    """(precision, scale) of a `NUMBER(p, s)` type text; None for any other type."""
    m = _NUMBER.match(type_text)
    return (int(m[1]), int(m[2])) if m else None


def widened(current: str, landed: str) -> str | None:
    """The NUMBER that holds both, when `landed` does not fit `current`; None when nothing needs to change."""
    a, b = number_parts(current), number_parts(landed)
    if not (a and b):
        return None
    (p1, s1), (p2, s2) = a, b
    if s2 <= s1 and p2 - s2 <= p1 - s1:
        return None
    scale = max(s1, s2)
    return f"NUMBER({min(38, max(p1 - s1, p2 - s2) + scale)}, {scale})"


def evolve_statements(
    table: str, current: dict[str, str], landed: dict[str, str], kind: str = "TABLE"
) -> list[tuple[str, str, str]]:
    """[(column, change, DDL)] that make `table` (SCHEMA.TABLE; `kind` ICEBERG TABLE for the archive) hold what
    landed (pure: local and Snowflake)."""
    out = []
    for column, landed_type in landed.items():
        if column not in current:
            ddl = f"ALTER {kind} {table} ADD COLUMN IF NOT EXISTS {column} {landed_type}"
            out.append((column, f"added {landed_type}", ddl))
            continue
        wider = widened(current[column], landed_type)
        if wider:
            change = f"widened {current[column]} -> {wider}"
            out.append((column, change, f"ALTER {kind} {table} ALTER COLUMN {column} SET DATA TYPE {wider}"))
    return out


def columns_of(session: Any, tables: list[str]) -> dict[str, dict[str, str]]:
    """SCHEMA.TABLE -> {column: type} as the warehouse holds them now, in one query (absent: no such table)."""
    schemas, names = sorted({t.split(".")[0] for t in tables}), sorted({t.split(".")[1] for t in tables})
    rows = session.sql(_COLUMNS_SQL.format(schemas=literal_list(schemas), tables=literal_list(names))).collect()
    out: dict[str, dict[str, str]] = {}
    for schema, table, column, data_type, precision, scale in rows:
        out.setdefault(f"{schema}.{table}", {})[column] = snowflake_type(data_type, precision, scale)
    return {t: out[t] for t in tables if t in out}


def table_columns(session: Any, schema: str, table: str) -> dict[str, str]:
    return columns_of(session, [f"{schema}.{table}"]).get(f"{schema}.{table}", {})


def record(session: Any, table: str, changes: list[tuple[str, str, str]], context: str) -> None:
    if not changes:
        return
    values = ", ".join(
        f"({literal(table)}, {literal(col)}, {literal(change)}, {literal(context)}, CURRENT_TIMESTAMP())"
        for col, change, _ in changes
    )
    session.sql(
        f"INSERT INTO {SCHEMA_VERSIONS} (TABLE_NAME, COLUMN_NAME, CHANGE, CONTEXT, CHANGED_AT) VALUES {values}"
    ).collect()


def evolve_curated(session: Any, spec: dict[str, Any], run_id: str) -> list[str]:
    """Bring CURATED up to RAW's columns; return the data columns MERGE carries (catalog's plus evolved ones)."""
    raw, curated = f"RAW.{spec['raw']}", f"CURATED.{spec['curated']}"
    both = columns_of(session, [raw, curated])  # one query for the two tables
    landed = {c: t for c, t in both.get(raw, {}).items() if c not in META}
    changes = evolve_statements(curated, both.get(curated, {}), landed)
    for _, _, ddl in changes:
        session.sql(ddl).collect()
    record(session, curated, changes, f"run {run_id}")
    return [*spec["columns"], *(c for c in landed if c not in spec["columns"])]


class ScaleChangeError(RuntimeError):
    """A declared NUMBER whose scale is larger than the table's: Snowflake cannot change a NUMBER's scale in place
    (ALTER TABLE ... ALTER COLUMN), the table has to be rebuilt (docs/runbooks/source-schema-change.md)."""


def precision_widenings(table: str, current: dict[str, str], declared: dict[str, str]) -> list[tuple[str, str, str]]:
    """[(column, change, DDL)] that let `table`'s existing NUMBER columns hold every value of the `declared` type, by
    precision alone (pure). A declared scale larger than the table's raises ScaleChangeError naming every such column:
    Snowflake refuses that ALTER, and casting to the smaller scale would round the values."""
    out, refused = [], []
    for column, declared_type in declared.items():
        if column not in current:
            continue  # a column the table lacks is added by the migrations / schema evolution, not widened
        wider = widened(current[column], declared_type)
        if wider is None:
            continue
        if number_parts(wider)[1] != (number_parts(current[column]) or (0, 0))[1]:
            refused.append(f"{table}.{column} is {current[column]}, declared {declared_type}")
            continue
        change = f"widened {current[column]} -> {wider}"
        out.append((column, change, f"ALTER TABLE {table} ALTER COLUMN {column} SET DATA TYPE {wider}"))
    if refused:
        raise ScaleChangeError(
            "a NUMBER's scale cannot grow in place (Snowflake's ALTER COLUMN changes precision only): "
            + "; ".join(refused)
            + ": rebuild the table with the wider type first (docs/runbooks/source-schema-change.md)"
        )
    return out


def widen_to_declared(session: Any, declared: dict[str, dict[str, str]], context: str, apply: bool = True) -> list[str]:
    """The deploy step: widen the existing tables' NUMBERs (SCHEMA.TABLE -> {column: declared NUMBER type}) to what
    the catalog now declares, before anything is loaded with the wider type. Returns `TABLE.COLUMN: change` lines;
    with `apply` False only computes them (dry run). Raises ScaleChangeError before changing anything."""
    live = columns_of(session, list(declared))
    plans = {t: precision_widenings(t, live[t], declared[t]) for t in declared if t in live}
    lines = []
    for table, changes in plans.items():
        if apply:
            for _, _, ddl in changes:
                session.sql(ddl).collect()
            record(session, table, changes, context)
        lines += [f"{table}.{column}: {change}" for column, change, _ in changes]
    return lines
