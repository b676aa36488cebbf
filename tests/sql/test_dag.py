"""Structure of the hourly Task DAG as rendered for Snowflake (pure: no connection)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest

from finsight import archive_catalog, catalog, marts
from finsight.config import Environment, load_environment
from tasks import dag

ENVS = ["local", "dev", "staging", "prod"]
DEVOPS_OWNERS = "@finsight/data-engineering @finsight/devops"


@dataclass
class Task:
    name: str
    clauses: dict[str, str] = field(default_factory=dict)
    body: str = ""


def _parse(sql: str) -> tuple[dict[str, Task], list[str]]:
    """CREATE TASK statements -> {name: Task}; ALTER TASK ... RESUME -> names in order."""
    tasks: dict[str, Task] = {}
    resumed = []
    for statement in (s.strip() for s in sql.split(";\n") if s.strip()):
        if m := re.fullmatch(r"ALTER TASK (\S+) RESUME;?", statement):
            resumed.append(m.group(1))
            continue
        head, _, body = statement.partition("\nAS\n")
        lines = [line for line in head.splitlines() if not line.startswith("--")]
        name = re.fullmatch(r"CREATE OR REPLACE TASK (\S+)", lines[0])
        assert name, lines[0]
        task = Task(name.group(1), body=body)
        for line in lines[1:]:
            key, _, value = line.strip().partition(" ")
            task.clauses[key] = value.removeprefix("= ").split("  -- noqa")[0]
        tasks[task.name] = task
    return tasks, resumed


def _flat(body: str) -> str:
    """The CALL as one line (layout and noqa comments removed) to compare with TaskNode.call_sql."""
    body = re.sub(r"\s*--[^\n]*", "", body)
    return re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", re.sub(r",\s+", ", ", body.strip())))


@pytest.fixture(params=ENVS)
def env(request: pytest.FixtureRequest) -> Environment:
    return load_environment(request.param)


def test_hourly_root_is_triggered_by_landed_batches_and_has_a_config(env: Environment) -> None:
    ops = env.snowflake.schemas["ops"]
    tasks, _ = _parse(dag.render_sql(env))
    roots = [t for t in tasks.values() if "AFTER" not in t.clauses and "FINALIZE" not in t.clauses]
    assert sorted(t.name for t in roots) == sorted([f"{ops}.{dag.ROOT}", f"{ops}.{dag.RETENTION_ROOT}"])
    root = tasks[f"{ops}.{dag.ROOT}"]
    assert "SCHEDULE" not in root.clauses  # triggered, not a fixed minute: a late batch does not wait an hour
    assert root.clauses["WHEN"] == f"SYSTEM$STREAM_HAS_DATA('{ops}.{catalog.LANDED_STREAM}')"
    assert json.loads(root.clauses["CONFIG"].strip("$")) == dag.DEFAULT_CONFIG
    assert int(root.clauses["USER_TASK_TIMEOUT_MS"]) == env.schedule.sla_minutes * 60_000
    assert f"'{ops}.{catalog.LANDED_STREAM}'" in root.body and dag.CONFIG_EXPR in root.body


def test_retention_graph_runs_daily_with_the_configured_retention(env: Environment) -> None:
    ops = env.snowflake.schemas["ops"]
    tasks, _ = _parse(dag.render_sql(env))
    root = tasks[f"{ops}.{dag.RETENTION_ROOT}"]
    assert root.clauses["SCHEDULE"] == f"'{dag.snowflake_cron(env.schedule.retention_cron, env.schedule.timezone)}'"
    assert f"{env.retention.raw_table_days}\n    )" in root.body
    keep = tasks[f"{ops}.{dag.RETENTION_7Y}"]
    assert keep.clauses["AFTER"] == root.name and f"{env.retention.curated_years}\n    )" in keep.body


def test_marts_wait_for_their_upstream_merges_and_are_validated(env: Environment) -> None:
    ops = env.snowflake.schemas["ops"]
    tasks, _ = _parse(dag.render_sql(env))
    known = {t.qualified: t for t in env.warehouse_tables()}
    for mart in marts.marts():
        build = tasks[f"{ops}.MART_{mart.table_name}"]
        # a mart waits for its upstreams' quality checks, each of which runs after that table's merge
        ups = [known[u.table].raw_name for u in mart.upstreams if u.table in known]
        assert set(build.clauses["AFTER"].split(", ")) == {f"{ops}.CHECK_{raw}" for raw in ups}
        for raw in ups:
            assert tasks[f"{ops}.CHECK_{raw}"].clauses["AFTER"].split(", ")[0] == f"{ops}.MERGE_{raw}"
        assert tasks[f"{ops}.VALIDATE_{mart.table_name}"].clauses["AFTER"] == build.name
        assert f"| owner: {mart.owner}'" in build.clauses["COMMENT"]


def test_extract_and_load_stages_are_nodes_but_not_tasks(env: Environment) -> None:
    nodes = {n.name: n for n in dag.build_dag(env)}
    stages = [n for n in nodes.values() if n.is_stage]
    sources = [*env.postgres_sources, *env.api_sources]
    assert {n.name for n in stages} == {f"EXTRACT_{s.upper()}" for s in sources} | {dag.LOAD}
    assert nodes[dag.ROOT].after == (dag.LOAD,)
    sql = dag.render_sql(env)
    assert "TASK OPS.LOAD\n" not in sql and "TASK OPS.EXTRACT_" not in sql


@pytest.mark.parametrize(
    ("eventbridge", "tz", "expected"),
    [
        ("5 * * * ? *", "UTC", "USING CRON 5 * * * * UTC"),
        ("30 2 * * ? *", "UTC", "USING CRON 30 2 * * * UTC"),
        ("0 6 ? * MON-FRI *", "Europe/London", "USING CRON 0 6 * * MON-FRI Europe/London"),
    ],
)
def test_snowflake_cron_from_eventbridge(eventbridge: str, tz: str, expected: str) -> None:
    assert dag.snowflake_cron(eventbridge, tz) == expected


def test_one_merge_task_per_table_after_root(env: Environment) -> None:
    ops = env.snowflake.schemas["ops"]
    tasks, _ = _parse(dag.render_sql(env))
    merges = {name: t for name, t in tasks.items() if name.startswith(f"{ops}.MERGE_")}
    assert set(merges) == {f"{ops}.MERGE_{t.raw_name}" for t in env.warehouse_tables()}
    for table in env.warehouse_tables():
        task = merges[f"{ops}.MERGE_{table.raw_name}"]
        assert task.clauses["AFTER"] == f"{ops}.{dag.ROOT}"
        spec = re.search(r"'(\{.*\})'", task.body)
        assert spec and json.loads(spec.group(1)) == marts.merge_spec(env, table)
        assert json.loads(spec.group(1)).items() >= catalog.table_spec(table).items()
        assert f"{dag.RUN_ID_EXPR},\n        NULL\n    )" in task.body  # no replay batch on the schedule


def test_finalizer_finalizes_the_root(env: Environment) -> None:
    ops = env.snowflake.schemas["ops"]
    tasks, _ = _parse(dag.render_sql(env))
    finalizer = tasks[f"{ops}.{dag.FINALIZER}"]
    assert finalizer.clauses["FINALIZE"] == f"{ops}.{dag.ROOT}"
    assert "AFTER" not in finalizer.clauses and "SCHEDULE" not in finalizer.clauses
    assert [t.name for t in tasks.values() if "FINALIZE" in t.clauses] == [finalizer.name]


def test_children_resumed_before_root(env: Environment) -> None:
    ops = env.snowflake.schemas["ops"]
    tasks, resumed = _parse(dag.render_sql(env))
    assert sorted(resumed) == sorted(tasks)
    hourly = [f"{ops}.{n.name}" for n in dag.build_dag(env) if not n.is_stage]
    assert max(resumed.index(t) for t in hourly) == resumed.index(f"{ops}.{dag.ROOT}")  # each root after its children
    assert resumed[-1] == f"{ops}.{dag.RETENTION_ROOT}"
    # every task is created before any is resumed
    sql = dag.render_sql(env)
    assert sql.rindex("CREATE OR REPLACE TASK") < sql.index("ALTER TASK")


def test_warehouses_and_owners(env: Environment) -> None:
    ops = env.snowflake.schemas["ops"]
    tasks, _ = _parse(dag.render_sql(env))
    transform, load = env.snowflake.warehouse_name("transform"), env.snowflake.warehouse_name("load")
    for name in (dag.ROOT, dag.FINALIZER):
        assert tasks[f"{ops}.{name}"].clauses["WAREHOUSE"] == transform
        assert f"| owner: {DEVOPS_OWNERS}'" in tasks[f"{ops}.{name}"].clauses["COMMENT"]
    for table in env.warehouse_tables():
        task = tasks[f"{ops}.MERGE_{table.raw_name}"]
        assert task.clauses["WAREHOUSE"] == load
        assert task.clauses["COMMENT"].endswith(f"| owner: {env.source(table.source).owner}'")


def test_rendered_calls_are_the_nodes_calls(env: Environment) -> None:
    # the SQL layout is whitespace only: same nodes, same order, same CALL as the local runner's
    ops = env.snowflake.schemas["ops"]
    tasks, _ = _parse(dag.render_sql(env))
    nodes = [n for n in dag.build_dag(env) if not n.is_stage] + dag.build_retention_dag(env)
    assert list(tasks) == [f"{ops}.{n.name}" for n in nodes]
    for node in nodes:
        assert _flat(tasks[f"{ops}.{node.name}"].body) == node.call_sql(dag.RUN_ID_EXPR)


def test_no_line_is_long_without_a_reason(env: Environment) -> None:
    for line in dag.render_sql(env).splitlines():
        assert len(line) <= dag.MAX_LINE_LENGTH or line.endswith("-- noqa: LT05"), line


OWNERS = re.compile(r"@finsight/[a-z-]+(?: @finsight/[a-z-]+)*")  # GitHub teams, as in CODEOWNERS


def test_every_task_names_its_warehouse_owner_and_purpose(env: Environment) -> None:
    # MERGE runs on the load warehouse (sized for MERGE), everything else on transform: written out here, not read
    # back from the nodes, so a wrong logical name or a node without an owner or purpose goes red
    ops = env.snowflake.schemas["ops"]
    tasks, _ = _parse(dag.render_sql(env))
    transform, load = env.snowflake.warehouse_name("transform"), env.snowflake.warehouse_name("load")
    retention = {dag.RETENTION_ROOT, dag.RETENTION_7Y} | ({dag.ARCHIVE} if archive_catalog.archive_spec(env) else set())
    assert {f"{ops}.{name}" for name in retention} <= set(tasks)
    for name, task in tasks.items():
        assert task.clauses["WAREHOUSE"] == (load if name.startswith(f"{ops}.MERGE_") else transform), name
        comment = re.fullmatch(r"'(.+) \| owner: (.+)'", task.clauses["COMMENT"])
        assert comment, (name, task.clauses["COMMENT"])
        assert comment.group(1).strip() and "None" not in comment.group(1), name
        assert OWNERS.fullmatch(comment.group(2)), (name, comment.group(2))


def test_the_header_says_what_each_stage_is_and_whose(env: Environment) -> None:
    header = dag.render_sql(env).split("CREATE OR REPLACE TASK")[0].splitlines()
    sources = {f"EXTRACT_{s.upper()}": env.source(s).owner for s in [*env.postgres_sources, *env.api_sources]}
    expected = {**sources, dag.LOAD: DEVOPS_OWNERS}
    assert header[0] == f"-- Stages outside Snowflake ({len(expected)}, history rows only):"
    described = {}
    for purpose, owner in zip(header[1::2], header[2::2], strict=True):
        stage = re.fullmatch(r"--   (\w+): (.+)", purpose)
        assert stage and "None" not in stage.group(2), purpose
        described[stage.group(1)] = owner.removeprefix("--       owner: ")
    assert described == expected


def test_each_check_task_gets_its_tables_quality_spec(env: Environment) -> None:
    from finsight import quality

    ops = env.snowflake.schemas["ops"]
    tasks, _ = _parse(dag.render_sql(env))
    for table in env.warehouse_tables():
        body = tasks[f"{ops}.CHECK_{table.raw_name}"].body
        spec = re.search(r"'(\{.*\})'", body)
        assert spec and json.loads(spec.group(1)) == quality.table_quality_spec(env, table), table.qualified
        assert f"{dag.RUN_ID_EXPR}\n    )" in body


def test_a_referential_check_runs_after_the_merges_of_its_parents(env: Environment) -> None:
    """Snowflake starts sibling tasks together: CHECK_PAYMENTS after MERGE_PAYMENTS alone could count the merchants
    landed this hour as missing while MERGE_MERCHANTS still runs."""
    ops = env.snowflake.schemas["ops"]
    tasks, _ = _parse(dag.render_sql(env))
    after = {name.strip() for name in tasks[f"{ops}.CHECK_PAYMENTS__PAYMENTS"].clauses["AFTER"].split(",")}
    assert {f"{ops}.MERGE_PAYMENTS__PAYMENTS", f"{ops}.MERGE_MERCHANTS__MERCHANTS"} <= after


def test_an_after_line_of_exactly_the_limit_needs_no_noqa() -> None:
    env = load_environment("local")
    ops = env.snowflake.schemas["ops"]
    fits = "A" * (dag.MAX_LINE_LENGTH - len(f"    AFTER {ops}."))
    for name, noqa in ((fits, False), (fits + "A", True)):
        node = dag.TaskNode("T", dag.procedures.FINALIZE_RUN, (dag.RUN_ID,), (name,), "transform", "o", "c")
        after = next(line for line in dag._create(env, node).splitlines() if "AFTER" in line)
        assert after.endswith("  -- noqa: LT05") is noqa, after
        assert len(after.split("  -- noqa")[0]) == len(name) + len(f"    AFTER {ops}.")


def test_when_is_unindented_as_sqlfluff_lays_it_out() -> None:
    sql = dag.render_sql(load_environment("local"))
    assert "\nWHEN SYSTEM$STREAM_HAS_DATA(" in sql and " WHEN " not in sql


def test_every_task_runs_in_utc(env: Environment) -> None:
    """A task runs as its owner, not in a platform session: without its own TIMEZONE session parameter its
    CURRENT_TIMESTAMP() is the account's zone (default America/Los_Angeles). CREATE TASK takes session parameters
    (`<session_parameter> = <value>`, "CREATE TASK", https://docs.snowflake.com/en/sql-reference/sql/create-task);
    fakesnow has no tasks, so this rendering is the only check short of an account."""
    tasks, _ = _parse(dag.render_sql(env))
    nodes = [n for n in [*dag.build_dag(env), *dag.build_retention_dag(env)] if not n.is_stage]
    assert len(tasks) == len(nodes)
    for task in tasks.values():
        assert task.clauses.get("TIMEZONE") == "'UTC'", task.name
