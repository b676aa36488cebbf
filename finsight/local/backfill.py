"""Local glue after a backfill: load what landed (the Snowpipe player), then CALL OPS.BACKFILL for each table.

In AWS, Snowpipe loads the batches as they land and `finsight backfill` ends with `CALL OPS.BACKFILL(table, start,
end)` (or the hourly root's CONFIG); locally nothing loads by itself, so `finsight backfill --env local` drains the
landing queue and then runs the very same procedure handler in-process: the window's landed batches are merged
into CURATED (hourly and backfill batches alike, ordered by read time) and the mart dates they touched rebuilt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from finsight import migrate, warehouse
from finsight.config import Environment, Table
from finsight.local.snowpipe import PipeRun, drain
from snowpark import procedures
from tasks.runner import sync_catalog


@dataclass
class BackfillLoad:
    pipe: PipeRun
    results: list[dict[str, Any]] = field(default_factory=list)  # one OPS.BACKFILL summary per table
    errors: list[str] = field(default_factory=list)  # "<table>: <error>" of a failed CALL

    @property
    def ok(self) -> bool:
        return not self.pipe.errors and not self.errors

    def merged_rows(self) -> int:
        return sum(int(r.get("rows_merged", 0)) for r in self.results)

    def marts(self) -> list[dict[str, Any]]:
        """The mart builds the procedure ran (the dates the window touched)."""
        return [m for r in self.results for m in r.get("marts", [])]


def call_backfill(
    env: Environment, tables: list[Table], window: tuple[datetime, datetime], run_id: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """CALL OPS.BACKFILL(table, start, end) for each table, as Snowflake runs it (the same handler, in-process).

    The window is ISO text, as the manifests record their cursor range."""
    handler = procedures.BACKFILL.function()
    start, end = (w.isoformat() for w in window)
    results, errors = [], []
    session = warehouse.snowpark_session(env)
    try:
        sync_catalog(env, session)  # the procedure reads its table and mart specs from OPS.PIPELINE_CATALOG
        for table in tables:
            try:
                results.append(json.loads(handler(session, table.qualified, start, end, f"{run_id}-{table.name}")))
            except Exception as exc:  # one table's failure is reported; the other tables still get their CALL
                errors.append(f"{table.qualified}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        session.close()
    return results, errors


def load_and_merge(
    env: Environment, tables: list[Table], window: tuple[datetime, datetime], run_id: str | None = None
) -> BackfillLoad:
    """Apply pending migrations (RAW/CURATED must exist), drain the landing queue, CALL OPS.BACKFILL per table."""
    migrate.deploy(env)
    with warehouse.connect(env, schema=env.snowflake.schemas["raw"]) as conn:
        pipe = drain(env, conn.cursor())
    run_id = run_id or f"backfill-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    results, errors = call_backfill(env, tables, window, run_id)
    return BackfillLoad(pipe, results, errors)
