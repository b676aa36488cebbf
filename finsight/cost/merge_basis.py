"""Warehouse minutes for MERGE, derived from `make bench`'s measured MERGE (bench/results.json), not assumed.

The chain, each step stated so `finsight cost` can print it:
1. bench: `merge.ours_s` seconds to MERGE `merge.batch_rows` into `merge.base_rows` on the bench machine; the bytes it
   scanned are `merge.bytes_scanned_per_batch` when the bench reports it, else (base + batch rows) x the bench table's
   row width (volumes.yaml `merge.bench_row_bytes`: a full scan of target and batch, the unpruned worst case).
   When the bench measured several table sizes, the MERGE into the largest one is used: production's CURATED holds
   years, far more micro-partitions than a batch's late updates touch, and the MERGE rewrites each one it touches
   (copy-on-write); the smallest table has too few for that. Of the bench's runs, those whose updates change every
   column (`merge.whole_partition_runs`) are priced when present: DuckDB rewrites only the columns an update changed,
   Snowflake the whole micro-partition, and only then does the local double rewrite whole partitions too.
2. -> seconds per GB scanned on the bench machine, and GB scanned per merged row.
3. x production rows per hour (volumes.yaml `workload.rows_per_day`), rescaled to production row width
   (`workload.raw_gb_per_day` / `rows_per_day`) -> bench-machine hours of MERGE per hourly cycle.
4. / `merge.xsmall_vs_bench_machine` -> XSMALL-warehouse hours; / the size's credits-per-hour ratio to XSMALL
   (Snowflake doubles compute with each size) -> busy minutes on the configured load warehouse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from finsight.config import ConfigError
from finsight.config.models import Environment
from finsight.cost.quantities import bench_value
from finsight.cost.tables import PriceTable, Volumes, per_env

BYTES_PER_GB = 2**30  # AWS and Snowflake bill binary GB/TB; quantities.GB_PER_TB = 1024 follows the same basis
HOURS_PER_DAY = 24
MERGE_WAREHOUSE = "load"  # tasks/dag.py runs every MERGE_TABLE task on the load warehouse
REQUIRED_KEYS = ("merge.ours_s", "merge.batch_rows", "merge.base_rows")
SCANNED_KEY = "merge.bytes_scanned_per_batch"
RUNS = "merge.runs"  # one batch into several table sizes
WHOLE_PARTITION_RUNS = "merge.whole_partition_runs"  # the same, every column of the updated rows changed


class MergeMeasurementError(ConfigError):
    """bench/results.json has no usable MERGE measurement: the load warehouse cannot be costed."""


@dataclass(frozen=True)
class MergeBasis:
    """The measured MERGE and what it implies for one environment's load warehouse."""

    results_file: str
    ran_at: str
    merge_s: float
    batch_rows: float
    base_rows: float
    scanned_gb: float  # per bench batch
    scanned_from: str  # the results key, or the derivation from rows
    measured: str  # where the MERGE figures were read: "merge", or the largest table's run "merge.<runs>.<n>x"
    machine_s_per_gb: float
    prod_scanned_gb_per_hour: float
    machine_hours_per_hour: float
    xsmall_hours_per_hour: float
    size: str
    busy_minutes_per_hourly_run: float
    busy_minutes_per_daily_backfill: float

    def source(self) -> str:
        return (
            f"{self.results_file} {self.measured}.ours_s={self.merge_s:g}s for {self.measured}.batch_rows="
            f"{self.batch_rows:,.0f} into {self.measured}.base_rows={self.base_rows:,.0f}, scanned "
            f"{self.scanned_gb:.3f} GB ({self.scanned_from}), "
            f"ran_at {self.ran_at}"
        )

    def derivation(self) -> str:
        return (
            f"{self.machine_s_per_gb:.1f} s/GB on the bench machine x {self.prod_scanned_gb_per_hour:,.1f} GB "
            f"scanned/h = {self.machine_hours_per_hour:.2f} machine-h/h -> {self.xsmall_hours_per_hour:.2f} XSMALL-h/h "
            f"-> {self.busy_minutes_per_hourly_run:.1f} min/h on {self.size}"
        )


def _number(data: dict, key: str, path: Path) -> float | None:
    node = bench_value(data, key)
    if node is None:
        return None
    if isinstance(node, bool) or not isinstance(node, int | float) or node <= 0:
        raise MergeMeasurementError(f"{path}: '{key}' must be a positive number, got {node!r}")
    return float(node)


def read_merge_measurement(path: Path | None) -> tuple[dict[str, float], str, str, str]:
    """(figures, ran_at, file name, the results key they were read under) from the bench results; a clear error if
    the MERGE figures are missing."""
    if path is None:
        raise MergeMeasurementError(
            "no benchmark results selected (FINSIGHT_BENCH_RESULTS is empty): the load warehouse's MERGE minutes "
            "are derived from `make bench`'s measured MERGE; point FINSIGHT_BENCH_RESULTS at a results.json"
        )
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise MergeMeasurementError(
            f"{path}: cannot read the benchmark results ({exc.strerror}); run `make bench`"
        ) from None
    except ValueError as exc:
        raise MergeMeasurementError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MergeMeasurementError(f"{path}: top level must be an object")
    measured = _largest_run(data, path)
    at = {key: f"{measured}.{key.split('.')[-1]}" for key in REQUIRED_KEYS} | {SCANNED_KEY: _scanned_key(measured)}
    figures = {key: _number(data, where, path) for key, where in at.items()}
    missing = [at[key] for key in REQUIRED_KEYS if figures[key] is None]
    if missing and measured != "merge":
        raise MergeMeasurementError(f"{path}: the MERGE run {measured} lacks {', '.join(missing)}")
    if missing:
        raise MergeMeasurementError(
            f"{path}: no measured MERGE ({', '.join(missing)} missing): the load warehouse's credits are derived "
            "from it; run `make bench` (tests/bench/merge_bench.py) to measure it"
        )
    ran_at = data.get("ran_at")
    return {k: v for k, v in figures.items() if v is not None}, str(ran_at or "unknown"), path.name, measured


def _largest_run(data: dict, path: Path) -> str:
    """Where the MERGE to price is: the largest table the bench measured, of `merge.whole_partition_runs` when it
    reports them, else of `merge.runs`; `merge` (its headline) when it reports neither."""
    for runs_key in WHOLE_PARTITION_RUNS, RUNS:
        runs = bench_value(data, runs_key)
        if isinstance(runs, dict) and runs:
            return f"{runs_key}." + max(runs, key=lambda n: _number(data, f"{runs_key}.{n}.base_rows", path) or 0.0)
    return "merge"


def _scanned_key(measured: str) -> str:
    return SCANNED_KEY if measured == "merge" else f"{measured}.bytes_scanned"


def merge_basis(env: Environment, prices: PriceTable, vol: Volumes, path: Path | None) -> MergeBasis:
    figures, ran_at, name, measured = read_merge_measurement(path)
    m = vol.merge
    batch, base = figures["merge.batch_rows"], figures["merge.base_rows"]
    if SCANNED_KEY in figures:
        scanned_bytes, scanned_from = figures[SCANNED_KEY], _scanned_key(measured)
    else:
        scanned_bytes = (base + batch) * m.bench_row_bytes
        scanned_from = f"(base_rows + batch_rows) x merge.bench_row_bytes {m.bench_row_bytes:g}"
    scanned_gb = scanned_bytes / BYTES_PER_GB
    machine_s_per_gb = figures["merge.ours_s"] / scanned_gb
    rows_per_day = per_env(vol.workload.rows_per_day, env.name, "workload.rows_per_day")
    raw_gb_per_day = per_env(vol.workload.raw_gb_per_day, env.name, "workload.raw_gb_per_day")
    width = raw_gb_per_day * BYTES_PER_GB / rows_per_day / m.bench_row_bytes  # production rows vs the bench's
    gb_per_merged_row = scanned_gb / batch
    prod_scanned_gb_per_hour = rows_per_day / HOURS_PER_DAY * gb_per_merged_row * width
    machine_hours = machine_s_per_gb * prod_scanned_gb_per_hour / 3600
    xsmall_hours = machine_hours / m.xsmall_vs_bench_machine
    per_hour = prices["snowflake.warehouse_credits_per_hour"].value
    assert isinstance(per_hour, dict)
    wh = env.snowflake.warehouses[MERGE_WAREHOUSE]  # type: ignore[index]
    busy = xsmall_hours * 60 / (per_hour[wh.size] / per_hour["XSMALL"])
    return MergeBasis(
        results_file=f"bench/{name}" if path is not None and path.parent.name == "bench" else str(path),
        ran_at=ran_at,
        merge_s=figures["merge.ours_s"],
        batch_rows=batch,
        base_rows=base,
        scanned_gb=scanned_gb,
        scanned_from=scanned_from,
        measured=measured,
        machine_s_per_gb=machine_s_per_gb,
        prod_scanned_gb_per_hour=prod_scanned_gb_per_hour,
        machine_hours_per_hour=machine_hours,
        xsmall_hours_per_hour=xsmall_hours,
        size=wh.size,
        busy_minutes_per_hourly_run=busy,
        # the daily backfill re-merges `backfill_fraction_of_daily` of a day's rows in one resume
        busy_minutes_per_daily_backfill=busy * HOURS_PER_DAY * vol.workload.backfill_fraction_of_daily,
    )
