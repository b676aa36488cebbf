"""`finsight dq` reads OPS.QUALITY_RESULTS: latest results per table (JSON), `explain` shows the SQL and sample keys,
and a bad table name or check id is a clear error."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from finsight import catalog, quality, warehouse
from finsight.cli.main import app
from finsight.config import Environment
from finsight.local.stack import LocalStack
from snowpark.quality.checks import run_checks

pytestmark = pytest.mark.stack


def test_dq_lists_latest_results_and_explains_a_check(local_env: Environment, local_stack: LocalStack) -> None:
    run_id = f"dq-cli-{uuid.uuid4().hex[:8]}"
    spec = quality.table_quality_spec(local_env, local_env.table("payments.payments"))
    session = warehouse.snowpark_session(local_env)
    try:
        results = run_checks(session, spec, run_id)
    finally:
        session.close()
    assert {r.check_id for r in results} >= {"payments.payments:unique", "payments.payments:freshness",
                                             "payments.payments:referential:merchant_id"}  # fmt: skip
    runner = CliRunner()
    out = runner.invoke(app, ["dq", "--env", "local", "--table", "payments.payments", "--json"])
    rows = json.loads(out.stdout)
    assert {r["TABLE_NAME"] for r in rows} == {"payments.payments"}
    assert next(r for r in rows if r["CHECK_ID"] == "payments.payments:unique")["RUN_ID"] == run_id
    explained = runner.invoke(app, ["dq", "explain", "payments.payments:referential:merchant_id", "--env", "local"])
    assert explained.exit_code == 0, explained.output
    assert f"in run {run_id}" in explained.stdout
    parent = catalog.curated_reader(local_env, local_env.table("merchants.merchants"))  # HISTORY with the archive
    assert f"LEFT JOIN (SELECT DISTINCT MERCHANT_ID AS K FROM {parent}) AS p" in explained.stdout  # the parent read
    unknown = runner.invoke(app, ["dq", "explain", "payments.payments:nonsense", "--env", "local"])
    assert unknown.exit_code == 2 and "no result for check" in unknown.output
    bad_table = runner.invoke(app, ["dq", "--env", "local", "--table", "payments.paymnts"])
    assert bad_table.exit_code == 2 and "unknown table" in bad_table.output
