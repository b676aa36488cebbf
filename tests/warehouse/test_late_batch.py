"""A batch that lands after the hour's graph run still reaches the marts within the hour.

The root is triggered by landed batches (a stream over OPS.LANDED_BATCHES), not by a fixed minute: when a late
connector's batch is loaded, the graph runs again at once and publishes it.
"""

from __future__ import annotations

import pytest

from connectors.run import extract_source
from finsight.config import Environment
from finsight.local.cycle import hourly_cycle
from finsight.local.graph import on_landed
from finsight.local.stack import LocalStack
from finsight.ops import task_runs
from tests.warehouse.helpers import last_run_detail, mart_revenue, pg, sf

pytestmark = pytest.mark.stack


def _source_payments(stack: LocalStack) -> dict[tuple, tuple]:
    rows = pg(stack, "payments", "SELECT (created_at AT TIME ZONE 'UTC')::date, merchant_id, currency, COUNT(*), "
                                 "SUM(amount) FROM payments WHERE status = 'succeeded' GROUP BY 1, 2, 3")  # fmt: skip
    return {(r[0], r[1], r[2]): (int(r[3]), r[4]) for r in rows}


def test_a_late_batch_reaches_the_marts_in_the_same_hour(local_env: Environment, local_stack: LocalStack) -> None:
    assert hourly_cycle(local_env).ok
    assert on_landed(local_env)[1] is None  # nothing new landed: the trigger does not fire
    local_stack.mutate(601)
    late = extract_source(local_env, "payments")  # the payments connector finishes after the hour's run
    (batch,) = [b for b in late.batches if b.table == "payments.payments"]
    assert batch.rows > 0

    pipe, run = on_landed(local_env)
    assert pipe.files_loaded > 0 and run is not None and run.state == "SUCCEEDED", run
    consumed = {r[0] for r in sf(local_env, f"SELECT BATCH_ID FROM OPS.RUN_BATCHES WHERE RUN_ID = '{run.run_id}'")}
    assert batch.batch_id in consumed
    # published at once: the run started minutes (not an hour) after the batch's snapshot, within the SLA
    # the root's start, from Snowflake's record of the graph run (INFORMATION_SCHEMA.TASK_HISTORY)
    (started,) = sf(local_env, f"SELECT MIN(QUERY_START_TIME) FROM {task_runs.attempts(local_env, run.run_id)} AS t "
                               "WHERE NAME = 'FINSIGHT_HOURLY'")[0]  # fmt: skip
    assert started is not None, f"no FINSIGHT_HOURLY attempt recorded for graph run {run.run_id}"
    (landed_at,) = sf(local_env, f"SELECT EXTRACTED_AT FROM OPS.LANDED_BATCHES WHERE BATCH_ID = '{batch.batch_id}'")[0]
    assert (started - landed_at).total_seconds() < 10 * 60
    detail = last_run_detail(local_env, run.run_id)
    assert 0 <= detail["latency_seconds"] < local_env.schedule.sla_minutes * 60
    # and the marts hold the late payments: counts and gross per merchant / day / currency equal the source
    marts = {k: (v[0], v[2]) for k, v in mart_revenue(local_env).items() if v[0]}
    assert marts == _source_payments(local_stack)
