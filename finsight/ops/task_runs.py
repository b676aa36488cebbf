"""Task outcomes for the operator's tools (`finsight status`, alerts, dashboard, `finsight dag task-history`).

One definition of where they come from (snowpark/task_history.py): Snowflake's own record of the graph tasks, the
Information Schema table function TASK_HISTORY of the environment's database and OPS schema, plus the rows of the
stages outside Snowflake in OPS.TASK_HISTORY. Locally the same SQL text reads the graph player's emulation.
"""

from __future__ import annotations

from finsight import catalog
from finsight.config import Environment
from snowpark import task_history


def attempts(env: Environment, graph_run_group_id: str | None = None) -> str:
    """A FROM-able subquery: every attempt of the last days, graph tasks and stages, in TASK_HISTORY's columns."""
    ops = env.snowflake.schemas["ops"]
    return task_history.attempts(
        env.snowflake.database, ops, stage_table=f"{ops}.{catalog.TASK_HISTORY_TABLE}",
        graph_run_group_id=graph_run_group_id,
    )  # fmt: skip


def latest(env: Environment) -> str:
    """The latest attempt of every task and stage, as a FROM-able subquery."""
    return f"({task_history.latest(attempts(env))})"
