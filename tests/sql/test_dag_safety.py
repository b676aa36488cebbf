"""The DAG's safety clauses, read from the rendered CREATE TASK text with written-out expectations: a failed graph
alerts (ERROR_INTEGRATION), transient failures are retried (TASK_AUTO_RETRY_ATTEMPTS), the finalizer always runs
and closes the run, and the literal arguments reach each CALL exactly (pure: no connection)."""

from __future__ import annotations

import json
import re

import pytest

from finsight import catalog, marts
from finsight.config import Environment, load_environment
from snowpark import procedures
from tasks import dag


@pytest.fixture(params=["dev", "prod"])
def env(request: pytest.FixtureRequest) -> Environment:
    return load_environment(request.param)


def _statement(sql: str, name: str) -> str:
    match = re.search(rf"CREATE OR REPLACE TASK {re.escape(name)}\n.*?;\n", sql, re.S)
    assert match, name
    return match.group(0)


def test_the_root_alerts_on_failure_and_retries(env: Environment) -> None:
    ops = env.snowflake.schemas["ops"]
    root = _statement(dag.render_sql(env), f"{ops}.FINSIGHT_HOURLY")
    assert f"\n    ERROR_INTEGRATION = {catalog.error_integration(env)}\n" in root
    assert "\n    TASK_AUTO_RETRY_ATTEMPTS = 2\n" in root
    assert "None" not in root


def test_the_finalizer_runs_after_every_graph_run_and_is_the_only_one(env: Environment) -> None:
    ops = env.snowflake.schemas["ops"]
    sql = dag.render_sql(env)
    finalizer = _statement(sql, f"{ops}.FINSIGHT_HOURLY_FINALIZE")
    assert f"\n    FINALIZE = {ops}.FINSIGHT_HOURLY\n" in finalizer
    assert "AFTER" not in finalizer and "SCHEDULE" not in finalizer
    assert sql.count("FINALIZE = ") == 1
    # its own name: FINALIZE leaves its own rows (executing now, failed in an earlier attempt) out of the outcome
    call = f"CALL OPS.FINALIZE_RUN(\n        {dag.RUN_ID_EXPR},\n        'FINSIGHT_HOURLY_FINALIZE'\n    );"
    assert call in finalizer


def test_each_merge_call_passes_spec_run_id_and_no_replay_batch(env: Environment) -> None:
    ops = env.snowflake.schemas["ops"]
    sql = dag.render_sql(env)
    for table in env.tables():
        task = _statement(sql, f"{ops}.MERGE_{table.raw_name}")
        spec = json.dumps(marts.merge_spec(env, table), separators=(",", ":"))  # compact: one literal per line
        noqa = "  -- noqa: LT05" if len(spec) + 11 > dag.MAX_LINE_LENGTH else ""
        assert f"\n    CALL OPS.MERGE_TABLE(\n        '{spec}',{noqa}\n" in task
        assert f"\n        {dag.RUN_ID_EXPR},\n        NULL\n    );\n" in task
        assert f"\n    AFTER {ops}.FINSIGHT_HOURLY\n" in task
        assert f"COMMENT = 'RAW -> CURATED merge of {table.qualified} | owner: " in task
        assert f"WAREHOUSE = {env.snowflake.warehouse_name('load')}\n" in task


def test_apostrophes_in_comments_cannot_end_the_literal() -> None:
    env = load_environment("dev")
    source = next(iter(env.postgres_sources))
    changed = env.model_copy(
        update={"postgres_sources": {**env.postgres_sources, source: env.postgres_sources[source].model_copy(
            update={"owner": "@finsight/o'brien"})}}
    )  # fmt: skip
    tasks = dag.render_sql(changed).split("CREATE OR REPLACE TASK", 1)[1]  # the header's `--` lines hold no literal
    assert "o\u2019brien" in tasks and "o'brien" not in tasks


def test_a_line_of_exactly_the_limit_needs_no_noqa() -> None:
    node = dag.TaskNode("M", procedures.MERGE_TABLE, ("x" * (dag.MAX_LINE_LENGTH - 11), None), (), "load", "o", "c")
    block = dag._call_block(node)
    first = block.splitlines()[1]
    assert len(first) == dag.MAX_LINE_LENGTH and not first.endswith("LT05")
    longer = dag.TaskNode("M", procedures.MERGE_TABLE, ("x" * (dag.MAX_LINE_LENGTH - 10), None), (), "load", "o", "")
    assert dag._call_block(longer).splitlines()[1].endswith("  -- noqa: LT05")
