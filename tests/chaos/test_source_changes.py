"""The source changing under a run: a column added mid-read, a transaction open across two runs, a backfill running
at the same time as the hourly cycle."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg import sql

from connectors.run import extract_source
from finsight.config import Environment, repo_root
from finsight.local.cycle import hourly_cycle
from finsight.local.graph import on_landed
from finsight.local.stack import LocalStack
from tests.chaos.harness import touch, wait_for
from tests.chaos.test_process_faults import LEDGER, _Background, _copy_waiting, _locked, _reader, _recover

pytestmark = [pytest.mark.stack, pytest.mark.chaos, pytest.mark.timeout(600)]
FINSIGHT = Path(sys.executable).with_name("finsight")


def test_a_column_added_mid_run(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    s = scenario("schema change mid-run", "a column added (and rows changed) while the connector's read of the table "
                 "is in flight", "the read finishes on its snapshot; the next run lands the new column")  # fmt: skip
    table = local_env.table(LEDGER)
    add = sql.SQL("ALTER TABLE {} ADD COLUMN chaos_note text DEFAULT 'added mid-run'").format(
        sql.Identifier(table.name)
    )
    try:
        with _locked(local_stack, table) as admin:
            run = _Background(extract_source, local_env, "ledger")
            run.start()
            wait_for(lambda: _copy_waiting(local_stack, _reader(local_env, "ledger")), 180, "the connector's read")
            s.fault()
            admin.execute(add)
            admin.commit()
        run.outcome(300)
        assert run.error is None, run.error
        touch(local_stack, local_env, LEDGER, 50)
        again = _recover(local_env, "ledger")
        changes = [c for b in again.batches if b.table == LEDGER for c in b.schema_changes]
        assert any("chaos_note" in c for c in changes), changes  # the drift is recorded, not silently dropped
        s.verify(local_env)
    finally:
        with local_stack.admin_connect(table.source) as conn:
            conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS chaos_note").format(sql.Identifier(table.name)))


def test_a_transaction_open_across_two_runs(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    s = scenario("long transaction spanning two runs", "rows changed in a transaction opened before run 1 and "
                 "committed after it (cursor older than run 1's watermark)",
                 "the horizon (oldest open transaction) keeps them in run 2's window")  # fmt: skip
    table = local_env.table(LEDGER)
    (pk,) = table.primary_key
    update = sql.SQL(
        "UPDATE {t} SET {c} = clock_timestamp() WHERE {k} IN (SELECT {k} FROM {t} ORDER BY {k} DESC LIMIT 25)"
    ).format(t=sql.Identifier(table.name), c=sql.Identifier(table.cursor), k=sql.Identifier(pk))
    open_txn = local_stack.admin_connect(table.source)
    open_txn.autocommit = False
    try:
        open_txn.execute(update)
        s.fault()
        touch(local_stack, local_env, "ledger.accounts", 10)  # other activity, committed, read by run 1
        _recover(local_env, "ledger")  # run 1: the open transaction's rows are invisible
        open_txn.commit()
    finally:
        open_txn.close()
    _recover(local_env, "ledger")  # run 2
    s.verify(local_env)


def test_a_backfill_concurrent_with_the_hourly_cycle(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    s = scenario("backfill concurrent with the hourly cycle", "`finsight backfill` of payments (3 days) running "
                 "while the hourly cycle extracts and merges the same table",
                 "both finish; the backfill never moves the watermark; MERGE keeps the version read last")  # fmt: skip
    touch(local_stack, local_env, "payments.payments", 200)
    # to the minute: a new backfill id each run (a finished window would be skipped from its checkpoints)
    end = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0) - timedelta(days=1)
    start = end - timedelta(days=3)
    args = [str(FINSIGHT), "backfill", "--env", "local", "--source", "payments", "--table", "payments",
            "--start", start.isoformat(), "--end", end.isoformat(), "--chunk", "1d", "--parallel", "1"]  # fmt: skip
    s.fault()
    backfill = subprocess.Popen(args, cwd=repo_root(), env=os.environ.copy(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        cycle = hourly_cycle(local_env)
        output, _ = backfill.communicate(timeout=400)
    finally:
        if backfill.poll() is None:
            backfill.kill()
            backfill.wait()
    assert backfill.returncode == 0, output
    assert cycle.ok, (cycle.extract_errors, cycle.pipe and cycle.pipe.errors)
    pipe, _dag = on_landed(local_env)  # whatever either of them landed after the other's load
    assert not pipe.errors
    s.verify(local_env)
