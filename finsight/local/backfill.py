"""Local glue after a backfill: load what landed (the Snowpipe player) and merge the affected tables into CURATED.

In AWS, Snowpipe loads the batches as they land and the hourly Task graph merges them; locally nothing runs by
itself, so `finsight backfill --env local` calls this once its chunks are extracted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from finsight import migrate, warehouse
from finsight.config import Environment, Table
from finsight.local.snowpipe import PipeRun, drain
from snowpark import procedures
from tasks.dag import build_dag
from tasks.runner import DagRun, run_dag


@dataclass
class BackfillLoad:
    pipe: PipeRun
    dag: DagRun

    @property
    def ok(self) -> bool:
        return not self.pipe.errors and self.dag.succeeded


def merge_task_names(env: Environment, tables: list[Table]) -> list[str]:
    """The DAG's MERGE task of each table (found by its spec, so the task naming lives only in tasks/dag.py)."""
    wanted = {t.qualified for t in tables}
    return [
        node.name
        for node in build_dag(env)
        if node.procedure is procedures.MERGE_TABLE and json.loads(node.args[0] or "{}")["table"] in wanted
    ]


def merge_backfilled_tables(env: Environment, tables: list[Table], run_id: str) -> DagRun:
    """Merge RAW -> CURATED for the tables a backfill landed batches for.

    The one place to switch to the warehouse's OPS.BACKFILL procedure once it exists (today: the hourly DAG's own
    MERGE tasks of these tables, which merge every complete, not yet merged batch, backfill batches included).
    """
    session = warehouse.snowpark_session(env)
    try:
        return run_dag(env, session, run_id, only=merge_task_names(env, tables))
    finally:
        session.close()


def load_and_merge(env: Environment, tables: list[Table], run_id: str | None = None) -> BackfillLoad:
    """Apply pending migrations (RAW/CURATED must exist), drain the landing queue, merge `tables`."""
    migrate.deploy(env)
    with warehouse.connect(env, schema=env.snowflake.schemas["raw"]) as conn:
        pipe = drain(env, conn.cursor())
    dag = merge_backfilled_tables(env, tables, run_id or f"backfill-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    return BackfillLoad(pipe, dag)
