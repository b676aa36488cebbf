"""OPS.BACKFILL over a window that overlaps hourly data: through the root's CONFIG, as `EXECUTE TASK ... USING
CONFIG` runs it. Every landed batch of the window is merged again (hourly and backfill alike); a backfill batch read
before newer hourly data never moves a row back, deleted rows stay deleted, and the marts are rebuilt for the dates.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from connectors.run import extract_source
from finsight import warehouse
from finsight.config import Environment
from finsight.local.cycle import hourly_cycle
from finsight.local.snowpipe import drain
from finsight.local.stack import LocalStack
from finsight.reconcile import reconcile
from snowpark.backfill import backfill
from tasks.runner import run_dag, sync_catalog
from tests.warehouse.helpers import mart_revenue, per_merchant_day_currency, source_revenue, today

pytestmark = pytest.mark.stack


def test_backfill_window_overlapping_hourly_data(local_env: Environment, local_stack: LocalStack) -> None:
    assert hourly_cycle(local_env).ok
    start = datetime.combine(today() - timedelta(days=3), datetime.min.time())
    end = datetime.combine(today() + timedelta(days=1), datetime.min.time())
    # the backfill connector lands its batches (read now) ...
    landed = [
        b
        for s in ("billing", "payments")
        for b in extract_source(local_env, s, "backfill", window=(start, end)).batches
    ]
    with warehouse.connect(local_env, schema=local_env.snowflake.schemas["raw"]) as conn:
        drain(local_env, conn.cursor())
    # ... then the sources move on (updates, hard deletes) and the hourly run merges the newer data
    for step in (701, 702):
        local_stack.mutate(step)
    assert hourly_cycle(local_env).ok

    config = {"backfill": [{"table": t, "start": start.isoformat(), "end": end.isoformat()}
                           for t in ("billing.invoices", "payments.payments")]}  # fmt: skip
    session = warehouse.snowpark_session(local_env)
    try:
        run = run_dag(local_env, session, f"test-backfill-{datetime.now():%H%M%S%f}", config=config)
    finally:
        session.close()
    assert run.state == "SUCCEEDED", [t for t in run.tasks if t.state != "SUCCEEDED"]
    root = next(t for t in run.tasks if t.name == "FINSIGHT_HOURLY")
    results = {b["table"]: b for b in root.output["backfills"]}
    for table in ("billing.invoices", "payments.payments"):
        out = results[table]
        ours = {b.batch_id for b in landed if b.table == table}
        assert ours <= set(out["batches"]) and len(out["batches"]) > len(ours), out  # hourly batches too
        assert out["rows_inserted"] == 0 and out["rows_updated"] == 0, out  # nothing newer than CURATED
        assert {m["mart"] for m in out["marts"]} == (
            {"daily_revenue", "refund_dispute_rates"} if table == "payments.payments" else set()
        )
    diffs = [
        d for d in reconcile(local_env, [local_env.table("billing.invoices"), local_env.table("payments.payments")])
    ]
    assert all(d.equal for d in diffs), diffs
    assert mart_revenue(local_env) == per_merchant_day_currency(source_revenue(local_stack))


def test_backfill_procedure_checks_its_arguments(local_env: Environment, local_stack: LocalStack) -> None:
    session = warehouse.snowpark_session(local_env)
    try:
        sync_catalog(local_env, session)
        with pytest.raises(ValueError, match="start < end"):
            backfill(session, "payments.payments", "2026-11-02", "2026-11-01")
        with pytest.raises(ValueError, match=r"unknown table 'payments\.nope'"):
            backfill(session, "payments.nope", "2026-11-01", "2026-11-02")
        out = json.loads(backfill(session, "payments.payments", "1999-01-01", "1999-01-02"))
        assert out["batches"] == [] and out["rows_merged"] == 0
    finally:
        session.close()
