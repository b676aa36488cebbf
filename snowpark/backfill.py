"""BACKFILL procedure: re-merge the landed batches of one table for a window, then rebuild the affected mart dates.

`CALL OPS.BACKFILL('payments.payments', '2026-11-01', '2026-11-08')`, or through the hourly graph's root:
`EXECUTE TASK OPS.FINSIGHT_HOURLY USING CONFIG = '{"backfill": [{"table": ..., "start": ..., "end": ...}]}'`.

The window is on the table's cursor ([start, end), ISO text as the manifests record it): every landed batch whose
cursor range overlaps it is merged again together with the others in one MERGE (hourly and backfill batches
alike). MERGE orders versions by read time and honours tombstones, so a re-merge never moves a row backwards or
brings a deleted row back. The dates it touched are rebuilt in every mart reading the table.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from snowpark import merge, pipeline_catalog
from snowpark.marts_build import build_mart
from snowpark.quality.gate import without_held
from snowpark.sql_text import literal, literal_list


def backfill(session: Any, table: str, start: str, end: str, run_id: str | None = None) -> str:
    """Handler of OPS.BACKFILL(table, start, end). Returns a JSON summary."""
    if not start or not end or start >= end:
        raise ValueError(f"backfill {table}: the window must be start < end, got [{start!r}, {end!r})")
    run_id = run_id or f"backfill-{uuid.uuid4().hex[:12]}"
    spec = pipeline_catalog.spec(session, "table", table)
    ids = [
        r[0]
        for r in session.sql(
            f"SELECT DISTINCT BATCH_ID FROM {merge.MANIFESTS} WHERE RAW_TABLE = {literal(spec['raw'])} "
            f"AND CURSOR_MIN < {literal(end)} AND CURSOR_MAX >= {literal(start)}"
        ).collect()
    ]
    ready, waiting = merge._ready_batches(session, spec, batch_ids=ids)
    ready, held = without_held(session, spec, ready)  # a quarantined batch waits for its release here too
    waiting += held
    counts = merge.merge_batches(session, spec, run_id, ready, record=False)
    if ready:  # batches merged here for the first time are not merged again by the next hourly run
        ready_ids = [b["BATCH_ID"] for b in ready]
        done = {
            r[0]
            for r in session.sql(
                f"SELECT BATCH_ID FROM {merge.MERGED} WHERE RAW_TABLE = {literal(spec['raw'])} "
                f"AND BATCH_ID IN ({literal_list(ready_ids)})"
            ).collect()
        }
        new = [b for b in ready if b["BATCH_ID"] not in done]
        if new:
            values = ", ".join(
                f"({literal(b['BATCH_ID'])}, {literal(spec['raw'])}, {b['ROW_COUNT']}, 0, CURRENT_TIMESTAMP(), "
                f"{literal(run_id)})"
                for b in new
            )
            session.sql(
                f"INSERT INTO {merge.MERGED} (BATCH_ID, RAW_TABLE, ROWS_MERGED, ROWS_DELETED, MERGED_AT, RUN_ID) "
                f"VALUES {values}"
            ).collect()
    marts = [
        m["mart"]
        for m in pipeline_catalog.specs(session, "mart")
        if any(u["raw"] == spec["raw"] for u in m["upstreams"])
    ]
    built = [json.loads(build_mart(session, m, run_id)) for m in marts]
    return json.dumps(
        {
            "table": table,
            "window": [start, end],
            "run_id": run_id,
            "batches": [b["BATCH_ID"] for b in ready],
            "waiting": waiting,
            **counts,
            "marts": built,
        }
    )
