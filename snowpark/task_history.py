"""Where task outcomes are read from: Snowflake's own record of the graph tasks, plus our record of the stages.

Graph tasks (root, merges, checks, marts, finalizer) are Snowflake tasks: their attempts are in the Information
Schema table function TASK_HISTORY (https://docs.snowflake.com/en/sql-reference/functions/task_history), never in a
table of ours. The extract and load stages run outside Snowflake (ECS connectors, Snowpipe): whoever plays them
writes their rows, in the same columns, to OPS.TASK_HISTORY. Locally the graph player writes an emulation of the
table function that the very same SQL text reads (finsight/local/task_history.py rewrites it).

Rules of the table function honoured here (same docs page):
- it returns the history of the whole account: filter by database and schema (or by a graph run group id);
- SCHEDULED_TIME_RANGE_START must lie within the last 7 days (6 days asked: no boundary error), RESULT_LIMIT is at
  most 10 000 (default 100) and keeps the most recent runs;
- with SCHEDULED_TIME_RANGE_END => CURRENT_TIMESTAMP() it returns completed and running tasks; a run due right now
  may still read SCHEDULED, hence `STATE <> 'SCHEDULED'`;
- timestamps are TIMESTAMP_LTZ there, TIMESTAMP_NTZ (UTC) in OPS.TASK_HISTORY: cast, the tasks' sessions run in UTC.
"""

from __future__ import annotations

from snowpark.sql_text import literal

STAGE_HISTORY = "OPS.TASK_HISTORY"  # stages outside Snowflake (V1.1.0)
STAGE_PREFIXES = ("EXTRACT_", "LOAD")  # stages outside Snowflake (ECS connectors, Snowpipe)
WINDOW_DAYS = 6  # the table function refuses a range start older than 7 days
RESULT_LIMIT = 10_000  # the table function's maximum
# Snowflake's task states (TASK_HISTORY docs): a graph run's task failed when its latest attempt is in FAILED_STATES
FAILED_STATES = ("FAILED", "CANCELLED", "FAILED_AND_AUTO_SUSPENDED")
NOT_SUCCEEDED = (*FAILED_STATES, "SKIPPED")
COLUMNS = (
    ("NAME", "VARCHAR"),
    ("STATE", "VARCHAR"),
    ("SCHEDULED_TIME", "TIMESTAMP_NTZ"),
    ("QUERY_START_TIME", "TIMESTAMP_NTZ"),
    ("COMPLETED_TIME", "TIMESTAMP_NTZ"),
    ("RETURN_VALUE", "VARCHAR"),
    ("ERROR_CODE", "VARCHAR"),  # NUMBER in the ACCOUNT_USAGE view, text in the function: one type for the UNION
    ("ERROR_MESSAGE", "VARCHAR"),
    ("ATTEMPT_NUMBER", "NUMBER"),
    ("GRAPH_RUN_GROUP_ID", "VARCHAR"),
    ("RUN_ID", "NUMBER"),
    ("CONFIG", "VARCHAR"),
)


def table_function(database: str | None = None, days: int = WINDOW_DAYS) -> str:
    """`TABLE([<db>.]INFORMATION_SCHEMA.TASK_HISTORY(...))`: completed and running task attempts of the last days."""
    schema = f"{database}.INFORMATION_SCHEMA" if database else "INFORMATION_SCHEMA"
    return (
        f"TABLE({schema}.TASK_HISTORY("
        f"SCHEDULED_TIME_RANGE_START => DATEADD('day', -{int(days)}, CURRENT_TIMESTAMP()), "
        f"SCHEDULED_TIME_RANGE_END => CURRENT_TIMESTAMP(), RESULT_LIMIT => {RESULT_LIMIT}))"
    )


def _select(source: str, where: str) -> str:
    columns = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in COLUMNS)
    return f"SELECT {columns} FROM {source} WHERE {where}"


def attempts(
    database: str | None = None,
    schema: str | None = None,
    stage_table: str = STAGE_HISTORY,
    graph_run_group_id: str | None = None,
    days: int = WINDOW_DAYS,
) -> str:
    """A FROM-able subquery of every task attempt (graph tasks: Snowflake's record; stages: `stage_table`)."""
    tasks = ["STATE <> 'SCHEDULED'"]
    if database:
        tasks.append(f"DATABASE_NAME = {literal(database.upper())}")
    if schema:
        tasks.append(f"SCHEMA_NAME = {literal(schema.upper())}")
    # only stage rows from our table: a task row there (written before this split) is not Snowflake's record
    stages = ["(" + " OR ".join(f"STARTSWITH(NAME, {literal(p)})" for p in STAGE_PREFIXES) + ")"]
    if graph_run_group_id is not None:
        tasks.append(f"GRAPH_RUN_GROUP_ID = {literal(graph_run_group_id)}")
        stages.append(f"GRAPH_RUN_GROUP_ID = {literal(graph_run_group_id)}")
    return (
        f"({_select(table_function(database, days), ' AND '.join(tasks))} "
        f"UNION ALL {_select(stage_table, ' AND '.join(stages))})"
    )


def latest(source: str) -> str:
    """The latest attempt of every task and stage in `source` (an `attempts()` subquery)."""
    return (
        f"SELECT * FROM {source} AS h "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY NAME ORDER BY SCHEDULED_TIME DESC, ATTEMPT_NUMBER DESC, "
        "COMPLETED_TIME DESC NULLS FIRST) = 1"
    )


def account_usage() -> str:
    """SNOWFLAKE.ACCOUNT_USAGE.TASK_HISTORY: 365 days of completed task runs (with Account Usage latency); for month
    totals, which the 7-day table function cannot give. Needs IMPORTED PRIVILEGES on the SNOWFLAKE database."""
    return "SNOWFLAKE.ACCOUNT_USAGE.TASK_HISTORY"
