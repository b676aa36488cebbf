"""Run status on the real pipeline: an extract failure makes the run PARTIAL (never SUCCEEDED), a failed task makes
it FAILED, and RETRY LAST re-runs exactly the failed and skipped tasks as the next attempt of the same graph run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from connectors.run import SourceRun, extract_source
from finsight import deploy_fingerprint, marts, warehouse
from finsight.config import Environment
from finsight.local.cycle import hourly_cycle
from finsight.local.graph import extract_stages
from finsight.local.snowpipe import drain
from finsight.local.stack import LocalStack
from finsight.ops import task_runs
from tasks.runner import DagRun, NothingToRetryError, TaskResult, retry_last, run_dag
from tests.warehouse.helpers import last_run_detail, sf

pytestmark = pytest.mark.stack


def _allow_connections(stack: LocalStack, database: str, allow: bool) -> None:
    with stack.postgres.admin_connect("postgres") as conn:
        conn.autocommit = True
        conn.execute(f"ALTER DATABASE {database} ALLOW_CONNECTIONS {str(allow).lower()}")
        if not allow:
            conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")


def test_a_source_that_fails_to_extract_makes_the_run_partial(local_env: Environment, local_stack: LocalStack) -> None:
    database = local_env.postgres_sources["risk"].connection.database
    # risk read a moment ago (whatever ran before on this stack): its freshness checks pass, so the run's state
    # depends on the failed extract alone
    extract_source(local_env, "risk")
    _allow_connections(local_stack, database, False)
    try:
        cycle = hourly_cycle(local_env)
    finally:
        _allow_connections(local_stack, database, True)
    assert cycle.extract_errors and not cycle.ok
    assert cycle.dag.state == "PARTIAL"
    by_name = {t.name: t for t in cycle.dag.tasks}
    assert by_name["EXTRACT_RISK"].state == "FAILED" and by_name["EXTRACT_RISK"].error
    assert all(by_name[f"EXTRACT_{s.upper()}"].state == "SUCCEEDED" for s in local_env.postgres_sources if s != "risk")
    assert by_name["FINSIGHT_HOURLY_FINALIZE"].state == "FAILED"  # the graph run fails: its error integration alerts
    # the quality checks ran after every merge, the failed source's tables included, and none blocked anything
    checks = {f"CHECK_{t.raw_name}" for t in local_env.warehouse_tables()}
    assert checks <= set(by_name) and all(by_name[c].state == "SUCCEEDED" for c in checks), [
        (c, by_name[c].error) for c in checks if c in by_name and by_name[c].state != "SUCCEEDED"
    ]
    detail = last_run_detail(local_env, cycle.run_id)
    assert detail["state"] == "PARTIAL" and detail["failed_stages"] == ["EXTRACT_RISK"] and detail["failed"] == []
    columns = "NAME, STATE, ERROR_MESSAGE, ATTEMPT_NUMBER, SCHEDULED_TIME, QUERY_START_TIME, COMPLETED_TIME, RUN_ID"
    # the graph tasks from Snowflake's record (INFORMATION_SCHEMA.TASK_HISTORY), the stages from OPS.TASK_HISTORY
    history = sf(local_env, f"SELECT {columns} FROM {task_runs.attempts(local_env, cycle.run_id)} AS t")
    names = {r[0]: r for r in history}
    assert names["EXTRACT_RISK"][1] == "FAILED" and names["EXTRACT_RISK"][2]
    check_risk = f"CHECK_{local_env.table('risk.risk_assessments').raw_name}"
    assert {"LOAD", "FINSIGHT_HOURLY", "MERGE_PAYMENTS__PAYMENTS", check_risk, "MART_DAILY_REVENUE"} <= set(names)
    assert all(r[3] == 1 and r[4] and r[5] and r[6] and r[5] <= r[6] for r in history)
    assert len({r[7] for r in history if not r[0].startswith(("EXTRACT_", "LOAD"))}) == 1  # one RUN_ID per graph run
    # the latency of what did land is still recorded
    assert detail["latency_seconds"] is not None and detail["latency_seconds"] >= 0


def test_a_failed_task_fails_the_run_and_retry_last_reruns_only_what_failed(
    local_env: Environment, local_stack: LocalStack
) -> None:
    deploy_fingerprint.deploy_if_changed(local_env)
    run_id = f"test-retry-last-{uuid.uuid4().hex[:8]}"
    # the graph played for the ledger mart's upstreams only (their merges, their quality checks, the mart), each
    # upstream source read just now: the quality checks see fresh data, so only the broken mart can fail
    (mart,) = [m for m in marts.marts() if m.name == "ledger_balance"]
    upstreams = [local_env.table(u.table) for u in mart.upstreams]
    started = datetime.now(UTC).replace(tzinfo=None)
    runs = [extract_source(local_env, source) for source in sorted({t.source for t in upstreams})]
    with warehouse.connect(local_env, schema=local_env.snowflake.schemas["raw"]) as conn:
        pipe = drain(local_env, conn.cursor())
    assert not pipe.errors, pipe.errors
    stages = extract_stages(local_env, runs, [], started, datetime.now(UTC).replace(tzinfo=None))
    stages = [s for s in stages if s.name in {f"EXTRACT_{r.source.upper()}" for r in runs}]
    session = warehouse.snowpark_session(local_env)
    try:
        table = f"{local_env.snowflake.schemas['marts']}.{mart.table_name}"
        session.sql(f"ALTER TABLE {table} RENAME TO {mart.table_name}_AWAY").collect()
        try:
            failed = run_dag(local_env, session, run_id, only=[f"MERGE_{t.raw_name}" for t in upstreams],
                             config={"full_refresh_marts": [mart.name]}, stages=stages)  # fmt: skip
        finally:
            session.sql(f"ALTER TABLE {table}_AWAY RENAME TO {mart.table_name}").collect()
        states = {t.name: t.state for t in failed.tasks}
        assert failed.state == "FAILED"
        assert states["MART_LEDGER_BALANCE"] == "FAILED" and states["VALIDATE_LEDGER_BALANCE"] == "SKIPPED"
        # what ran before the mart succeeded: the merges and the data-quality checks of its upstreams
        assert {n for n, st in states.items() if n.startswith(("MERGE_", "CHECK_")) and st == "SUCCEEDED"} == {
            f"{kind}_{t.raw_name}" for t in upstreams for kind in ("MERGE", "CHECK")
        }, [(t.name, t.error) for t in failed.tasks if t.error]
        assert last_run_detail(local_env, run_id)["failed"] == [
            "MART_LEDGER_BALANCE",
            "VALIDATE_LEDGER_BALANCE",
        ]

        retried = retry_last(local_env, session)
        assert retried.run_id == run_id and retried.attempt == 2
        assert {t.name for t in retried.tasks} == {
            "MART_LEDGER_BALANCE",
            "VALIDATE_LEDGER_BALANCE",
            "FINSIGHT_HOURLY_FINALIZE",
        }
        assert retried.state == "SUCCEEDED" and retried.config["full_refresh_marts"] == ["ledger_balance"]
        assert last_run_detail(local_env, run_id)["state"] == "SUCCEEDED"
        source = f"{task_runs.attempts(local_env, run_id)} AS t WHERE NAME = 'MART_LEDGER_BALANCE'"
        attempts = sf(local_env, f"SELECT NAME, ATTEMPT_NUMBER, STATE FROM {source} ORDER BY 2")
        assert attempts == [("MART_LEDGER_BALANCE", 1, "FAILED"), ("MART_LEDGER_BALANCE", 2, "SUCCEEDED")]
        with pytest.raises(NothingToRetryError):  # as Snowflake: RETRY LAST needs a failed last run
            retry_last(local_env, session)
    finally:
        session.close()


def test_a_payment_api_that_fails_to_extract_is_a_failed_stage(local_env: Environment) -> None:
    """The API sources are extract stages too: one that could not be read makes the run PARTIAL, never SUCCEEDED."""
    api = sorted(local_env.api_sources)[0]
    at = datetime.now(UTC).replace(tzinfo=None)
    others = [SourceRun(s, [], 1.0) for s in [*local_env.postgres_sources, *local_env.api_sources] if s != api]
    stages = {s.name: s for s in extract_stages(local_env, others, [f"source {api!r}: HTTP 503"], at, at)}
    assert set(stages) == {f"EXTRACT_{s.upper()}" for s in [*local_env.postgres_sources, *local_env.api_sources]}
    failed = stages[f"EXTRACT_{api.upper()}"]
    assert (failed.state, failed.error) == ("FAILED", f"source {api!r}: HTTP 503")
    assert all(s.state == "SUCCEEDED" for s in stages.values() if s is not failed)
    tasks = [TaskResult(s.name, s.state, 0.0) for s in stages.values()] + [TaskResult("MERGE_X", "SUCCEEDED", 0.0)]
    assert DagRun("test", tasks).state == "PARTIAL"
