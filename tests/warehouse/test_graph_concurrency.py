"""The local player runs the graph as Snowflake does: sibling tasks side by side, each only after its predecessors
finished, the finalizer last, and the run's task list in the graph's order whatever order the tasks finished in."""

from __future__ import annotations

import uuid

import pytest

from finsight import warehouse
from finsight.config import Environment
from finsight.local.stack import LocalStack
from tasks import runner
from tasks.dag import FINALIZER, build_dag
from tasks.runner import DagRun, TaskResult, run_dag

pytestmark = pytest.mark.stack

# payments and the three tables its references point at: four merges, then checks that wait on several of them
TABLES = ["merchants.merchants", "customers.customers", "billing.invoices", "payments.payments"]


def _run(env: Environment, workers: int) -> DagRun:
    only = [f"MERGE_{env.table(t).raw_name}" for t in TABLES]
    session = warehouse.snowpark_session(env)
    try:
        return run_dag(env, session, f"test-concurrency-{uuid.uuid4().hex[:8]}", only=only, workers=workers)
    finally:
        session.close()


def _overlapping(tasks: list[TaskResult]) -> list[tuple[str, str]]:
    return [(a.name, b.name) for i, a in enumerate(tasks) for b in tasks[i + 1 :]
            if a.started < b.finished and b.started < a.finished]  # fmt: skip


def test_siblings_run_side_by_side_and_each_task_after_its_predecessors(
    local_env: Environment, local_stack: LocalStack
) -> None:
    run = _run(local_env, workers=runner.TASK_WORKERS)
    assert run.state == "SUCCEEDED", [(t.name, t.error) for t in run.tasks if t.error]
    by_name = {t.name: t for t in run.tasks}
    merges = [t for t in run.tasks if t.name.startswith("MERGE_")]
    assert len(merges) == len(TABLES) and _overlapping(merges), "the four merges ran one after another"

    order = [n.name for n in build_dag(local_env) if n.name in by_name]
    assert [t.name for t in run.tasks] == order  # the graph's order, not the order they finished in
    for node in build_dag(local_env):
        task = by_name.get(node.name)
        for before in (by_name[a] for a in node.predecessors if a in by_name and task is not None):
            assert task.started >= before.finished, f"{node.name} started before {before.name} finished"
    final = by_name[FINALIZER]
    assert all(final.started >= t.finished for t in run.tasks if t is not final)


def test_one_worker_runs_the_graph_one_task_at_a_time(local_env: Environment, local_stack: LocalStack) -> None:
    """What the overlap assertion above measures: with a single worker no two tasks overlap."""
    run = _run(local_env, workers=1)
    assert run.state == "SUCCEEDED", [(t.name, t.error) for t in run.tasks if t.error]
    assert not _overlapping([t for t in run.tasks if t.finished > t.started])


def test_the_tasks_run_in_the_pipeline_schema(local_env: Environment, local_stack: LocalStack) -> None:
    """A Snowflake task runs its statement in its own schema (OPS). The player first creates its emulation of
    Snowflake's task record in a schema of its own, and CREATE SCHEMA makes that the session's current schema: the
    tasks borrowing the session must not run there (nor would the local Snowflake's rewrites of their statements be
    shared with the other sessions'). Red without the USE SCHEMA after it."""
    session = warehouse.snowpark_session(local_env)
    try:
        run = run_dag(local_env, session, f"test-schema-{uuid.uuid4().hex[:8]}",
                      only=[f"MERGE_{local_env.table(TABLES[0]).raw_name}"], workers=1)  # fmt: skip
        current = session.sql("SELECT CURRENT_SCHEMA()").collect()[0][0]
    finally:
        session.close()
    assert run.state == "SUCCEEDED", [(t.name, t.error) for t in run.tasks if t.error]
    assert str(current).upper() == local_env.snowflake.schemas["ops"].upper()
