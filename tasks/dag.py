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
FINALIZER = "FINSIGHT_HOURLY_FINALIZE"
RUN_ID_EXPR = "SYSTEM$TASK_RUNTIME_INFO('CURRENT_TASK_GRAPH_RUN_GROUP_ID')"  # Snowflake's id of this graph run


@dataclass(frozen=True)
class TaskNode:
    name: str
    procedure: Procedure
    args: tuple[str | None, ...]  # literal arguments; the run id is appended at run time
    after: tuple[str, ...]
    warehouse: str  # logical: load | transform
    owner: str
    comment: str

    def call_sql(self, run_id_sql: str) -> str:
        from snowpark.sql_text import literal

        values = [literal(a) for a in self.args]
        values.insert(1 if self.procedure is procedures.MERGE_TABLE else 0, run_id_sql)
        return f"CALL {self.procedure.name}({', '.join(values)})"

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
    for table in env.tables():
        spec = json.dumps(catalog.table_spec(table), separators=(",", ":"))
        owner = env.postgres_sources[table.source].owner
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


def render_sql(env: Environment) -> str:
    """CREATE TASK statements for the whole graph, children resumed before the root (Snowflake's rule)."""
    ops = env.snowflake.schemas["ops"]
    lines = []
    for node in build_dag(env):
        wh = env.snowflake.warehouse_name(node.warehouse)
        head = f"CREATE OR REPLACE TASK {ops}.{node.name} WAREHOUSE = {wh}"
        if node.name == ROOT:
            head += f" SCHEDULE = '{snowflake_cron(env.schedule.hourly_cron, env.schedule.timezone)}'"
            head += f" USER_TASK_TIMEOUT_MS = {env.schedule.sla_minutes * 60_000}"
        elif node.name == FINALIZER:
            head += f" FINALIZE = {ops}.{ROOT}"
        else:
            head += " AFTER " + ", ".join(f"{ops}.{a}" for a in node.after)
        comment = f"{node.comment} | owner: {node.owner}".replace("'", "\u2019")
        lines.append(f"{head} COMMENT = '{comment}' AS {node.call_sql(RUN_ID_EXPR)};")
    for node in reversed(build_dag(env)):
        lines.append(f"ALTER TASK {ops}.{node.name} RESUME;")
    return "\n".join(lines) + "\n"
