"""One full hourly cycle on the local stack: migrate -> extract -> load (Snowpipe player) -> Task DAG.

In AWS the same steps are EventBridge-scheduled ECS connector tasks, Snowpipe and the Snowflake Task graph.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.apis.run import extract_api_source
from connectors.run import ExtractionError, SourceRun, extract_source
from finsight import deploy_fingerprint, warehouse
from finsight.config import Environment
from finsight.local.graph import extract_stages, load_stage, now
from finsight.local.snowpipe import PipeRun, load_landed
from finsight.ops.log_context import bind, submit
from tasks.runner import DagRun, run_dag


@dataclass
class CycleSummary:
    run_id: str
    seconds: dict[str, float] = field(default_factory=dict)
    sources: list[SourceRun] = field(default_factory=list)
    pipe: PipeRun | None = None
    dag: DagRun | None = None
    migrations_applied: int = 0
    extract_errors: list[str] = field(default_factory=list)

    @property
    def rows_extracted(self) -> int:
        return sum(s.rows for s in self.sources)

    @property
    def ok(self) -> bool:
        return bool(self.dag and self.dag.succeeded and self.pipe and not self.pipe.errors and not self.extract_errors)


def _timed(summary: CycleSummary, stage: str, started: float) -> None:
    summary.seconds[stage] = round(time.monotonic() - started, 2)


STAGES = ["migrate", "extract", "load", "graph"]


def hourly_cycle(
    env: Environment, run_id: str | None = None, progress: Callable[[str], None] | None = None
) -> CycleSummary:
    """`progress(stage)` is called as each of STAGES starts (the CLI's progress bar)."""
    step = progress or (lambda _stage: None)
    summary = CycleSummary(run_id=run_id or f"local-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    step("migrate")
    started = time.monotonic()
    # deploy-time, not cycle-time: schemachange runs only when the rendered scripts or the DAG changed
    result = deploy_fingerprint.deploy_if_changed(env)
    summary.migrations_applied = len(result.applied) if result else 0
    _timed(summary, "migrate", started)

    step("extract")
    started, extract_at = time.monotonic(), now()
    with ThreadPoolExecutor(max_workers=4) as pool, bind(run_id=summary.run_id):  # the connectors' log lines
        futures = [submit(pool, extract_source, env, source) for source in env.postgres_sources]
        futures += [submit(pool, extract_api_source, env, source) for source in env.api_sources]
        for future in futures:
            try:
                summary.sources.append(future.result())
            except ExtractionError as exc:
                # one unreachable source must not hold back the others: their batches still load and merge
                summary.extract_errors.append(str(exc))
    _timed(summary, "extract", started)

    step("load")
    started, load_at = time.monotonic(), now()
    summary.pipe = load_landed(env)
    _timed(summary, "load", started)

    step("graph")
    started = time.monotonic()
    session = warehouse.snowpark_session(env)
    try:
        stages = extract_stages(env, summary.sources, summary.extract_errors, extract_at, load_at)
        summary.dag = run_dag(env, session, summary.run_id, stages=[*stages, load_stage(summary.pipe, load_at, now())])
    finally:
        session.close()
    _timed(summary, "graph", started)
    summary.seconds.update(summary.dag.stage_seconds())  # merge, transform, validate
    return summary
