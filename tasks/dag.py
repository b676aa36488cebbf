"""The hourly Snowflake Task DAG, generated from the config (owner + docs in every task's COMMENT).

  FINSIGHT_HOURLY (root, cron) -> MERGE_<TABLE> (one per source table) -> FINSIGHT_HOURLY_FINALIZE (finalizer)

The same nodes render to CREATE TASK statements for Snowflake and drive the local runner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from finsight import catalog
from finsight.config import Environment
from snowpark import procedures
from snowpark.procedures import Procedure

ROOT = "FINSIGHT_HOURLY"
ROOT_RETRY_ATTEMPTS = 2
FINALIZER = "FINSIGHT_HOURLY_FINALIZE"
RUN_ID_EXPR = "SYSTEM$TASK_RUNTIME_INFO('CURRENT_TASK_GRAPH_RUN_GROUP_ID')"  # Snowflake's id of this graph run
MAX_LINE_LENGTH = 140  # .sqlfluff max_line_length


@dataclass(frozen=True)
class TaskNode:
    name: str
    procedure: Procedure
    args: tuple[str | None, ...]  # literal arguments; the run id is appended at run time
    after: tuple[str, ...]
    warehouse: str  # logical: load | transform
    owner: str
    comment: str

    def call_values(self, run_id_sql: str) -> list[str]:
        """The CALL's arguments as SQL text: the literal arguments with the run id expression inserted."""
        from snowpark.sql_text import literal

        values = [literal(a) for a in self.args]
        values.insert(1 if self.procedure is procedures.MERGE_TABLE else 0, run_id_sql)
        return values

    def call_sql(self, run_id_sql: str) -> str:
        return f"CALL {self.procedure.name}({', '.join(self.call_values(run_id_sql))})"

    def local_args(self, run_id: str) -> list[str | None]:
        values: list[str | None] = list(self.args)
        values.insert(1 if self.procedure is procedures.MERGE_TABLE else 0, run_id)
        return values


def snowflake_cron(eventbridge_cron: str, timezone: str) -> str:
    """EventBridge `m h dom mon dow year` -> Snowflake `USING CRON m h dom mon dow tz`."""
    fields = eventbridge_cron.split()[:5]
    return "USING CRON " + " ".join("*" if f == "?" else f for f in fields) + f" {timezone}"


def build_dag(env: Environment) -> list[TaskNode]:
    nodes = [
        TaskNode(ROOT, procedures.START_RUN, (), (), "transform", "@finsight/data-engineering @finsight/devops",
                 "Hourly root: opens the run in OPS.PIPELINE_RUNS"),
    ]  # fmt: skip
    for table in env.warehouse_tables():
        spec = json.dumps(catalog.table_spec(table), separators=(",", ":"))
        owner = env.source(table.source).owner
        nodes.append(
            TaskNode(
                f"MERGE_{table.raw_name}",
                procedures.MERGE_TABLE,
                (spec, None),
                (ROOT,),
                "load",
                owner,
                f"RAW -> CURATED merge of {table.qualified}",
            )
        )
    nodes.append(
        TaskNode(
            FINALIZER,
            procedures.FINALIZE_RUN,
            (),
            (),
            "transform",
            "@finsight/data-engineering @finsight/devops",
            "Finalizer: closes the run, fails (and alerts) when any task failed",
        )
    )
    return nodes


def _call_block(node: TaskNode) -> str:
    """The task body, one argument per line when there are several (what sqlfluff and reviewers read)."""
    values = node.call_values(RUN_ID_EXPR)
    if len(values) == 1:
        return f"    CALL {node.procedure.name}({values[0]})"
    lines = [f"        {v}," for v in values[:-1]] + [f"        {values[-1]}"]
    # the MERGE spec is one JSON literal that grows with the column list: it cannot be wrapped
    lines = [f"{line}  -- noqa: LT05" if len(line) > MAX_LINE_LENGTH else line for line in lines]
    return f"    CALL {node.procedure.name}(\n" + "\n".join(lines) + "\n    )"


def render_sql(env: Environment) -> str:
    """CREATE TASK statements for the whole graph, children resumed before the root (Snowflake's rule).

    Clauses follow the order of Snowflake's CREATE TASK reference (AFTER last), one per line.
    """
    ops = env.snowflake.schemas["ops"]
    statements = []
    for node in build_dag(env):
        clauses = [f"WAREHOUSE = {env.snowflake.warehouse_name(node.warehouse)}"]
        if node.name == ROOT:
            clauses.append(f"SCHEDULE = '{snowflake_cron(env.schedule.hourly_cron, env.schedule.timezone)}'")
            clauses.append(f"USER_TASK_TIMEOUT_MS = {env.schedule.sla_minutes * 60_000}")
            # a failed graph run notifies the alerts SNS topic; transient failures get retried (99.9 % target)
            clauses.append(f"ERROR_INTEGRATION = {catalog.error_integration(env)}")
            clauses.append(f"TASK_AUTO_RETRY_ATTEMPTS = {ROOT_RETRY_ATTEMPTS}")
        comment = f"{node.comment} | owner: {node.owner}".replace("'", "\u2019")
        clauses.append(f"COMMENT = '{comment}'")
        if node.name == FINALIZER:
            clauses.append(f"FINALIZE = {ops}.{ROOT}")
        elif node.name != ROOT:
            clauses.append("AFTER " + ", ".join(f"{ops}.{a}" for a in node.after))
        head = f"CREATE OR REPLACE TASK {ops}.{node.name}\n" + "\n".join(f"    {c}" for c in clauses)
        statements.append(f"{head}\nAS\n{_call_block(node)};\n")
    statements.append("".join(f"ALTER TASK {ops}.{node.name} RESUME;\n" for node in reversed(build_dag(env))))
    return "\n".join(statements)
