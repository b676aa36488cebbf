"""The local player of the Snowflake Task DAG: same nodes, same procedure handlers, run in-process.

Each task attempt is written twice: a state row in OPS.PIPELINE_RUNS (the run log) and a row of Snowflake's own
task record, kept by the player in the emulation of INFORMATION_SCHEMA.TASK_HISTORY (finsight/local/task_history.py):
FINALIZE, `finsight status`, alerts and the dashboard read it with the SQL they run on Snowflake. Extract and load
stages (ECS connectors and Snowpipe in AWS) are played by the caller and handed in as `stages`: they are not
Snowflake tasks, so their rows go to OPS.TASK_HISTORY, under the same graph run id.

Semantics follow Snowflake's: a task runs only when its predecessors succeeded (else SKIPPED), the finalizer
always runs, `config` is the graph CONFIG (EXECUTE TASK ... USING CONFIG), `retry_last` re-runs the failed and
skipped tasks of the last failed graph run as a new attempt in the same graph run group (EXECUTE TASK ... RETRY LAST).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from finsight import catalog, marts, warehouse
from finsight.config import Environment
from finsight.idle_pool import IdlePool
from finsight.local import task_history as emulation
from finsight.ops import task_runs
from snowpark import pipeline_catalog
from snowpark.run_log import STAGE_PREFIXES, record_attempt, record_task
from snowpark.sql_text import literal
from tasks.dag import DEFAULT_CONFIG, FINALIZER, ROOT, RUN_ID_EXPR, TaskNode, build_dag, build_retention_dag

log = logging.getLogger("finsight.tasks")


@dataclass
class TaskResult:
    name: str
    state: str
    seconds: float
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    started: float = 0.0  # time.monotonic() at start and end: tasks run side by side, so wall time is their span
    finished: float = 0.0


@dataclass
class StageResult:
    """An extract or load stage the caller ran (locally: connectors, the Snowpipe player)."""

    name: str
    state: str  # SUCCEEDED | FAILED
    started_at: datetime
    completed_at: datetime
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class DagRun:
    run_id: str
    tasks: list[TaskResult]
    attempt: int = 1
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return all(t.state == "SUCCEEDED" for t in self.tasks)

    @property
    def state(self) -> str:
        """FAILED when a graph task failed, PARTIAL when only an extract/load stage did, else SUCCEEDED."""
        bad = [t for t in self.tasks if t.state != "SUCCEEDED" and t.name != FINALIZER]
        if any(not t.name.startswith(STAGE_PREFIXES) for t in bad):
            return "FAILED"
        if bad:
            return "PARTIAL"
        return "SUCCEEDED" if self.succeeded else "FAILED"

    def merged_rows(self) -> int:
        return sum(int(t.output.get("rows_merged", 0)) for t in self.tasks)

    def deleted_rows(self) -> int:
        return sum(int(t.output.get("rows_deleted", 0)) for t in self.tasks)

    def latency_seconds(self) -> float | None:
        final = next((t for t in self.tasks if t.name == FINALIZER), None)
        return final.output.get("latency_seconds") if final else None

    def stage_seconds(self) -> dict[str, float]:
        """Wall seconds per kind of task (merge, quality, transform, validate), for the cycle summary and the bench:
        the time at least one task of the kind was running (tasks of a kind run side by side)."""
        kinds = {"MERGE_": "merge", "CHECK_": "quality", "MART_": "transform", "VALIDATE_": "validate"}
        spans: dict[str, list[tuple[float, float]]] = {}
        for t in self.tasks:
            kind = next((k for prefix, k in kinds.items() if t.name.startswith(prefix)), None)
            if kind is not None:
                spans.setdefault(kind, []).append((t.started, t.finished))
        return {kind: round(_covered(intervals), 2) for kind, intervals in spans.items()}


def _covered(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end] intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def sync_catalog(env: Environment, session: Any) -> None:
    """What `finsight dag deploy` stores for the procedures: table and mart specs (OPS.PIPELINE_CATALOG)."""
    pipeline_catalog.write(session, marts.pipeline_catalog(env))


def _history(session: Any, node_name: str, state: str, scheduled: datetime, started: datetime, completed: datetime,
             attempt: int, run_id: str, run_ms: int, config: str, output: Any = None, error: str | None = None,
             error_code: str | None = None) -> None:  # fmt: skip
    """A stage's attempt: a row of ours in OPS.TASK_HISTORY (Snowflake has no record of what runs outside it)."""
    record_attempt(
        session,
        {
            "name": node_name,
            "state": state,
            "scheduled_time": scheduled,
            "query_start_time": started,
            "completed_time": completed,
            "return_value": None if output is None else json.dumps(output),
            "error_code": error_code,
            "error_message": error,
            "attempt_number": attempt,
            "graph_run_group_id": run_id,
            "run_id": run_ms,
            "config": None,
        },
    )


def _root_task_id(env: Environment) -> str:
    """A stable id of the hourly graph's root, as SHOW TASKS' ID column gives it in Snowflake."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{env.snowflake.database}.{env.snowflake.schemas['ops']}.{ROOT}"))


def _task_record(env: Environment, session: Any, node: TaskNode, state: str, scheduled: datetime, started: datetime,
                 completed: datetime, attempt: int, run_id: str, run_ms: int, config: str, output: Any = None,
                 error: str | None = None, error_code: str | None = None) -> None:  # fmt: skip
    """A graph task's attempt as Snowflake records it (the INFORMATION_SCHEMA.TASK_HISTORY emulation)."""
    row = {
        "query_id": None if state == "SKIPPED" else str(uuid.uuid4()),
        "name": node.name,
        "database_name": env.snowflake.database.upper(),
        "schema_name": env.snowflake.schemas["ops"].upper(),
        "query_text": node.call_sql(RUN_ID_EXPR),
        "state": state,
        "error_code": error_code,
        "error_message": error,
        "scheduled_time": scheduled,
        "query_start_time": started,
        "completed_time": completed,
        "root_task_id": _root_task_id(env),
        "run_id": run_ms,
        "return_value": None if output is None else json.dumps(output),
        "scheduled_from": "SCHEDULE",
        "attempt_number": attempt,
        "config": config if node.name == ROOT else None,
        "graph_run_group_id": run_id,
    }
    session.sql(emulation.insert_statement(env.snowflake.database, row)).collect()


@contextmanager
def owners_rights(env: Environment, session: Any, owner: str | None) -> Iterator[None]:
    """Run as Snowflake runs an owner's-rights procedure: as its owner role (the local Snowflake applies the masking
    policies for the session's role), then back to the pipeline role. No owner: the pipeline role throughout."""
    if owner is None:
        yield
        return
    roles = catalog.access_roles(env)
    session.sql(f"USE ROLE {roles[owner]}").collect()
    try:
        yield
    finally:
        session.sql(f"USE ROLE {roles['pipeline']}").collect()


def _run_node(
    env: Environment, session: Any, node: TaskNode, run_id: str, config_json: str
) -> tuple[TaskResult, str | None]:
    started = time.monotonic()
    if node.name not in (ROOT, FINALIZER):
        record_task(session, run_id, node.name, "RUNNING")
    code = None
    try:
        assert node.procedure is not None
        with owners_rights(env, session, node.procedure.owner):
            raw = node.procedure.function()(session, *node.local_args(run_id, config_json))
        output = json.loads(raw) if raw else {}
        state, error = "SUCCEEDED", None
    except Exception as exc:
        output, state = {}, "FAILED"
        error = f"{type(exc).__name__}: {exc}"
        code = str(getattr(exc, "errno", None) or type(exc).__name__)
        # one line for the operator (the history keeps the error); the traceback only in debug logs
        print(f"task {node.name} FAILED: {error.splitlines()[0]}", file=sys.stderr)
        log.debug("task %s failed", node.name, exc_info=True)
    if node.name not in (ROOT, FINALIZER):
        record_task(session, run_id, node.name, state, error or json.dumps(output))
    finished = time.monotonic()
    return TaskResult(node.name, state, round(finished - started, 3), output, error, started, finished), code


# How many graph tasks the local player runs at once, each on a session of its own. Snowflake starts every task
# whose predecessors finished (22 MERGE tasks side by side); locally the sessions share one fakesnow server, so a few
# are enough to keep its DuckDB and the client busy while another statement is parsed.
TASK_WORKERS = 4


def _plan(nodes: list[TaskNode], only: list[str] | None, rerun: set[str] | None) -> tuple[list[TaskNode], set[str]]:
    """(the graph tasks this attempt runs, those taken as already succeeded): `only` keeps those MERGE tasks and what
    reads nothing but their output (`after`; a merge it only waits for does not hold it back when left out);
    `rerun` keeps just those tasks. The finalizer always runs."""
    left_out: set[str] = set()
    assumed: set[str] = set()
    to_run: list[TaskNode] = []
    for node in nodes:
        if node.is_stage:
            continue
        if (
            only
            and node.name != FINALIZER
            and ((node.name.startswith("MERGE_") and node.name not in only) or any(a in left_out for a in node.after))
        ):
            left_out.add(node.name)
            continue
        if rerun is not None and node.name not in rerun and node.name != FINALIZER:
            assumed.add(node.name)  # succeeded in an earlier attempt of this graph run
            continue
        to_run.append(node)
    return to_run, assumed


def run_dag(
    env: Environment,
    session: Any,
    run_id: str,
    only: list[str] | None = None,
    config: dict[str, Any] | None = None,
    stages: list[StageResult] | None = None,
    attempt: int = 1,
    rerun: set[str] | None = None,
    scheduled: datetime | None = None,
    workers: int = TASK_WORKERS,
) -> DagRun:
    """Play the hourly graph: each task starts once its predecessors finished, up to `workers` at a time, as
    Snowflake runs a graph. `only`: just these MERGE tasks and the tasks downstream of nothing but them;
    `rerun`: just these tasks (retry of an attempt). The finalizer runs last."""
    merged_config = {**DEFAULT_CONFIG, **(config or {})}
    config_json = json.dumps(merged_config)
    scheduled = scheduled or _now()
    run_ms = int(scheduled.replace(tzinfo=UTC).timestamp() * 1000)  # Snowflake's RUN_ID: scheduled time, epoch ms
    sync_catalog(env, session)
    for sql in emulation.create_statements(env.snowflake.database, env.snowflake.schemas["ops"]):
        session.sql(sql).collect()
    nodes = build_dag(env)
    by_stage = {s.name: s for s in stages or []}
    results: dict[str, TaskResult] = {}
    for node in nodes:
        stage = by_stage.get(node.name) if node.is_stage else None
        if stage is None:
            continue
        record_task(session, run_id, node.name, stage.state, stage.error or json.dumps(stage.output))
        _history(session, node.name, stage.state, stage.started_at, stage.started_at, stage.completed_at, attempt,
                 run_id, run_ms, config_json, stage.output, stage.error,
                 None if stage.state == "SUCCEEDED" else "STAGE_FAILED")  # fmt: skip
        seconds = (stage.completed_at - stage.started_at).total_seconds()
        results[node.name] = TaskResult(node.name, stage.state, round(seconds, 3), stage.output, stage.error)

    to_run, assumed = _plan(nodes, only, rerun)
    states: dict[str, str] = dict.fromkeys(assumed, "SUCCEEDED")
    pending = {n.name for n in to_run}

    def play(node: TaskNode, session: Any) -> TaskResult:
        # a predecessor this attempt does not run (left out, a stage) does not hold the task back
        blocked = [a for a in node.predecessors if states.get(a, "SUCCEEDED") != "SUCCEEDED" and a in states]
        started_at = _now()
        if blocked and node.name != FINALIZER:
            error = f"not run: predecessor {', '.join(blocked)} did not succeed"
            record_task(session, run_id, node.name, "SKIPPED", error)
            _task_record(env, session, node, "SKIPPED", scheduled, started_at, started_at, attempt, run_id, run_ms,
                         config_json, None, error)  # fmt: skip
            now = time.monotonic()
            return TaskResult(node.name, "SKIPPED", 0.0, {}, error, now, now)
        result, code = _run_node(env, session, node, run_id, config_json)
        _task_record(env, session, node, result.state, scheduled, started_at, _now(), attempt, run_id, run_ms,
                     config_json, result.output or None, result.error, code)  # fmt: skip
        return result

    def ready(node: TaskNode) -> bool:
        if node.name == FINALIZER:
            return pending == {FINALIZER}
        return not any(a in pending for a in node.predecessors)

    def open_session() -> tuple[Any, Callable[[], None]]:
        opened = warehouse.snowpark_session(env)
        return opened, opened.close

    sessions = IdlePool(session, open_session)
    running: dict[Future[TaskResult], TaskNode] = {}

    def start(node: TaskNode) -> Future[TaskResult]:
        def task() -> TaskResult:
            with sessions.borrowed() as own:
                return play(node, own)

        return pool.submit(task)

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="task") as pool:
            waiting = list(to_run)
            while waiting or running:
                for node in [n for n in waiting if ready(n)]:
                    waiting.remove(node)
                    running[start(node)] = node
                if not running:
                    raise RuntimeError(f"graph cannot go on: {', '.join(n.name for n in waiting)} wait on each other")
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    node = running.pop(future)
                    result = future.result()  # a failure to record the task (not the task's own) ends the run
                    states[node.name] = result.state
                    pending.discard(node.name)
                    results[node.name] = result
    finally:
        sessions.close()
    # in the graph's order, whatever order the tasks finished in
    return DagRun(run_id, [results[n.name] for n in nodes if n.name in results], attempt, merged_config)


class NothingToRetryError(RuntimeError):
    """The last graph run did not fail (Snowflake refuses RETRY LAST then too)."""


def retry_last(env: Environment, session: Any) -> DagRun:
    """EXECUTE TASK <root> RETRY LAST: the failed and skipped tasks of the last graph run, as its next attempt."""
    # Snowflake's record of the graph, read as on Snowflake (the player's emulation answers locally)
    history = task_runs.attempts(env)
    last = session.sql(
        f"SELECT GRAPH_RUN_GROUP_ID, SCHEDULED_TIME, CONFIG FROM {history} AS h WHERE NAME = {literal(ROOT)} "
        "ORDER BY SCHEDULED_TIME DESC, ATTEMPT_NUMBER ASC LIMIT 1"
    ).collect()
    if not last:
        raise NothingToRetryError("no graph run in the task history yet")
    run_id, scheduled, config = last[0][0], last[0][1], json.loads(last[0][2] or "{}")
    latest = session.sql(
        f"SELECT NAME, STATE, ATTEMPT_NUMBER FROM {history} AS h WHERE GRAPH_RUN_GROUP_ID = {literal(run_id)} "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY NAME ORDER BY ATTEMPT_NUMBER DESC, COMPLETED_TIME DESC) = 1"
    ).collect()
    attempt = max(int(r[2]) for r in latest) + 1
    final = next((r[1] for r in latest if r[0] == FINALIZER), None)
    if final == "SUCCEEDED":
        raise NothingToRetryError(f"the last graph run {run_id} succeeded: nothing to retry")
    failed = {r[0] for r in latest if r[1] in ("FAILED", "SKIPPED") and not r[0].startswith(STAGE_PREFIXES)}
    failed.discard(FINALIZER)
    return run_dag(env, session, run_id, config=config, attempt=attempt, rerun=failed, scheduled=scheduled)


def stream_has_data(env: Environment, session: Any) -> bool:
    """SYSTEM$STREAM_HAS_DATA on the trigger stream: landed batches no graph run was started for yet."""
    ops = env.snowflake.schemas["ops"]
    n = session.sql(
        f"SELECT COUNT(*) FROM {ops}.{catalog.MANIFEST_TABLE} WHERE BATCH_ID NOT IN "
        f"(SELECT BATCH_ID FROM {ops}.{catalog.RUN_BATCHES_TABLE})"
    ).collect()[0][0]
    return int(n) > 0


def run_retention(env: Environment, session: Any, run_id: str) -> DagRun:
    """The daily retention graph (root PRUNE_RAW, then APPLY_RETENTION)."""
    sync_catalog(env, session)
    results, states = [], {}
    for node in build_retention_dag(env):
        if any(states.get(a) != "SUCCEEDED" for a in node.after):
            results.append(TaskResult(node.name, "SKIPPED", 0.0))
            continue
        result, _ = _run_node(env, session, node, run_id, "{}")
        states[node.name] = result.state
        results.append(result)
    return DagRun(run_id, results)
