"""Faults in the warehouse: the local Snowflake (fakesnow) killed during a MERGE, a task failing then RETRY LAST,
a replay after hard deletes. The run state must tell the truth, and the rerun must leave CURATED equal to the sources.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg import sql
from typer.testing import CliRunner

from connectors.run import extract_source
from finsight import warehouse
from finsight.cli.main import app
from finsight.config import Environment, repo_root
from finsight.local.cycle import hourly_cycle
from finsight.local.graph import on_landed
from finsight.local.snowpipe import drain
from finsight.local.stack import LocalStack
from finsight.reconcile import reconcile
from tests.chaos.harness import bounded, touch, wait_for
from tests.warehouse.helpers import last_run_detail, sf

pytestmark = [pytest.mark.stack, pytest.mark.chaos, pytest.mark.timeout(600)]
FINSIGHT = Path(sys.executable).with_name("finsight")
# What an operator may wait for `finsight run` to give up once the warehouse is gone: the connector retries a
# request for warehouse.LOCAL_NETWORK_TIMEOUT_S, the runner then fails the task and the run (before: > 6 minutes).
FAIL_WITHIN_S = 150


def _merge_running(env: Environment, after: str) -> str | None:
    rows = sf(
        env,
        "SELECT RUN_ID FROM OPS.PIPELINE_RUNS WHERE TASK_NAME LIKE 'MERGE_%' AND STATE = 'RUNNING' "
        f"AND RUN_ID LIKE 'local-%' AND RUN_ID >= '{after}' LIMIT 1",
    )
    return rows[0][0] if rows else None


def test_local_snowflake_killed_during_a_merge(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    s = scenario(
        "Snowflake (fakesnow) killed during MERGE",
        "SIGKILL of the fakesnow server while MERGE tasks run",
        "`finsight run` fails within bounded time; server restarted; rerun merges the batches",
    )
    touch(local_stack, local_env, "payments.payments", 300)
    after = f"local-{datetime.now(UTC) - timedelta(seconds=2):%Y%m%dT%H%M%S}"
    proc = subprocess.Popen([str(FINSIGHT), "run", "--env", "local"], cwd=repo_root(), env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        run_id = wait_for(lambda: proc.poll() is None and _merge_running(local_env, after), 400, "a MERGE task running")
        pid = local_stack.fakesnow.pid()
        assert pid is not None
        s.fault()
        os.killpg(pid, signal.SIGKILL)  # a crash, not a shutdown
        killed = time.monotonic()
        _, err = proc.communicate(timeout=FAIL_WITHIN_S + 60)
        failed_after = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, "`finsight run` reported success with its warehouse gone"
    assert failed_after <= FAIL_WITHIN_S, f"`finsight run` took {failed_after:.0f}s to fail"
    s.recovery_text = s.recovery_text.replace(
        "within bounded time", f"after {failed_after:.0f}s (bound {FAIL_WITHIN_S}s)"
    )
    assert "Traceback" not in err.splitlines()[-1:] or err  # it says why (the last line names the error)

    local_stack.up(seed_sources=False)  # the server comes back on the same database files
    # the killed run never claims success
    states = {r[0] for r in sf(local_env, f"SELECT STATE FROM OPS.PIPELINE_RUNS WHERE RUN_ID = '{run_id}' "
                                          "AND TASK_NAME = 'RUN'")}  # fmt: skip
    assert "SUCCEEDED" not in states
    cycle = hourly_cycle(local_env)
    assert cycle.ok and cycle.dag is not None and cycle.dag.state == "SUCCEEDED"
    s.verify(local_env)


def test_a_failed_merge_then_retry_last(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    table = local_env.table("ledger.ledger_entries")
    s = scenario(
        "MERGE task fails, then RETRY LAST",
        "the RAW table of one MERGE renamed away during the graph run",
        "run FAILED (marts downstream skipped); `finsight dag retry-last` reruns failed + skipped",
    )
    touch(local_stack, local_env, table.qualified, 200)
    extract_source(local_env, "ledger")
    with warehouse.connect(local_env, schema=local_env.snowflake.schemas["raw"]) as conn:
        assert not drain(local_env, conn.cursor()).errors
    raw = f"{local_env.snowflake.schemas['raw']}.{table.raw_name}"
    s.fault()
    sf(local_env, f"ALTER TABLE {raw} RENAME TO {table.raw_name}_AWAY")
    try:
        _, dag = on_landed(local_env)
    finally:
        sf(local_env, f"ALTER TABLE {raw}_AWAY RENAME TO {table.raw_name}")
    assert dag is not None and dag.state == "FAILED"
    states = {t.name: t.state for t in dag.tasks}
    assert states[f"MERGE_{table.raw_name}"] == "FAILED"
    assert states["MART_LEDGER_BALANCE"] == "SKIPPED"
    assert last_run_detail(local_env, dag.run_id)["state"] == "FAILED"
    (before,) = reconcile(local_env, [table])
    assert before.different >= 1  # the status told the truth: CURATED is behind

    result = CliRunner().invoke(app, ["dag", "retry-last", "--env", "local"])
    assert result.exit_code == 0, result.output
    assert last_run_detail(local_env, dag.run_id)["state"] == "SUCCEEDED"
    s.verify(local_env)


def test_a_replay_after_hard_deletes(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    table = local_env.table("billing.invoices")
    s = scenario(
        "replay after hard deletes",
        "rows hard-deleted at the source, then a full batch holding them replayed",
        "range-hash tombstones; remembered deletes skip the replayed versions",
    )
    full = extract_source(local_env, "billing", mode="full")
    (batch,) = [b for b in full.batches if b.table == table.qualified]
    (pk,) = table.primary_key
    delete = sql.SQL("DELETE FROM {t} WHERE {k} IN (SELECT {k} FROM {t} ORDER BY {k} DESC LIMIT 7)").format(
        t=sql.Identifier(table.name), k=sql.Identifier(pk)
    )
    with local_stack.admin_connect(table.source) as conn:
        assert conn.execute(delete).rowcount == 7
    s.fault()
    extract_source(local_env, "billing")
    _, dag = on_landed(local_env)
    assert dag is not None and dag.state == "SUCCEEDED"
    with bounded(300, "a replay"):
        result = CliRunner().invoke(
            app, ["replay", "--env", "local", "--table", table.qualified, "--batch", batch.batch_id]
        )
    assert result.exit_code == 0, result.output
    s.verify(local_env)
