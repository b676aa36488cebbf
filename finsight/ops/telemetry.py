"""Telemetry: JSON log lines and metrics that carry run, batch, task and source ids from connector to pipe to task.

Metrics are CloudWatch Embedded Metric Format (EMF) records: in AWS they are printed to stdout (the ECS awslogs
driver ships them and CloudWatch extracts the metrics); locally they are appended to `<state_dir>/metrics.jsonl`,
the sink `finsight metrics` and `finsight status` read.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from finsight.config import Environment, repo_root

NAMESPACE = "FinSight"
ID_FIELDS = ("env", "run_id", "batch_id", "task", "source", "table")  # dimensions, in this order
UNITS = {"rows": "Count", "bytes": "Bytes", "files": "Count", "failures": "Count", "seconds": "Seconds",
         "lag_seconds": "Seconds"}  # fmt: skip

log = logging.getLogger("finsight.telemetry")


def sink_path(env: Environment) -> Path:
    assert env.local is not None
    return repo_root() / env.local.state_dir / "metrics.jsonl"


def emf(ids: dict[str, Any], metrics: dict[str, float], event: str) -> dict[str, Any]:
    """One EMF record: ids become dimensions (those present), metrics carry their CloudWatch unit."""
    dims = [k for k in ID_FIELDS if ids.get(k) is not None and k not in ("run_id", "batch_id")]
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dims],
                "Metrics": [{"Name": m, "Unit": UNITS.get(m, "None")} for m in metrics],
            }],
        },
        "event": event,
        **{k: v for k, v in ids.items() if v is not None},
        **metrics,
    }  # fmt: skip


def emit(env: Environment, event: str, metrics: dict[str, float], **ids: Any) -> dict[str, Any]:
    """Write one metric record (sink locally, stdout in AWS) and one JSON log line with the same ids."""
    record = emf({"env": env.name, **ids}, metrics, event)
    if env.is_local:
        path = sink_path(env)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
    else:
        sys.stdout.write(json.dumps(record, default=str) + "\n")
    log.info(json.dumps({"event": event, "env": env.name, **ids, **metrics}, default=str))
    return record


def read_sink(env: Environment, since_ms: int = 0) -> list[dict[str, Any]]:
    path = sink_path(env)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if record["_aws"]["Timestamp"] >= since_ms:
                out.append(record)
    return out


def record_cycle(env: Environment, summary: Any) -> int:
    """Metrics of one hourly cycle, connector -> pipe -> task, all under the cycle's run id. Returns the count."""
    n = 0
    run_id = summary.run_id
    for source in summary.sources:
        for batch in source.batches:
            emit(env, "batch_landed", {"rows": batch.rows, "bytes": batch.bytes, "files": len(batch.files)},
                 run_id=run_id, batch_id=batch.batch_id, source=source.source, table=batch.table)  # fmt: skip
            n += 1
        emit(env, "extraction_finished", {"rows": source.rows, "seconds": source.seconds},
             run_id=run_id, task=f"EXTRACT_{source.source.upper()}", source=source.source)  # fmt: skip
        n += 1
    for error in summary.extract_errors:
        emit(env, "extraction_failed", {"failures": 1}, run_id=run_id, task="EXTRACT", error=error.splitlines()[0])
        n += 1
    if summary.pipe is not None:
        pipe = summary.pipe
        emit(env, "pipe_drained", {"rows": pipe.rows_loaded, "files": pipe.files_loaded,
                                   "failures": len(pipe.errors)}, run_id=run_id, task="LOAD")  # fmt: skip
        n += 1
    if summary.dag is not None:
        for task in summary.dag.tasks:
            emit(env, "task_finished", {"seconds": task.seconds,
                                        "failures": int(task.state == "FAILED")},
                 run_id=run_id, task=task.name, state=task.state)  # fmt: skip
            n += 1
        latency = summary.dag.latency_seconds()
        if latency is not None:
            emit(env, "run_finished", {"lag_seconds": latency}, run_id=run_id, task="RUN", state=summary.dag.state)
            n += 1
    return n
