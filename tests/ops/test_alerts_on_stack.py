"""Break something real on the local stack and watch the alert reach the owning team's topic, with its runbook;
`finsight status` shows the failing table with its owner; after recovery the alert resolves.

One broken source (its connector role's password rotated elsewhere) and one planted bad file, in one cycle, then a
tiny budget the month's spend exceeds: lean on the two shared cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from finsight import catalog, warehouse
from finsight.aws import client, data_key_arn
from finsight.config import Environment, repo_root
from finsight.local.cycle import hourly_cycle
from finsight.local.stack import LocalStack
from finsight.ops import alerts, telemetry
from finsight.ops.status import table_status

pytestmark = pytest.mark.stack
BROKEN = "risk"
FINSIGHT = Path(sys.executable).with_name("finsight")


def _cycle_and_sync(env: Environment) -> list[dict]:
    summary = hourly_cycle(env)
    telemetry.record_cycle(env, summary)
    with warehouse.connect(env) as conn:
        alerts.sync(env, conn)
    return alerts.drain_inboxes(env)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FINSIGHT), *args], cwd=repo_root(), capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "250"})  # fmt: skip


def _drop_planted(env: Environment, key: str) -> None:
    """Recovery of a planted file: the object is gone (raw and quarantine) and its load error released."""
    s3 = client(env, "s3")
    for k in (key, catalog.quarantine_key(env, key)):
        s3.delete_object(Bucket=env.aws.s3.bucket, Key=k)
    with warehouse.connect(env) as conn:
        table = f"{env.snowflake.schemas['ops']}.{catalog.LOAD_ERRORS_TABLE}"
        conn.cursor().execute(f"UPDATE {table} SET RELEASED_AT = SYSDATE() WHERE FILE_KEY = '{key}'")


@pytest.fixture
def bad_key(local_env: Environment) -> Iterator[str]:
    folder = catalog.table_folder(local_env.table("payments.payments"))
    key = catalog.s3_key(local_env, f"{folder}dt=2026-11-27/hr=00/zz-planted-{uuid.uuid4().hex[:8]}-0.parquet")
    yield key
    _drop_planted(local_env, key)  # even when the test failed half-way: no other test meets the planted file


def test_broken_source_and_bad_file_alert_their_owners_and_resolve(
    local_env: Environment, local_stack: LocalStack, bad_key: str
) -> None:
    env = local_env
    alerts.ensure_inboxes(env)
    alerts.drain_inboxes(env)  # start from an empty inbox and no open alert, whatever an earlier run left
    with warehouse.connect(env) as conn:
        conn.cursor().execute(f"DELETE FROM {alerts.ensure_alerts_table(env, conn.cursor())}")
    role = f"finsight_reader_{BROKEN}"
    with local_stack.postgres.admin_connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD 'rotated-elsewhere'").format(sql.Identifier(role)))
    client(env, "s3").put_object(Bucket=env.aws.s3.bucket, Key=bad_key, Body=b"this is not parquet",
                                 ServerSideEncryption="aws:kms", SSEKMSKeyId=data_key_arn(env))  # fmt: skip
    try:
        fired = _cycle_and_sync(env)
    finally:
        local_stack.up(seed_sources=False)  # recovery: the passwords held in Secrets Manager are applied again

    by_id = {m["alert_id"]: m for m in fired if m["state"] == "FIRING"}
    connector = by_id[f"connector_failed:{BROKEN}"]
    assert connector["received_on"] == env.aws.alert_topics["data_engineering"]
    assert connector["runbook"] == "docs/runbooks/source-db-unreachable.md"
    assert connector["owner"] == env.source(BROKEN).owner
    assert "rotated-elsewhere" not in json.dumps(fired)
    quarantined = by_id[f"pipe_failed:{bad_key}"]
    assert quarantined["received_on"] == env.aws.alert_topics["data_engineering"]
    assert quarantined["runbook"] == "docs/runbooks/quarantined-file.md"

    # a tiny budget: the month's warehouse spend (the cycle just ran) exceeds it; DevOps is paged
    tiny = env.model_copy(update={"budget": env.budget.model_copy(update={"monthly_usd": 1e-6})})
    with warehouse.connect(env) as conn:
        alerts.sync(tiny, conn)
    budget_id = f"budget_exceeded:{env.snowflake.warehouse_name('transform')}"
    budget = {m["alert_id"]: m for m in alerts.drain_inboxes(env)}[budget_id]
    assert budget["received_on"] == env.aws.alert_topics["devops"] and budget["team"] == "devops"
    assert budget["runbook"] == "docs/runbooks/warehouse-quota.md"

    status = _cli("status", "--env", "local", "--json")
    assert status.returncode == 1, status.stderr  # a failing table makes status exit non-zero
    rows = {r["table"]: r for r in json.loads(status.stdout)}
    failing = rows["risk.risk_assessments"]
    assert failing["state"] == "failing" and failing["owner"] == env.source(BROKEN).owner
    assert "finsight extract --env local --source risk" in failing["next_action"]
    assert rows["payments.payments"]["state"] == "failing" and "quarantined" in rows["payments.payments"]["last_error"]

    listed = _cli("alerts", "--env", "local", "--json", "--no-check")
    assert {m["alert_id"] for m in json.loads(listed.stdout)} >= set(by_id)

    # recovery: the source reads again; the bad file is replaced by the connector's next batch and dropped
    _drop_planted(env, bad_key)
    resolved = {m["alert_id"] for m in _cycle_and_sync(env) if m["state"] == "RESOLVED"}
    assert {f"connector_failed:{BROKEN}", f"pipe_failed:{bad_key}", budget_id} <= resolved  # budget back to normal
    with warehouse.connect(env) as conn:
        states = {s.table: s.state for s in table_status(env, conn.cursor())}
    assert states["risk.risk_assessments"] == "ok"
    assert any(r["event"] == "batch_landed" and r.get("batch_id") for r in telemetry.read_sink(env))
