"""A failing data-quality check pages the table's owner: the alert names table, check and run, arrives on the owning
team's SNS topic (moto, SQS inbox) with its runbook, and resolves once the check passes again.

The check is the real CHECK_TABLE code (snowpark/quality) on the local Snowflake, run as if a day had passed, so its
freshness check fails (error). One table's source is handed to DevOps in a copy of the config: its alert must go to
the DevOps topic while a data-engineering table's goes to data engineering (routing by the catalog's owner).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from finsight import deploy_fingerprint, warehouse
from finsight.config import Environment
from finsight.local import task_history
from finsight.ops import alerts
from finsight.quality import table_quality_spec
from snowpark.quality.checks import run_checks

pytestmark = pytest.mark.stack
DEVOPS_OWNED, DATA_ENG_OWNED = "risk.risk_assessments", "payments.payments"


def _owned_by(env: Environment, source: str, owner: str) -> Environment:
    sources = dict(env.postgres_sources)
    sources[source] = sources[source].model_copy(update={"owner": owner})
    return env.model_copy(update={"postgres_sources": sources})


def _freshness_only(env: Environment, table: str) -> dict:
    spec = table_quality_spec(env, env.table(table))
    for name, check in spec["checks"].items():
        check["enabled"] = name == "freshness"
    return spec


def test_failing_check_alerts_the_owning_team_and_resolves(local_env: Environment, local_stack: object) -> None:
    env = _owned_by(local_env, "risk", "@finsight/devops")
    # OPS.QUALITY_RESULTS and OPS.ALERTS exist whatever ran before; recorded, so the local env redeploys after it
    deploy_fingerprint.deploy_if_changed(env)
    run_id = f"dq-alert-test-{uuid.uuid4().hex[:8]}"
    alerts.ensure_inboxes(env)
    alerts.drain_inboxes(env)
    session = warehouse.snowpark_session(env)
    # Snowflake's task record, which the alerts read beside the check results: the local player creates its
    # emulation on a graph run, and on a fresh stack none may have run yet
    for sql in task_history.create_statements(env.snowflake.database, env.snowflake.schemas["ops"]):
        session.sql(sql).collect()
    try:
        tomorrow = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1)
        for table in (DEVOPS_OWNED, DATA_ENG_OWNED):
            failed = [r for r in run_checks(session, _freshness_only(env, table), run_id, tomorrow) if r.blocking]
            assert failed, f"{table}: freshness a day later must fail"
        with warehouse.connect(env) as conn:
            alerts.sync(env, conn)
        fired = {m["alert_id"]: m for m in alerts.drain_inboxes(env) if m["state"] == "FIRING"}
        for table, team in ((DEVOPS_OWNED, "devops"), (DATA_ENG_OWNED, "data_engineering")):
            alert = fired[f"quality_error:{table}:freshness"]
            assert alert["received_on"] == env.aws.alert_topics[team] and alert["team"] == team
            assert alert["owner"] == env.source(table.split(".")[0]).owner
            assert alert["runbook"] == "docs/runbooks/quality-error.md"
            assert (alert["table"], alert["check"], alert["run_id"]) == (table, "freshness", run_id)
            assert table in alert["message"] and run_id in alert["message"] and "freshness" in alert["message"]
    finally:
        # recovery: the failing results are gone (the next real check passes); the alerts resolve
        session.sql(f"DELETE FROM OPS.QUALITY_RESULTS WHERE RUN_ID = '{run_id}'").collect()
        session.close()
        with warehouse.connect(env) as conn:
            alerts.sync(env, conn)
    resolved = {m["alert_id"]: m for m in alerts.drain_inboxes(env) if m["state"] == "RESOLVED"}
    assert resolved[f"quality_error:{DEVOPS_OWNED}:freshness"]["received_on"] == env.aws.alert_topics["devops"]
    assert f"quality_error:{DATA_ENG_OWNED}:freshness" in resolved
