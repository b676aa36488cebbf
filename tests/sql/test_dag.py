"""Structure of the hourly Task DAG as rendered for Snowflake (pure: no connection)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest

from finsight import catalog
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
        lines = head.splitlines()
        name = re.fullmatch(r"CREATE OR REPLACE TASK (\S+)", lines[0])
        assert name, lines[0]
        task = Task(name.group(1), body=body)
        for line in lines[1:]:
            key, _, value = line.strip().partition(" ")
            task.clauses[key] = value.removeprefix("= ")
        tasks[task.name] = task
    return tasks, resumed


def _flat(body: str) -> str:
    """The CALL as one line (layout and noqa comments removed) to compare with TaskNode.call_sql."""
    body = re.sub(r"\s*--[^\n]*", "", body)
    return re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", re.sub(r",\s+", ", ", body.strip())))


@pytest.fixture(params=ENVS)
def env(request: pytest.FixtureRequest) -> Environment:
    return load_environment(request.param)


def test_one_root_with_schedule_from_config_cron(env: Environment) -> None:
    ops = env.snowflake.schemas["ops"]
    tasks, _ = _parse(dag.render_sql(env))
    roots = [t for t in tasks.values() if "SCHEDULE" in t.clauses]
    assert [t.name for t in roots] == [f"{ops}.{dag.ROOT}"]
    root = roots[0]
    assert "AFTER" not in root.clauses and "FINALIZE" not in root.clauses
    expected = dag.snowflake_cron(env.schedule.hourly_cron, env.schedule.timezone)
    assert root.clauses["SCHEDULE"] == f"'{expected}'"
    assert int(root.clauses["USER_TASK_TIMEOUT_MS"]) == env.schedule.sla_minutes * 60_000


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
        assert spec and json.loads(spec.group(1)) == catalog.table_spec(table)
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
    assert resumed[-1] == f"{ops}.{dag.ROOT}"
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
    nodes = dag.build_dag(env)
    assert list(tasks) == [f"{ops}.{n.name}" for n in nodes]
    for node in nodes:
        assert _flat(tasks[f"{ops}.{node.name}"].body) == node.call_sql(dag.RUN_ID_EXPR)


def test_no_line_is_long_without_a_reason(env: Environment) -> None:
    for line in dag.render_sql(env).splitlines():
        assert len(line) <= dag.MAX_LINE_LENGTH or line.endswith("-- noqa: LT05"), line
