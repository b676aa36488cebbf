"""START_RUN / FINALIZE_RUN procedures: the run log engineers read during incidents (OPS.PIPELINE_RUNS).

FINALIZE_RUN raises when any task of the run failed, so the Task graph run fails and its error integration alerts.
"""

from __future__ import annotations

import json
from typing import Any

from snowpark.sql_text import literal

RUN_LOG = "OPS.PIPELINE_RUNS"


def record_task(session: Any, run_id: str, task: str, state: str, detail: str | None = None) -> None:
    """Append a task state (RUNNING, SUCCEEDED, FAILED) to the run log."""
    finished = "NULL" if state == "RUNNING" else "CURRENT_TIMESTAMP()"
    session.sql(
        f"INSERT INTO {RUN_LOG} (RUN_ID, TASK_NAME, STATE, STARTED_AT, FINISHED_AT, DETAIL) VALUES "
        f"({literal(run_id)}, {literal(task)}, {literal(state)}, CURRENT_TIMESTAMP(), {finished}, {literal(detail)})"
    ).collect()


def start_run(session: Any, run_id: str) -> str:
    record_task(session, run_id, "RUN", "RUNNING")
    return json.dumps({"run_id": run_id, "state": "RUNNING"})


def finalize_run(session: Any, run_id: str) -> str:
    rows = session.sql(
        f"SELECT TASK_NAME, STATE, DETAIL FROM {RUN_LOG} WHERE RUN_ID = {literal(run_id)} AND TASK_NAME <> 'RUN' "
        "AND FINISHED_AT IS NOT NULL"
    ).collect()
    failed = sorted({r["TASK_NAME"] for r in rows if r["STATE"] == "FAILED"})
    state = "FAILED" if failed else "SUCCEEDED"
    detail = json.dumps({"tasks": len({r["TASK_NAME"] for r in rows}), "failed": failed})
    record_task(session, run_id, "RUN", state, detail)
    if failed:
        raise RuntimeError(f"run {run_id} failed tasks: {', '.join(failed)}")
    return json.dumps({"run_id": run_id, "state": state})
