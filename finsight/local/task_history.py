"""Snowflake's task record, played locally: the SQL that reads it on Snowflake reads the local player's rows.

On Snowflake, `TABLE([<db>.]INFORMATION_SCHEMA.TASK_HISTORY(...))` (the Information Schema table function) and the
view `SNOWFLAKE.ACCOUNT_USAGE.TASK_HISTORY` are Snowflake's record of every task attempt. fakesnow has neither, so
the local graph player (tasks/runner.py) writes one row per attempt to EMULATION (a local-only table, created by the
player, never by a migration), and `rewrite` turns those two references into subqueries over it that apply the
function's arguments as Snowflake documents them:
https://docs.snowflake.com/en/sql-reference/functions/task_history and
https://docs.snowflake.com/en/sql-reference/account-usage/task_history (completed runs only).

`rewrite` is a pure sqlglot tree transform; fakesnow_compat.apply() hooks it into fakesnow's transform chain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlglot
from sqlglot import exp

from snowpark.sql_text import literal

SCHEMA = "LOCAL_INFORMATION_SCHEMA"  # local only: Snowflake's INFORMATION_SCHEMA cannot hold a table
TABLE = "TASK_HISTORY"
# the table function's columns (docs: TASK_HISTORY, Output), in its order; the player fills what it knows
COLUMNS = (
    ("QUERY_ID", "VARCHAR"),
    ("NAME", "VARCHAR"),
    ("DATABASE_NAME", "VARCHAR"),
    ("SCHEMA_NAME", "VARCHAR"),
    ("QUERY_TEXT", "VARCHAR"),
    ("CONDITION_TEXT", "VARCHAR"),
    ("STATE", "VARCHAR"),
    ("ERROR_CODE", "VARCHAR"),
    ("ERROR_MESSAGE", "VARCHAR"),
    ("SCHEDULED_TIME", "TIMESTAMP_NTZ"),
    ("QUERY_START_TIME", "TIMESTAMP_NTZ"),
    ("NEXT_SCHEDULED_TIME", "TIMESTAMP_NTZ"),
    ("COMPLETED_TIME", "TIMESTAMP_NTZ"),
    ("ROOT_TASK_ID", "VARCHAR"),
    ("GRAPH_VERSION", "NUMBER(38, 0)"),
    ("RUN_ID", "NUMBER(38, 0)"),
    ("RETURN_VALUE", "VARCHAR"),
    ("SCHEDULED_FROM", "VARCHAR"),
    ("ATTEMPT_NUMBER", "NUMBER(38, 0)"),
    ("CONFIG", "VARCHAR"),
    ("GRAPH_RUN_GROUP_ID", "VARCHAR"),
)
STATES = ("SCHEDULED", "EXECUTING", "SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED", "FAILED_AND_AUTO_SUSPENDED")
COMPLETED = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED", "FAILED_AND_AUTO_SUSPENDED")  # what the view returns
ARGUMENTS = {"SCHEDULED_TIME_RANGE_START", "SCHEDULED_TIME_RANGE_END", "RESULT_LIMIT", "TASK_NAME", "ERROR_ONLY",
             "ROOT_TASK_ID"}  # fmt: skip
DEFAULT_RESULT_LIMIT = 100
MAX_RESULT_LIMIT = 10_000


def emulation(database: str | None = None) -> str:
    return f"{database}.{SCHEMA}.{TABLE}" if database else f"{SCHEMA}.{TABLE}"


def create_statements(database: str, back_to: str) -> list[str]:
    """The emulation's schema and table, then the session back in its schema `back_to`: CREATE SCHEMA makes the new
    schema the session's current one, as on Snowflake, and the graph's tasks must run in theirs (OPS)."""
    columns = ", ".join(f"{c} {t}" for c, t in COLUMNS)
    return [
        f"CREATE SCHEMA IF NOT EXISTS {database}.{SCHEMA}",
        f"CREATE TABLE IF NOT EXISTS {emulation(database)} ({columns})",
        f"USE SCHEMA {database}.{back_to}",
    ]


def insert_statement(database: str, row: dict[str, Any]) -> str:
    """One attempt; `row` is keyed by lower-case column names, absent ones are NULL."""
    unknown = set(row) - {c.lower() for c, _ in COLUMNS}
    assert not unknown, f"not a TASK_HISTORY column: {sorted(unknown)}"
    assert row.get("state") in STATES, f"not a Snowflake task state: {row.get('state')!r}"
    values = []
    for c, _ in COLUMNS:
        v = row.get(c.lower())
        values.append(str(int(v)) if isinstance(v, int) else literal(None if v is None else str(v)))
    return f"INSERT INTO {emulation(database)} ({', '.join(c for c, _ in COLUMNS)}) VALUES ({', '.join(values)})"


def _function_call(node: exp.Expr) -> tuple[str | None, exp.Anonymous] | None:
    """`[<db>.]INFORMATION_SCHEMA.TASK_HISTORY(...)` inside TABLE(...): (database or None, the call)."""
    if not isinstance(node, exp.Dot) or not isinstance(node.expression, exp.Anonymous):
        return None
    call = node.expression
    if call.name.upper() != TABLE:
        return None
    parts = [p.name.upper() for p in node.this.flatten()] if isinstance(node.this, exp.Dot) else [node.this.name]
    parts = [p.upper() for p in parts]
    if parts[-1] != "INFORMATION_SCHEMA" or len(parts) > 2:
        return None
    return (parts[0] if len(parts) == 2 else None), call


def _kwargs(call: exp.Anonymous) -> dict[str, exp.Expr]:
    out: dict[str, exp.Expr] = {}
    for arg in call.expressions:
        if not isinstance(arg, exp.Kwarg):
            raise ValueError("TASK_HISTORY takes named arguments only (NAME => value)")
        name = arg.this.name.upper()
        if name not in ARGUMENTS:
            raise ValueError(f"TASK_HISTORY has no argument {name}; it takes {', '.join(sorted(ARGUMENTS))}")
        out[name] = arg.expression
    return out


def _function_subquery(database: str | None, call: exp.Anonymous) -> exp.Select:
    args = _kwargs(call)
    select = exp.select(*[c for c, _ in COLUMNS]).from_(emulation(database))
    if (start := args.get("SCHEDULED_TIME_RANGE_START")) is not None:
        select = select.where(exp.GTE(this=exp.column("SCHEDULED_TIME"), expression=start.copy()))
    if (end := args.get("SCHEDULED_TIME_RANGE_END")) is not None:
        select = select.where(exp.LTE(this=exp.column("SCHEDULED_TIME"), expression=end.copy()))
    if (task := args.get("TASK_NAME")) is not None:  # case-insensitive, unqualified names only
        select = select.where(exp.EQ(this=exp.Upper(this=exp.column("NAME")), expression=exp.Upper(this=task.copy())))
    if (root := args.get("ROOT_TASK_ID")) is not None:
        select = select.where(exp.EQ(this=exp.column("ROOT_TASK_ID"), expression=root.copy()))
    if (errors := args.get("ERROR_ONLY")) is not None and errors.sql().upper() == "TRUE":
        select = select.where("STATE IN ('FAILED', 'CANCELLED', 'FAILED_AND_AUTO_SUSPENDED')")
    limit = DEFAULT_RESULT_LIMIT
    if (given := args.get("RESULT_LIMIT")) is not None:
        if not (isinstance(given, exp.Literal) and given.is_int and 1 <= int(given.name) <= MAX_RESULT_LIMIT):
            raise ValueError(f"TASK_HISTORY RESULT_LIMIT must be an integer from 1 to {MAX_RESULT_LIMIT}")
        limit = int(given.name)
    # more rows than the limit: the most recent ones are returned
    return select.order_by("SCHEDULED_TIME DESC", "QUERY_START_TIME DESC").limit(limit)


def rewrite(expression: exp.Expr) -> exp.Expr:
    """TABLE([<db>.]INFORMATION_SCHEMA.TASK_HISTORY(...)) and SNOWFLAKE.ACCOUNT_USAGE.TASK_HISTORY -> the emulation."""
    if isinstance(expression, exp.TableFromRows) and (found := _function_call(expression.this)):
        database, call = found
        alias = expression.args.get("alias")
        return exp.Subquery(this=_function_subquery(database, call), alias=alias.copy() if alias else None)
    if (
        isinstance(expression, exp.Table)
        and expression.name.upper() == TABLE
        and expression.db.upper() == "ACCOUNT_USAGE"
        and expression.catalog.upper() == "SNOWFLAKE"
    ):
        states = ", ".join(f"'{s}'" for s in COMPLETED)
        select = exp.select(*[c for c, _ in COLUMNS]).from_(emulation()).where(f"STATE IN ({states})")
        return exp.Subquery(this=select, alias=exp.TableAlias(this=exp.to_identifier(expression.alias_or_name)))
    return expression


def before(transform: Callable[[exp.Expr], exp.Expr]) -> Callable[[exp.Expr], exp.Expr]:
    """`transform` preceded by `rewrite`: how fakesnow_compat.apply() puts it into fakesnow's chain."""

    def chained(expression: exp.Expr) -> exp.Expr:
        return transform(rewrite(expression))

    return chained


def rewrite_sql(sql: str) -> str:
    """For tests and `finsight sql` tools: the Snowflake text as the local warehouse runs it."""
    return sqlglot.parse_one(sql, read="snowflake").transform(rewrite).sql(dialect="snowflake")
