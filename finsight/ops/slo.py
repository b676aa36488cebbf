"""SLOs from the run history (OPS.PIPELINE_RUNS RUN rows): monthly graph success rate against 99.9 %, end-to-end
latency (oldest source snapshot -> last mart published) p50 / p95 against 30 minutes."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from finsight import catalog
from finsight.config import Environment

SUCCESS_TARGET = 0.999
LATENCY_TARGET_MINUTES = 30.0


@dataclass
class MonthSlo:
    month: str
    runs: int
    succeeded: int
    success_rate: float
    latency_p50_minutes: float | None
    latency_p95_minutes: float | None
    success_target: float = SUCCESS_TARGET
    latency_target_minutes: float = LATENCY_TARGET_MINUTES
    error_budget_runs: float = field(init=False)
    budget_burned: float = field(init=False)  # share of the month's error budget spent (1.0 = all of it)

    def __post_init__(self) -> None:
        self.error_budget_runs = round(self.runs * (1 - self.success_target), 3)
        failed = self.runs - self.succeeded
        self.budget_burned = round(failed / self.error_budget_runs, 2) if self.error_budget_runs else float(failed > 0)

    @property
    def met(self) -> bool:
        latency_ok = self.latency_p95_minutes is None or self.latency_p95_minutes <= self.latency_target_minutes
        return self.success_rate >= self.success_target and latency_ok

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def monthly(env: Environment, cur: Any) -> list[MonthSlo]:
    ops = env.snowflake.schemas["ops"]
    cur.execute(
        f"SELECT LEFT(CAST(STARTED_AT AS VARCHAR), 7), STATE, DETAIL FROM {ops}.{catalog.RUN_LOG_TABLE} "
        "WHERE TASK_NAME = 'RUN' AND STATE IN ('SUCCEEDED', 'FAILED', 'PARTIAL') ORDER BY STARTED_AT"
    )
    by_month: dict[str, list[tuple[str, float | None]]] = {}
    for month, state, detail in cur.fetchall():
        latency = None
        with contextlib.suppress(ValueError):
            latency = json.loads(detail or "{}").get("latency_seconds")
        by_month.setdefault(month, []).append((state, latency))
    out = []
    for month, runs in sorted(by_month.items()):
        ok = sum(1 for s, _ in runs if s == "SUCCEEDED")
        minutes = [lat / 60 for _, lat in runs if lat is not None]
        p50, p95 = percentile(minutes, 0.5), percentile(minutes, 0.95)
        p50, p95 = (None if p is None else round(p, 2) for p in (p50, p95))
        out.append(MonthSlo(month, len(runs), ok, round(ok / len(runs), 4), p50, p95))
    return out
