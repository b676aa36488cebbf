"""Workload quantities derived from one environment's config plus the assumptions in volumes.yaml.

Pure functions, no prices: what runs, how long, and how many bytes/files/requests per month.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from finsight.config.models import Environment, Warehouse
from finsight.cost.tables import Volumes, per_env

HOURS_PER_DAY = 24
GB_PER_TB = 1024


@dataclass(frozen=True)
class Workload:
    """Monthly quantities for one environment (steady state)."""

    sources: int
    streams: int  # PostgreSQL tables + API streams: each lands its own files every hour
    hourly_runs: float  # connector task runs a month (one per source per hour)
    backfill_runs: float
    connector_task_hours: float  # task-hours a month, hourly runs + backfills
    raw_gb_per_day: float
    parquet_gb_per_day: float  # incl. backfill re-extractions; what lands in S3 and what Snowpipe bills
    files_per_day: float  # Parquet files + manifests
    api_gb_per_month: float


def source_count(env: Environment) -> int:
    return len(env.postgres_sources) + len(env.api_sources)


def stream_count(env: Environment) -> int:
    return len(env.tables()) + sum(len(src.streams) for src in env.api_sources.values())


BENCH_RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results.json"
BENCH_RESULTS_VARIABLE = "FINSIGHT_BENCH_RESULTS"  # another results file; empty: ignore measurements (config only)
# bench/results.json (written by `make bench`, tests/bench/run.py): our connector's extraction rows/s for one
# database on the bench machine (2 cores: conservative for a 4-vCPU task).
BENCH_EXTRACT_KEYS = ("extract.ours_rows_per_s",)


def bench_results_path() -> Path | None:
    override = os.environ.get(BENCH_RESULTS_VARIABLE)
    if override is None:
        return BENCH_RESULTS
    return Path(override) if override.strip() else None


def bench_value(data: object, key: str) -> object:
    """`data`'s value at a dotted bench/results.json key ('merge.ours_s'); None where any part is missing."""
    for part in key.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def measured_extract_rows_per_second(path: Path | None = None) -> float | None:
    """The benchmark's measured extraction rate, when a benchmark has been run; None otherwise."""
    path = path or bench_results_path()
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for key in BENCH_EXTRACT_KEYS:
        node = bench_value(data, key)
        if isinstance(node, int | float) and node > 0:
            return float(node)
    return None


def measured_extract_source(path: Path | None = None) -> str | None:
    """'<file> <key> (ran_at ...)' of the extraction rate `measured_extract_rows_per_second` uses; None without one."""
    path = path or bench_results_path()
    rate = measured_extract_rows_per_second(path)
    if path is None or rate is None:
        return None
    try:
        ran_at = json.loads(path.read_text()).get("ran_at", "unknown")
    except (OSError, ValueError, AttributeError):
        ran_at = "unknown"
    return f"{path.name} {BENCH_EXTRACT_KEYS[0]}={rate:,.0f} rows/s (ran_at {ran_at})"


def connector_minutes_per_run(env: Environment, vol: Volumes, measured_rate: float | None) -> float:
    """Minutes one source's hourly task runs: from the measured rate when there is one, else the config's figure."""
    if measured_rate is None:
        return env.connectors.minutes_per_hourly_run
    rows = per_env(vol.workload.rows_per_day, env.name, "workload.rows_per_day")
    rows_per_run = rows / HOURS_PER_DAY / max(len(env.postgres_sources), 1)
    return rows_per_run / measured_rate / 60 + vol.runtime.task_overhead_minutes


def workload(env: Environment, vol: Volumes, measured_rate: float | None = None) -> Workload:
    days = vol.calendar.days_per_month
    backfill = vol.workload.backfill_fraction_of_daily
    sources, streams = source_count(env), stream_count(env)
    hourly_runs = sources * HOURS_PER_DAY * days
    backfill_runs = sources * days  # one backfill task per source per day
    per_run = connector_minutes_per_run(env, vol, measured_rate)
    # a backfill task works ~`backfill` of a day's hourly effort
    backfill_minutes = per_run * HOURS_PER_DAY * backfill
    task_minutes = hourly_runs * per_run + backfill_runs * backfill_minutes
    raw = per_env(vol.workload.raw_gb_per_day, env.name, "workload.raw_gb_per_day")
    rows = per_env(vol.workload.rows_per_day, env.name, "workload.rows_per_day")
    full_files = rows * (1 + backfill) / env.connectors.rows_per_file
    # every stream closes one partial file and writes one manifest per hourly batch
    files = full_files + 2 * streams * HOURS_PER_DAY
    api = per_env(vol.workload.api_gb_per_day, env.name, "workload.api_gb_per_day")
    return Workload(
        sources=sources,
        streams=streams,
        hourly_runs=hourly_runs,
        backfill_runs=backfill_runs,
        connector_task_hours=task_minutes / 60,
        raw_gb_per_day=raw,
        parquet_gb_per_day=raw * vol.storage.parquet_ratio * (1 + backfill),
        files_per_day=files,
        api_gb_per_month=api * (1 + backfill) * days,
    )


def billed_minutes_per_resume(busy_minutes: float, auto_suspend_seconds: int, min_billed_seconds: float) -> float:
    """A run keeps the warehouse up for its busy time plus the auto-suspend idle tail, billed at least 60 s."""
    if busy_minutes <= 0:
        return 0.0
    return max(min_billed_seconds / 60, busy_minutes + auto_suspend_seconds / 60)


def warehouse_hours(
    wh: Warehouse, vol: Volumes, min_billed_seconds: float, measured_hourly: float = 0.0, measured_daily: float = 0.0
) -> float:
    """Billed warehouse hours a month: one resume per hourly run plus one per daily backfill. `measured_*`: busy
    minutes derived from a measurement (the load warehouse's MERGE), on top of the configured minutes."""
    days = vol.calendar.days_per_month
    hourly_busy = wh.minutes_per_hourly_run + measured_hourly
    daily_busy = wh.minutes_per_daily_backfill + measured_daily
    hourly = billed_minutes_per_resume(hourly_busy, wh.auto_suspend_seconds, min_billed_seconds)
    daily = billed_minutes_per_resume(daily_busy, wh.auto_suspend_seconds, min_billed_seconds)
    return (hourly * HOURS_PER_DAY * days + daily * days) / 60


@dataclass(frozen=True)
class SnowflakeStorage:
    """Compressed TB held in Snowflake's own storage after `months` of operation."""

    raw_tb: float
    curated_tb: float  # the hot months only; older history is in the Iceberg archive (S3)
    churn_tb: float  # Time Travel + Fail-safe copies of rewritten (MERGE) and archived-away partitions
    marts_tb: float

    @property
    def total_tb(self) -> float:
        return self.raw_tb + self.curated_tb + self.churn_tb + self.marts_tb


def loaded_tb_per_day(env: Environment, vol: Volumes) -> float:
    return workload(env, vol).parquet_gb_per_day * vol.storage.snowflake_vs_parquet / GB_PER_TB


def curated_growth_tb_per_day(env: Environment, vol: Volumes) -> float:
    return loaded_tb_per_day(env, vol) * vol.storage.curated_growth_fraction


def retention_days(env: Environment, vol: Volumes) -> int:
    return env.retention.curated_years * 12 * vol.calendar.days_per_month


# The archive job (OPS.ARCHIVE_CURATED, snowpark/archive.py) moves whole months: on the first day of a month it moves
# what is older than the first day of the month `hot_months` before. Native storage therefore holds hot_months plus
# the days of the current month: half a month on average over the month (Snowflake bills the month's average bytes).
ARCHIVE_MOVE_LAG_MONTHS = 0.5


def hot_days(env: Environment, vol: Volumes) -> float:
    """Days of CURATED kept in native storage: all of it without an archive (local), else the hot months plus the
    month-aligned move's lag."""
    if env.curated_archive is None:
        return retention_days(env, vol)
    return (env.curated_archive.hot_months + ARCHIVE_MOVE_LAG_MONTHS) * vol.calendar.days_per_month


def snowflake_storage(env: Environment, vol: Volumes, months: float) -> SnowflakeStorage:
    """Curated grows daily up to the hot window; what is older moves to the Iceberg archive every month."""
    st = vol.storage
    loaded = loaded_tb_per_day(env, vol)
    growth = curated_growth_tb_per_day(env, vol)
    days = months * vol.calendar.days_per_month
    kept = min(days, retention_days(env, vol))
    hot = min(kept, hot_days(env, vol))
    archiving = kept > hot  # each month a month of partitions is deleted: Fail-safe keeps them curated_churn_days
    return SnowflakeStorage(
        raw_tb=loaded * min(days, env.retention.raw_table_days),
        curated_tb=growth * hot,
        churn_tb=loaded * st.curated_churn_days + (growth * st.curated_churn_days if archiving else 0.0),
        marts_tb=growth * hot * st.marts_fraction_of_curated,  # MARTS history is archived like CURATED's
    )


@dataclass(frozen=True)
class ArchiveStorage:
    """GB of the Iceberg archive on S3 by lifecycle tier after `months` (objects age from when they were moved)."""

    standard_gb: float
    ia_gb: float
    glacier_ir_gb: float

    @property
    def total_gb(self) -> float:
        return self.standard_gb + self.ia_gb + self.glacier_ir_gb


def _archive_gb_per_day(env: Environment, vol: Volumes) -> float:
    """GB one day of history takes in the archive: CURATED plus the MARTS aggregates of the same day."""
    return (
        curated_growth_tb_per_day(env, vol)
        * (1 + vol.storage.marts_fraction_of_curated)
        * GB_PER_TB
        * vol.storage.iceberg_vs_snowflake
    )


def archive_storage(env: Environment, vol: Volumes, months: float) -> ArchiveStorage:
    if env.curated_archive is None:
        return ArchiveStorage(0.0, 0.0, 0.0)
    a = env.curated_archive
    days = months * vol.calendar.days_per_month
    kept = min(days, retention_days(env, vol))
    age = max(kept - hot_days(env, vol), 0.0)  # days of history in the archive = oldest object's S3 age
    per_day_gb = _archive_gb_per_day(env, vol)
    standard = min(age, a.infrequent_access_after_days)
    ia = min(max(age - a.infrequent_access_after_days, 0.0), a.glacier_ir_after_days - a.infrequent_access_after_days)
    glacier = max(age - a.glacier_ir_after_days, 0.0)
    return ArchiveStorage(per_day_gb * standard, per_day_gb * ia, per_day_gb * glacier)


@dataclass(frozen=True)
class RawS3:
    standard_gb: float
    ia_gb: float
    noncurrent_gb: float  # expired versions kept raw_noncurrent_days (Standard-IA)


def s3_raw_gb(env: Environment, vol: Volumes, months: float | None = None) -> RawS3:
    """GB held by the raw lifecycle rule after `months` (None: steady state, every tier full)."""
    daily = workload(env, vol).parquet_gb_per_day
    r = env.retention
    days = float("inf") if months is None else months * vol.calendar.days_per_month
    standard_days = min(r.raw_infrequent_access_after_days, r.raw_days, days)
    ia_days = min(max(days - r.raw_infrequent_access_after_days, 0.0), max(r.raw_days - standard_days, 0))
    noncurrent_days = min(max(days - r.raw_days, 0.0), vol.storage.raw_noncurrent_days)
    return RawS3(daily * standard_days, daily * ia_days, daily * noncurrent_days)


@dataclass(frozen=True)
class ArchiveRead:
    """GB read back from the archive's tiers with a retrieval fee in one month."""

    months: float
    ia_gb: float
    glacier_ir_gb: float


def archive_read_back(env: Environment, vol: Volumes, arc: ArchiveStorage) -> ArchiveRead:
    """`archive.read_back_months` of archived history a month, spread over the tiers in proportion to their size
    (reads are uniform over the archived months); never more than the archive holds. Standard-tier reads are free."""
    months = per_env(vol.archive.read_back_months, env.name, "archive.read_back_months")
    if arc.total_gb == 0 or months == 0:
        return ArchiveRead(months, 0.0, 0.0)
    read = min(months * _archive_gb_per_day(env, vol) * vol.calendar.days_per_month, arc.total_gb)
    return ArchiveRead(months, read * arc.ia_gb / arc.total_gb, read * arc.glacier_ir_gb / arc.total_gb)
