"""`dag deploy` never changes a task of a started graph: for every CREATE TASK / ALTER TASK of a task, the root of its
graph was suspended earlier in the same deploy and not resumed since (Snowflake refuses otherwise:
https://docs.snowflake.com/release-notes/bcr-bundles/2026_06/bcr-2363 keeps that rule for every task of a graph).
Pure: the rendered statements, graphs read back from their AFTER / FINALIZE clauses, not from tasks/dag.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from finsight.cli.dag_cmd import deploy_statements
from finsight.config import Environment, load_environment
from tasks import dag


@pytest.fixture(params=["local", "dev", "prod"])
def env(request: pytest.FixtureRequest) -> Environment:
    return load_environment(request.param)


def _statements(env: Environment) -> list[str]:
    """Everything deploy runs, in order (render_sql is one script: its statements end with `;` and a newline)."""
    script = [s.strip() for s in dag.render_sql(env).split(";\n") if s.strip()]
    script = ["\n".join(line for line in s.splitlines() if not line.startswith("--")).strip() for s in script]
    return [*deploy_statements(env, Path("/tmp/snowpark.zip")), *[s for s in script if s]]


def _roots(statements: list[str]) -> dict[str, str]:
    """task -> root of its graph, from the CREATE TASK text: AFTER predecessors, FINALIZE = root."""
    parents: dict[str, list[str]] = {}
    for sql in statements:
        if m := re.match(r"CREATE (?:OR REPLACE )?TASK (\S+)", sql):
            after = re.search(r"\n\s*AFTER ([^\n]+?)(?:  -- noqa.*)?\n", sql)
            finalize = re.search(r"\n\s*FINALIZE = (\S+)\n", sql)
            parents[m.group(1)] = [p.strip() for p in after.group(1).split(",")] if after else []
            if finalize:
                parents[m.group(1)] = [finalize.group(1)]

    def root(name: str) -> str:
        return name if not parents[name] else root(parents[name][0])

    return {name: root(name) for name in parents}


def test_every_task_change_happens_while_its_graph_root_is_suspended(env: Environment) -> None:
    statements = _statements(env)
    roots = _roots(statements)
    assert len(set(roots.values())) == 2  # the hourly and the retention graph
    started = set(roots.values())  # the worst case: every graph is running when deploy starts
    checked = 0
    for sql in statements:
        if m := re.match(r"ALTER TASK (?:IF EXISTS )?(\S+) (SUSPEND|RESUME)$", sql):
            name, action = m.groups()
            if roots[name] != name:  # a child changes state: only while its root is suspended
                assert roots[name] not in started, f"{name} {action} while its root {roots[name]} is started"
            elif action == "SUSPEND":
                started.discard(name)
            else:
                started.add(name)
            continue
        if m := re.match(r"CREATE (?:OR REPLACE )?TASK (\S+)", sql):
            name = m.group(1)
            assert roots[name] not in started, f"{name} replaced while its root {roots[name]} is started"
            checked += 1
    assert checked == len(roots)
    assert started == set(roots.values())  # every graph is resumed at the end


def test_the_suspended_roots_are_the_graphs_roots(env: Environment) -> None:
    ops = env.snowflake.schemas["ops"]
    assert dag.suspend_statements(env) == [
        f"ALTER TASK IF EXISTS {ops}.{dag.ROOT} SUSPEND",
        f"ALTER TASK IF EXISTS {ops}.{dag.RETENTION_ROOT} SUSPEND",
    ]


def test_the_pipeline_catalog_is_replaced_in_one_transaction(env: Environment) -> None:
    """Snowflake autocommits each statement outside an explicit transaction: DELETE + INSERT without BEGIN ... COMMIT
    could leave the procedures an empty catalog (https://docs.snowflake.com/en/sql-reference/transactions)."""
    statements = deploy_statements(env, Path("/tmp/snowpark.zip"))
    delete = next(i for i, s in enumerate(statements) if s.startswith("DELETE FROM"))
    assert statements[delete - 1] == "BEGIN"
    assert statements[delete + 1].startswith("INSERT INTO") and statements[delete + 2] == "COMMIT"
