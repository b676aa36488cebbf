"""The local side of the hourly graph: extract and load stages as history rows, and the landing trigger.

In AWS the stages are ECS connector tasks and Snowpipe, and the graph's root is a triggered task on the stream over
OPS.LANDED_BATCHES. Locally the cycle runs the stages, hands their outcome to the DAG runner (same graph run id,
same TASK_HISTORY), and `on_landed` plays the trigger: whenever the Snowpipe player loaded batches no graph run has
consumed yet, the graph runs again, so a batch that lands late still reaches the marts within the hour.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from finsight import warehouse
from finsight.config import Environment
from finsight.local.snowpipe import PipeRun, load_landed
from tasks.runner import DagRun, StageResult, run_dag, stream_has_data


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def extract_stages(
    env: Environment, sources: list[Any], errors: list[str], started_at: datetime, completed_at: datetime
) -> list[StageResult]:
    """One EXTRACT_<SOURCE> result per configured source: FAILED when it returned no run (its error attached)."""
    ran = {s.source: s for s in sources}
    out = []
    # the payment-API sources too: an API that could not be read makes the run PARTIAL, as a database does
    for source in [*env.postgres_sources, *env.api_sources]:
        run = ran.get(source)
        if run is not None:
            end = min(completed_at, started_at + timedelta(seconds=run.seconds))
            output = {"batches": len(run.batches), "rows": run.rows}
            out.append(StageResult(f"EXTRACT_{source.upper()}", "SUCCEEDED", started_at, end, output))
            continue
        mine = [e for e in errors if f"'{source}'" in e or f" {source}" in e or f"/{source}" in e]
        error = (mine or errors or ["no extraction result"])[0].splitlines()[0]
        out.append(StageResult(f"EXTRACT_{source.upper()}", "FAILED", started_at, completed_at, {}, error))
    return out


def load_stage(pipe: PipeRun | None, started_at: datetime, completed_at: datetime) -> StageResult:
    """LOAD fails when any file was quarantined or left queued: the run is then PARTIAL."""
    if pipe is None:
        return StageResult("LOAD", "FAILED", started_at, completed_at, {}, "the Snowpipe player did not run")
    output = {"files_loaded": pipe.files_loaded, "rows_loaded": pipe.rows_loaded, "quarantined": pipe.quarantined,
              "retry": pipe.retry}  # fmt: skip
    if pipe.errors:
        return StageResult("LOAD", "FAILED", started_at, completed_at, output, "; ".join(pipe.errors)[:2000])
    return StageResult("LOAD", "SUCCEEDED", started_at, completed_at, output)


def on_landed(env: Environment, run_id: str | None = None) -> tuple[PipeRun, DagRun | None]:
    """Snowpipe loads what landed; when the trigger stream has data, the graph runs (the triggered root)."""
    started = now()
    pipe = load_landed(env)
    loaded = now()
    session = warehouse.snowpark_session(env)
    try:
        if not stream_has_data(env, session):
            return pipe, None
        run_id = run_id or f"landed-{datetime.now(UTC):%Y%m%dT%H%M%S}-{int(time.time() * 1000) % 1000:03d}"
        return pipe, run_dag(env, session, run_id, stages=[load_stage(pipe, started, loaded)])
    finally:
        session.close()
