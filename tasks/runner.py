"""The local player of the Snowflake Task DAG: same nodes, same procedure handlers, run in-process.

Each task's state goes to OPS.PIPELINE_RUNS (Snowflake keeps TASK_HISTORY; locally this log is what you read).
A failed task does not stop its siblings; the finalizer always runs and fails the run if anything failed.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from finsight.config import Environment
from snowpark.run_log import record_task
from tasks.dag import FINALIZER, ROOT, TaskNode, build_dag


@dataclass
class TaskResult:
    name: str
    state: str
    seconds: float
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class DagRun:
    run_id: str
    tasks: list[TaskResult]

    @property
    def succeeded(self) -> bool:
        return all(t.state == "SUCCEEDED" for t in self.tasks)

    def merged_rows(self) -> int:
        return sum(int(t.output.get("rows_merged", 0)) for t in self.tasks)

    def deleted_rows(self) -> int:
        return sum(int(t.output.get("rows_deleted", 0)) for t in self.tasks)


def _run_node(session: Any, node: TaskNode, run_id: str) -> TaskResult:
    started = time.monotonic()
    if node.name not in (ROOT, FINALIZER):
        record_task(session, run_id, node.name, "RUNNING")
    try:
        raw = node.procedure.function()(session, *node.local_args(run_id))
        output = json.loads(raw) if raw else {}
        state, error = "SUCCEEDED", None
    except Exception as exc:
        output, state = {}, "FAILED"
        error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    if node.name not in (ROOT, FINALIZER):
        record_task(session, run_id, node.name, state, error or json.dumps(output))
    return TaskResult(node.name, state, time.monotonic() - started, output, error)


def run_dag(env: Environment, session: Any, run_id: str, only: list[str] | None = None) -> DagRun:
    nodes = build_dag(env)
    results = []
    for node in nodes:
        if only and node.name not in (ROOT, FINALIZER) and node.name not in only:
            continue
        results.append(_run_node(session, node, run_id))
    return DagRun(run_id, results)
