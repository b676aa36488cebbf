"""Workload quantities derived from one environment's config plus the assumptions in volumes.yaml.

Pure functions, no prices: what runs, how long, and how many bytes/files/requests per month.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def workload(env: Environment, vol: Volumes) -> Workload:
    days = vol.calendar.days_per_month
    backfill = vol.workload.backfill_fraction_of_daily
    sources, streams = source_count(env), stream_count(env)
    hourly_runs = sources * HOURS_PER_DAY * days
    backfill_runs = sources * days  # one backfill task per source per day
    # a backfill task works ~`backfill` of a day's hourly effort
    backfill_minutes = env.connectors.minutes_per_hourly_run * HOURS_PER_DAY * backfill
    task_minutes = hourly_runs * env.connectors.minutes_per_hourly_run + backfill_runs * backfill_minutes
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


def warehouse_hours(wh: Warehouse, vol: Volumes, min_billed_seconds: float) -> float:
    """Billed warehouse hours a month: one resume per hourly run plus one per daily backfill."""
    days = vol.calendar.days_per_month
    hourly = billed_minutes_per_resume(wh.minutes_per_hourly_run, wh.auto_suspend_seconds, min_billed_seconds)
    daily = billed_minutes_per_resume(wh.minutes_per_daily_backfill, wh.auto_suspend_seconds, min_billed_seconds)
    return (hourly * HOURS_PER_DAY * days + daily * days) / 60


@dataclass(frozen=True)
class SnowflakeStorage:
    """Compressed TB held in Snowflake after `months` of operation."""

    raw_tb: float
    curated_tb: float
    churn_tb: float  # Time Travel + Fail-safe copies of rewritten partitions
    marts_tb: float

    @property
    def total_tb(self) -> float:
        return self.raw_tb + self.curated_tb + self.churn_tb + self.marts_tb


def snowflake_storage(env: Environment, vol: Volumes, months: float) -> SnowflakeStorage:
    """Curated grows every day and is kept `retention.curated_years`, so it only stops growing at that age."""
    st = vol.storage
    loaded_tb_per_day = workload(env, vol).parquet_gb_per_day * st.snowflake_vs_parquet / GB_PER_TB
    days_kept = min(months, env.retention.curated_years * 12) * vol.calendar.days_per_month
    curated = loaded_tb_per_day * st.curated_growth_fraction * days_kept
    return SnowflakeStorage(
        raw_tb=loaded_tb_per_day * st.snowflake_raw_days,
        curated_tb=curated,
        churn_tb=loaded_tb_per_day * st.curated_churn_days,
        marts_tb=curated * st.marts_fraction_of_curated,
    )


def s3_raw_gb(env: Environment, vol: Volumes) -> tuple[float, float]:
    """(Standard GB, Standard-IA GB) held in steady state by the raw lifecycle rule."""
    daily = workload(env, vol).parquet_gb_per_day
    r = env.retention
    standard_days = min(r.raw_infrequent_access_after_days, r.raw_days)
    return daily * standard_days, daily * max(r.raw_days - standard_days, 0)
