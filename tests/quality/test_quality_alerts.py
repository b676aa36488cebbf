"""Quality alerts read the latest result of every check id (table, check, column): a failed `error` or `quarantine`
check is a `quality_error`, a failed `warn` check a `quality_warning`, and a check that passed since alerts nothing.

The results are written by the checks' own writer for a table of this test only, and removed afterwards.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from finsight import warehouse
from finsight.config import Environment
from finsight.local.stack import LocalStack
from finsight.ops.alerts import quality_errors
from snowpark.quality.results import FAIL, PASS, Result, write

pytestmark = pytest.mark.stack


def test_failed_checks_alert_by_check_id_and_severity(local_env: Environment, local_stack: LocalStack) -> None:
    table = f"dqalert{uuid.uuid4().hex[:8]}.t"
    t0 = datetime(2026, 1, 1, 10)
    first = [
        Result(table, "referential", "error", FAIL, column="a"),  # one column fails ...
        Result(table, "referential", "error", PASS, column="b"),  # ... another passes at the same time
        Result(table, "row_count", "warn", FAIL),
        Result(table, "raw_duplicates", "quarantine", FAIL),
        Result(table, "unique", "error", FAIL),
        Result(table, "freshness", "error", PASS),
    ]
    later = [Result(table, "unique", "error", PASS)]  # fixed since: no alert
    session = warehouse.snowpark_session(local_env)
    try:
        write(session, "dq-alert-1", t0, first)
        write(session, "dq-alert-2", t0 + timedelta(hours=1), later)
        with warehouse.connect(local_env) as conn:
            alerts = [a for a in quality_errors(local_env, conn.cursor()) if a.details["table"] == table]
    finally:
        session.sql(f"DELETE FROM OPS.QUALITY_RESULTS WHERE TABLE_NAME = '{table}'").collect()
        session.close()
    assert {(a.type, a.key) for a in alerts} == {
        ("quality_error", f"{table}:referential:a"),
        ("quality_warning", f"{table}:row_count"),
        ("quality_error", f"{table}:raw_duplicates"),
    }
    assert all(a.kind.runbook == "quality-error.md" and "dq explain" in a.message for a in alerts)
