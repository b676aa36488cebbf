"""FINALIZE decides the run's state from Snowflake's own record of the graph run (INFORMATION_SCHEMA.TASK_HISTORY for
its GRAPH_RUN_GROUP_ID), not from rows only the local player writes: here the run's tasks exist in that record
alone (no OPS.PIPELINE_RUNS task row), as on Snowflake. And `dag deploy` replaces the pipeline catalog atomically."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from finsight import catalog, deploy_fingerprint, warehouse
from finsight.cli.dag_cmd import catalog_statements, run_statements
from finsight.config import Environment
from finsight.local import task_history as emulation
from finsight.local.stack import LocalStack
from snowpark.run_log import finalize_run
from tasks.dag import FINALIZER, ROOT

pytestmark = pytest.mark.stack


@pytest.fixture
def session(local_env: Environment, local_stack: LocalStack):
    deploy_fingerprint.deploy_if_changed(local_env)
    s = warehouse.snowpark_session(local_env)
    for sql in emulation.create_statements(local_env.snowflake.database, local_env.snowflake.schemas["ops"]):
        s.sql(sql).collect()
    yield s
    s.close()


def _record(env: Environment, session, group: str, rows: list[tuple[str, str, int]]) -> None:
    """Rows as Snowflake records them: (task, state, attempt)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    for name, state, attempt in rows:
        row = {
            "name": name,
            "state": state,
            "scheduled_time": now,
            "query_start_time": now,
            "completed_time": now,
            "attempt_number": attempt,
            "run_id": 1,
            "graph_run_group_id": group,
            "database_name": env.snowflake.database.upper(),
            "schema_name": env.snowflake.schemas["ops"].upper(),
        }
        session.sql(emulation.insert_statement(env.snowflake.database, row)).collect()  # fmt: skip


def test_a_task_failed_in_snowflakes_record_fails_the_run(local_env: Environment, session) -> None:
    group = f"test-fin-{uuid.uuid4().hex[:8]}"
    _record(local_env, session, group, [(ROOT, "SUCCEEDED", 1), ("MERGE_X", "FAILED", 1), ("MART_Y", "SKIPPED", 1)])
    with pytest.raises(RuntimeError, match=r"FAILED: failed tasks \['MART_Y', 'MERGE_X'\]"):
        finalize_run(session, group, FINALIZER)


def test_no_task_in_snowflakes_record_is_not_a_success(local_env: Environment, session) -> None:
    with pytest.raises(RuntimeError, match=r"no task of graph run \S+ in INFORMATION_SCHEMA\.TASK_HISTORY"):
        finalize_run(session, f"test-fin-{uuid.uuid4().hex[:8]}", FINALIZER)


def test_a_retried_run_is_judged_by_each_tasks_latest_attempt(local_env: Environment, session) -> None:
    group = f"test-fin-{uuid.uuid4().hex[:8]}"
    _record(local_env, session, group, [(ROOT, "SUCCEEDED", 1), ("MERGE_X", "FAILED", 1), (FINALIZER, "FAILED", 1),
                                        ("MERGE_X", "SUCCEEDED", 2)])  # fmt: skip
    detail = json.loads(finalize_run(session, group, FINALIZER))  # attempt 1's finalizer failure is not a task's
    assert detail["state"] == "SUCCEEDED" and detail["tasks"] == 2 and detail["failed"] == []


def test_a_failed_catalog_insert_leaves_the_catalog_as_it_was(local_env: Environment, session) -> None:
    table = f"{local_env.snowflake.schemas['ops']}.{catalog.PIPELINE_CATALOG_TABLE}"
    with warehouse.connect(local_env) as conn:
        cur = conn.cursor()
        run_statements(cur, catalog_statements(local_env), echo=lambda _: None)
        before = cur.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        assert before > 0
        broken = [
            s.replace("(KIND, NAME, SPEC)", "(KIND, NAME, NO_SUCH_COLUMN)") for s in catalog_statements(local_env)
        ]
        with pytest.raises(Exception, match="NO_SUCH_COLUMN"):
            run_statements(cur, broken, echo=lambda _: None)
    with warehouse.connect(local_env) as conn:  # a new session: what was committed
        assert conn.cursor().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == before
