"""START_RUN / FINALIZE_RUN procedures: the run log engineers read during incidents (OPS.PIPELINE_RUNS).

FINALIZE_RUN reads the outcome of every task from Snowflake's own record of the graph run (the Information Schema
table function TASK_HISTORY, filtered by the run's GRAPH_RUN_GROUP_ID; snowpark/task_history.py), never from rows
of ours: on Snowflake nothing but Snowflake writes task outcomes.

START_RUN consumes the trigger (the stream over OPS.LANDED_BATCHES in Snowflake: the batches this run was started
for go to OPS.RUN_BATCHES) and runs the backfills the graph's CONFIG asks for. FINALIZE_RUN decides the run's state:
FAILED when a task of the graph failed, PARTIAL when only an extract or load stage failed (what landed was merged
and published, a source or a file is missing), SUCCEEDED otherwise; it records the end-to-end latency (oldest
source snapshot of the run's batches -> last mart published) and raises unless SUCCEEDED, so the graph run
fails and its error integration alerts.
"""

from __future__ import annotations

import json
from typing import Any

from snowpark import task_history
from snowpark.sql_text import literal
from snowpark.task_history import STAGE_PREFIXES

RUN_LOG = "OPS.PIPELINE_RUNS"
RUN_BATCHES = "OPS.RUN_BATCHES"


def record_task(session: Any, run_id: str, task: str, state: str, detail: str | None = None) -> None:
    """Append a task state (RUNNING, SUCCEEDED, FAILED, SKIPPED) to the run log."""
    finished = "NULL" if state == "RUNNING" else "CURRENT_TIMESTAMP()"
    session.sql(
        f"INSERT INTO {RUN_LOG} (RUN_ID, TASK_NAME, STATE, STARTED_AT, FINISHED_AT, DETAIL) VALUES "
        f"({literal(run_id)}, {literal(task)}, {literal(state)}, CURRENT_TIMESTAMP(), {finished}, {literal(detail)})"
    ).collect()


def record_attempt(session: Any, row: dict[str, Any]) -> None:
    """One OPS.TASK_HISTORY row (Snowflake TASK_HISTORY's columns) for a finished attempt of a stage outside
    Snowflake (extract, load). Graph tasks are not written here: Snowflake records them itself."""
    columns = [
        "NAME", "STATE", "SCHEDULED_TIME", "QUERY_START_TIME", "COMPLETED_TIME", "RETURN_VALUE", "ERROR_CODE",
        "ERROR_MESSAGE", "ATTEMPT_NUMBER", "GRAPH_RUN_GROUP_ID", "RUN_ID", "CONFIG",
    ]  # fmt: skip
    values = []
    for c in columns:
        v = row.get(c.lower())
        values.append(str(int(v)) if isinstance(v, int) else literal(v if v is None else str(v)))
    table = task_history.STAGE_HISTORY
    session.sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)})").collect()


def _config(config_json: str | None) -> dict[str, Any]:
    if not config_json:
        return {}
    value = json.loads(config_json)
    if isinstance(value, str):  # TO_JSON of a config Snowflake already returned as text
        value = json.loads(value) if value else {}
    if not isinstance(value, dict):
        raise ValueError(f"the graph CONFIG must be a JSON object, got {config_json!r}")
    return value


def start_run(session: Any, run_id: str, config_json: str | None = None, trigger_source: str | None = None) -> str:
    """Handler of OPS.START_RUN(run_id, config, trigger_source)."""
    config = _config(config_json)
    record_task(session, run_id, "RUN", "RUNNING", json.dumps({"config": config}) if config else None)
    consumed = 0
    if trigger_source:
        # reading the stream in a DML advances it: the next trigger only sees batches landed after this point
        session.sql(
            f"INSERT INTO {RUN_BATCHES} (RUN_ID, BATCH_ID, RAW_TABLE, EXTRACTED_AT) "
            f"SELECT DISTINCT {literal(run_id)}, s.BATCH_ID, s.RAW_TABLE, s.EXTRACTED_AT FROM {trigger_source} AS s "
            f"WHERE s.BATCH_ID NOT IN (SELECT BATCH_ID FROM {RUN_BATCHES})"
        ).collect()
        consumed = int(
            session.sql(f"SELECT COUNT(*) FROM {RUN_BATCHES} WHERE RUN_ID = {literal(run_id)}").collect()[0][0]
        )
    backfills = config.get("backfill") or []
    if isinstance(backfills, dict):
        backfills = [backfills]
    results = []
    if backfills:
        from snowpark.backfill import backfill

        for b in backfills:
            results.append(json.loads(backfill(session, b["table"], b["start"], b["end"], run_id)))
    return json.dumps({"run_id": run_id, "state": "RUNNING", "batches": consumed, "backfills": results})


def task_outcomes(session: Any, run_id: str, finalizer: str | None = None) -> dict[str, str]:
    """The latest state of every task and stage of the graph run: Snowflake's record (INFORMATION_SCHEMA.TASK_HISTORY
    for this GRAPH_RUN_GROUP_ID, every attempt of a RETRY LAST included) plus the stage rows of OPS.TASK_HISTORY.
    The finalizer's own rows are left out: it is EXECUTING now, and an earlier attempt's finalizer failed by design."""
    rows = session.sql(
        f"SELECT NAME, STATE FROM ({task_history.latest(task_history.attempts(graph_run_group_id=run_id))}) AS t "
        + ("" if finalizer is None else f"WHERE NAME <> {literal(finalizer)}")
    ).collect()
    return {str(r[0]): str(r[1]) for r in rows}


def run_state(session: Any, run_id: str, finalizer: str | None = None) -> tuple[str, list[str], list[str]]:
    """(state, failed graph tasks, failed stages). No task in Snowflake's record is a FAILED run, never a success
    of 0 tasks: the finalizer's role cannot see the graph (MONITOR on the tasks) or the run id is not the graph's."""
    outcomes = task_outcomes(session, run_id, finalizer)
    failed = sorted(n for n, s in outcomes.items() if s in task_history.NOT_SUCCEEDED)
    stages = [t for t in failed if t.startswith(STAGE_PREFIXES)]
    tasks = [t for t in failed if not t.startswith(STAGE_PREFIXES)]
    if not any(not n.startswith(STAGE_PREFIXES) for n in outcomes):
        tasks = [f"no task of graph run {run_id} in INFORMATION_SCHEMA.TASK_HISTORY"]
    state = "FAILED" if tasks else ("PARTIAL" if stages else "SUCCEEDED")
    return state, tasks, stages


def latency(session: Any, run_id: str) -> dict[str, Any]:
    """Oldest source snapshot among the run's batches -> last mart published by the run."""
    row = session.sql(
        f"SELECT MIN(b.EXTRACTED_AT), (SELECT MAX(PUBLISHED_AT) FROM OPS.MART_BUILDS WHERE RUN_ID = {literal(run_id)}) "
        f"FROM {RUN_BATCHES} AS b WHERE b.RUN_ID = {literal(run_id)}"
    ).collect()[0]
    snapshot, published = row[0], row[1]
    seconds = None
    if snapshot is not None and published is not None:
        seconds = round((published - snapshot).total_seconds(), 1)
    return {
        "oldest_snapshot_at": None if snapshot is None else str(snapshot),
        "published_at": None if published is None else str(published),
        "latency_seconds": seconds,
    }


def quality_failures(session: Any, run_id: str) -> dict[str, list[str]]:
    """Failed quality checks of the run by severity (OPS.QUALITY_RESULTS): what the on-call reads first."""
    rows = session.sql(
        f"SELECT SEVERITY, CHECK_ID FROM OPS.QUALITY_RESULTS WHERE RUN_ID = {literal(run_id)} AND STATUS = 'FAIL' "
        "ORDER BY SEVERITY, CHECK_ID"
    ).collect()
    out: dict[str, list[str]] = {}
    for severity, check_id in rows:
        out.setdefault(severity, []).append(check_id)
    return out


def finalize_run(session: Any, run_id: str, finalizer: str | None = None) -> str:
    """Handler of OPS.FINALIZE_RUN(run_id, finalizer): `finalizer` is the calling task's name."""
    state, tasks, stages = run_state(session, run_id, finalizer)
    count = len(task_outcomes(session, run_id, finalizer))
    detail = {"state": state, "tasks": count, "failed": tasks, "failed_stages": stages, **latency(session, run_id)}
    detail["quality_failures"] = quality_failures(session, run_id)
    record_task(session, run_id, "RUN", state, json.dumps(detail))
    if state != "SUCCEEDED":
        failing = ", ".join(f"{s}: {' '.join(ids)}" for s, ids in detail["quality_failures"].items())
        raise RuntimeError(f"run {run_id} {state}: failed tasks {tasks or '-'}, failed stages {stages or '-'}"
                           + (f", quality checks failed ({failing})" if failing else ""))  # fmt: skip
    return json.dumps({"run_id": run_id, **detail})
