"""START_RUN / FINALIZE_RUN procedures: the run log engineers read during incidents (OPS.PIPELINE_RUNS).

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

from snowpark.sql_text import literal

RUN_LOG = "OPS.PIPELINE_RUNS"
RUN_BATCHES = "OPS.RUN_BATCHES"
TASK_HISTORY = "OPS.TASK_HISTORY"
STAGE_PREFIXES = ("EXTRACT_", "LOAD")  # stages outside Snowflake (ECS connectors, Snowpipe)


def record_task(session: Any, run_id: str, task: str, state: str, detail: str | None = None) -> None:
    """Append a task state (RUNNING, SUCCEEDED, FAILED, SKIPPED) to the run log."""
    finished = "NULL" if state == "RUNNING" else "CURRENT_TIMESTAMP()"
    session.sql(
        f"INSERT INTO {RUN_LOG} (RUN_ID, TASK_NAME, STATE, STARTED_AT, FINISHED_AT, DETAIL) VALUES "
        f"({literal(run_id)}, {literal(task)}, {literal(state)}, CURRENT_TIMESTAMP(), {finished}, {literal(detail)})"
    ).collect()


def record_attempt(session: Any, row: dict[str, Any]) -> None:
    """One OPS.TASK_HISTORY row (Snowflake TASK_HISTORY's columns) for a finished task attempt."""
    columns = [
        "NAME", "STATE", "SCHEDULED_TIME", "QUERY_START_TIME", "COMPLETED_TIME", "RETURN_VALUE", "ERROR_CODE",
        "ERROR_MESSAGE", "ATTEMPT_NUMBER", "GRAPH_RUN_GROUP_ID", "RUN_ID", "CONFIG",
    ]  # fmt: skip
    values = []
    for c in columns:
        v = row.get(c.lower())
        values.append(str(int(v)) if isinstance(v, int) else literal(v if v is None else str(v)))
    session.sql(f"INSERT INTO {TASK_HISTORY} ({', '.join(columns)}) VALUES ({', '.join(values)})").collect()


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


def run_state(session: Any, run_id: str) -> tuple[str, list[str], list[str]]:
    """(state, failed graph tasks, failed stages) from the latest row of every task of the run."""
    rows = session.sql(
        f"SELECT TASK_NAME, STATE FROM {RUN_LOG} WHERE RUN_ID = {literal(run_id)} AND TASK_NAME <> 'RUN' "
        "AND FINISHED_AT IS NOT NULL "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY TASK_NAME ORDER BY FINISHED_AT DESC, STARTED_AT DESC) = 1"
    ).collect()
    failed = sorted(r["TASK_NAME"] for r in rows if r["STATE"] in ("FAILED", "SKIPPED"))
    stages = [t for t in failed if t.startswith(STAGE_PREFIXES)]
    tasks = [t for t in failed if not t.startswith(STAGE_PREFIXES)]
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


def finalize_run(session: Any, run_id: str) -> str:
    """Handler of OPS.FINALIZE_RUN(run_id)."""
    state, tasks, stages = run_state(session, run_id)
    count = session.sql(
        f"SELECT COUNT(DISTINCT TASK_NAME) FROM {RUN_LOG} WHERE RUN_ID = {literal(run_id)} AND TASK_NAME <> 'RUN'"
    ).collect()[0][0]
    detail = {"state": state, "tasks": int(count), "failed": tasks, "failed_stages": stages, **latency(session, run_id)}
    detail["quality_failures"] = quality_failures(session, run_id)
    record_task(session, run_id, "RUN", state, json.dumps(detail))
    if state != "SUCCEEDED":
        failing = ", ".join(f"{s}: {' '.join(ids)}" for s, ids in detail["quality_failures"].items())
        raise RuntimeError(f"run {run_id} {state}: failed tasks {tasks or '-'}, failed stages {stages or '-'}"
                           + (f", quality checks failed ({failing})" if failing else ""))  # fmt: skip
    return json.dumps({"run_id": run_id, **detail})
