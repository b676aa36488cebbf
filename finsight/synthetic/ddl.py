"""Source DDL derived from the catalog: nobody writes CREATE TABLE for the synthetic sources by hand."""

from __future__ import annotations

import re
from collections.abc import Callable

import psycopg
from psycopg import sql

from finsight.config import Environment, Table

Connect = Callable[[str], psycopg.Connection]

_SIMPLE_TYPES = {
    "string": "text",
    "int": "integer",
    "bigint": "bigint",
    "bool": "boolean",
    "timestamp": "timestamptz",
    "date": "date",
    "json": "jsonb",
}
_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")


def pg_type(logical: str) -> sql.Composable:
    if logical in _SIMPLE_TYPES:
        return sql.SQL(_SIMPLE_TYPES[logical])
    if m := _DECIMAL.match(logical):
        return sql.SQL("numeric({}, {})").format(sql.Literal(int(m[1])), sql.Literal(int(m[2])))
    raise ValueError(f"no PostgreSQL type for logical type {logical!r}")


def local_foreign_key(table: Table, column: str) -> tuple[str, str] | None:
    """(parent table, parent column) when the reference can be a real FK: same database, parent's whole PK.

    Cross-database references stay logical (PostgreSQL cannot enforce them); the pipeline checks those.
    """
    ref = table.columns[column].references
    if ref is None:
        return None
    source, parent, parent_column = ref.split(".")
    return (parent, parent_column) if source == table.source and parent != table.name else None


def creation_order(tables: list[Table]) -> list[Table]:
    """Parents before children so every FOREIGN KEY finds its target (catalog order otherwise)."""
    by_name = {t.name: t for t in tables}
    ordered: list[Table] = []
    seen: set[str] = set()

    def visit(t: Table, path: tuple[str, ...]) -> None:
        if t.name in seen:
            return
        if t.name in path:
            raise ValueError(f"reference cycle between tables: {' -> '.join((*path, t.name))}")
        for col in t.columns:
            if fk := local_foreign_key(t, col):
                visit(by_name[fk[0]], (*path, t.name))
        seen.add(t.name)
        ordered.append(t)

    for t in tables:
        visit(t, ())
    return ordered


def table_ddl(table: Table, parents: dict[str, Table]) -> list[sql.Composed]:
    """CREATE TABLE + cursor index statements (idempotent) for one table."""
    parts: list[sql.Composable] = []
    for name, col in table.columns.items():
        null = sql.SQL("") if col.nullable and name not in table.primary_key else sql.SQL(" NOT NULL")
        parts.append(sql.SQL("{} {}{}").format(sql.Identifier(name), pg_type(col.type), null))
    parts.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, table.primary_key))))
    for name in table.columns:
        fk = local_foreign_key(table, name)
        if fk and parents[fk[0]].primary_key == [fk[1]]:  # a FK must target a unique key
            parts.append(
                sql.SQL("FOREIGN KEY ({}) REFERENCES {} ({})").format(
                    sql.Identifier(name), sql.Identifier(fk[0]), sql.Identifier(fk[1])
                )
            )
    create = sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(sql.Identifier(table.name), sql.SQL(", ").join(parts))
    # the connectors filter on the cursor every hour: without this index each run is a full scan
    index = sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
        sql.Identifier(f"{table.name}_{table.cursor}_idx"[:63]),
        sql.Identifier(table.name),
        sql.Identifier(table.cursor),
    )
    return [create, index]


def create_source_tables(env: Environment, connect: Connect) -> None:
    """Create every catalog table in its source database (CREATE ... IF NOT EXISTS: safe to re-run)."""
    for source_name, source in env.postgres_sources.items():
        tables = list(source.tables.values())
        with connect(source_name) as conn:
            for table in creation_order(tables):
                for statement in table_ddl(table, source.tables):
                    conn.execute(statement)
