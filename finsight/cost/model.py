"""Monthly cost of one environment: quantities (from config + volumes.yaml) x unit prices (prices.yaml).

Pure functions over an `Environment`; pass a modified copy (`env.model_copy(update=...)`) to ask "what if".
`monthly_snowflake_credits` is the contract the IaC uses for Snowflake resource-monitor quotas.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from finsight.config.models import Environment
from finsight.cost import quantities as q
from finsight.cost.tables import PriceTable, Volumes, default_prices, default_volumes, per_env

MONTHS_PER_YEAR = 12


@dataclass(frozen=True)
class LineItem:
    service: str
    item: str
    quantity: float
    unit: str  # unit of `quantity`
    unit_price_usd: float
    price_keys: tuple[str, ...]  # entries of prices.yaml this line relies on (each cites its source)
    note: str = ""

    @property
    def monthly_usd(self) -> float:
        return self.quantity * self.unit_price_usd


@dataclass(frozen=True)
class StorageOutlook:
    """Snowflake storage is the one cost that keeps growing: state year 1 and the retention ceiling apart."""

    year1_tb: float
    year1_usd: float
    ceiling_years: int
    ceiling_tb: float
    ceiling_usd: float
    ceiling_total_usd: float  # whole monthly bill once curated storage reaches its retention ceiling
    headroom_kept_until_month: int | None  # last month the bill keeps the required headroom (None: always)


@dataclass(frozen=True)
class CostReport:
    env: str
    items: list[LineItem]
    budget_usd: float
    required_headroom: float
    outlook: StorageOutlook
    sources: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def total_usd(self) -> float:
        return sum(i.monthly_usd for i in self.items)

    @property
    def headroom(self) -> float:
        return 1 - self.total_usd / self.budget_usd

    @property
    def passed(self) -> bool:
        return self.total_usd <= self.budget_usd and self.headroom >= self.required_headroom

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "items": [
                {**asdict(i), "price_keys": list(i.price_keys), "monthly_usd": i.monthly_usd} for i in self.items
            ],
            "total_usd": self.total_usd,
            "budget_usd": self.budget_usd,
            "headroom": self.headroom,
            "required_headroom": self.required_headroom,
            "status": "PASS" if self.passed else "OVER",
            "storage_outlook": asdict(self.outlook),
            "price_sources": self.sources,
        }


# -- Snowflake compute: the figures resource monitors are set from ------------------------------------------------


def warehouse_credits(env: Environment, name: str, prices: PriceTable, vol: Volumes) -> float:
    wh = env.snowflake.warehouses[name]  # type: ignore[index]
    per_hour = prices["snowflake.warehouse_credits_per_hour"].value
    assert isinstance(per_hour, dict)
    hours = q.warehouse_hours(wh, vol, prices.usd("snowflake.warehouse_min_billed_seconds"))
    return per_hour[wh.size] * hours


def monthly_snowflake_credits(
    env: Environment, prices: PriceTable | None = None, volumes: Volumes | None = None
) -> dict[str, float]:
    """Expected monthly credits per warehouse logical name ("load", "transform")."""
    prices, volumes = prices or default_prices(), volumes or default_volumes()
    return {name: warehouse_credits(env, name, prices, volumes) for name in env.snowflake.warehouses}


def resource_monitor_quotas(env: Environment, volumes: Volumes | None = None) -> dict[str, int]:
    """Whole-credit monthly quota per warehouse: expected credits plus the margin in volumes.yaml."""
    volumes = volumes or default_volumes()
    margin = volumes.resource_monitor.margin
    return {
        name: math.ceil(credits * (1 + margin))
        for name, credits in monthly_snowflake_credits(env, volumes=volumes).items()
    }


# -- line items, one function per service ---------------------------------------------------------------------------


def _snowflake_items(env: Environment, p: PriceTable, v: Volumes, w: q.Workload) -> list[LineItem]:
    credit = p.usd("snowflake.credit_usd")
    items = []
    for name, credits in monthly_snowflake_credits(env, p, v).items():
        wh = env.snowflake.warehouses[name]  # type: ignore[index]
        items.append(
            LineItem(
                "Snowflake",
                f"warehouse {name} ({wh.size})",
                credits,
                "credits",
                credit,
                (
                    "snowflake.credit_usd",
                    "snowflake.warehouse_credits_per_hour",
                    "snowflake.warehouse_min_billed_seconds",
                ),
                f"{wh.minutes_per_hourly_run:g} min/h + {wh.minutes_per_daily_backfill:g} min/day backfill, "
                f"+{wh.auto_suspend_seconds}s auto-suspend tail per resume",
            )
        )
    days = v.calendar.days_per_month
    items.append(
        LineItem(
            "Snowflake",
            "Snowpipe ingestion",
            w.parquet_gb_per_day * days * p.usd("snowflake.snowpipe_credits_per_gb"),
            "credits",
            credit,
            ("snowflake.credit_usd", "snowflake.snowpipe_credits_per_gb"),
            f"{w.parquet_gb_per_day * days:,.0f} GB Parquet/month",
        )
    )
    plan = v.storage.snowflake_storage_plan
    storage = q.snowflake_storage(env, v, MONTHS_PER_YEAR)
    items.append(
        LineItem(
            "Snowflake",
            f"storage, end of year 1 ({plan})",
            storage.total_tb,
            "TB-month",
            p.usd(f"snowflake.storage_tb_month_{plan}"),
            (f"snowflake.storage_tb_month_{plan}",),
            f"curated {storage.curated_tb:,.1f} + raw {storage.raw_tb:,.1f} + time-travel/fail-safe "
            f"{storage.churn_tb:,.1f} + marts {storage.marts_tb:,.1f} TB",
        )
    )
    return items


def _s3_items(env: Environment, p: PriceTable, v: Volumes, w: q.Workload) -> list[LineItem]:
    standard_gb, ia_gb = q.s3_raw_gb(env, v)
    days = v.calendar.days_per_month
    files = w.files_per_day * days
    parts = w.parquet_gb_per_day * 1024 / v.storage.multipart_part_mb * days
    r = env.retention
    return [
        LineItem("S3", f"raw Standard (first {r.raw_infrequent_access_after_days} d)", standard_gb, "GB-month",
                 p.usd("s3.standard_gb_month"), ("s3.standard_gb_month",)),
        LineItem("S3", f"raw Standard-IA (to day {r.raw_days})", ia_gb, "GB-month",
                 p.usd("s3.standard_ia_gb_month"), ("s3.standard_ia_gb_month",)),
        LineItem("S3", "PUT requests (multipart parts + files)", (parts + files) / 1000, "1k requests",
                 p.usd("s3.put_per_1000"), ("s3.put_per_1000",)),
        LineItem("S3", "GET requests (Snowpipe reads)", files * v.storage.gets_per_file / 1000, "1k requests",
                 p.usd("s3.get_per_1000"), ("s3.get_per_1000",)),
        LineItem("S3", "lifecycle transitions to IA", files / 1000, "1k requests",
                 p.usd("s3.ia_transition_per_1000"), ("s3.ia_transition_per_1000",)),
    ]  # fmt: skip


def _compute_items(env: Environment, p: PriceTable, v: Volumes, w: q.Workload) -> list[LineItem]:
    c = env.connectors
    vcpu, gb = c.cpu / 1024, c.memory_mb / 1024
    note = f"{w.sources} sources x {c.minutes_per_hourly_run:g} min/h + backfill = {w.connector_task_hours:,.0f} task-h"
    rt = v.runtime
    return [
        LineItem("ECS Fargate", f"connector vCPU ({vcpu:g} vCPU/task)", w.connector_task_hours * vcpu, "vCPU-hours",
                 p.usd("fargate.vcpu_hour"), ("fargate.vcpu_hour",), note),
        LineItem("ECS Fargate", f"connector memory ({gb:g} GB/task)", w.connector_task_hours * gb, "GB-hours",
                 p.usd("fargate.gb_hour"), ("fargate.gb_hour",), note),
        LineItem("ECR", "connector images", rt.ecr_image_gb * rt.ecr_images_kept, "GB-month",
                 p.usd("ecr.storage_gb_month"), ("ecr.storage_gb_month",)),
    ]  # fmt: skip


def _security_items(env: Environment, p: PriceTable, v: Volumes, w: q.Workload) -> list[LineItem]:
    rt = v.runtime
    secrets = w.sources + 2  # one per source + Snowflake service user + PAN tokenization key
    runs = w.hourly_runs + w.backfill_runs
    kms_requests = w.files_per_day * v.calendar.days_per_month * rt.kms_requests_per_file
    return [
        LineItem("KMS", "customer managed keys", 1 + rt.extra_kms_keys, "key-months", p.usd("kms.key_month"),
                 ("kms.key_month",), f"{env.aws.s3.kms_key_alias} + {rt.extra_kms_keys} (secrets, logs)"),
        LineItem("KMS", "requests (S3 Bucket Keys on)", kms_requests / 10_000, "10k requests",
                 p.usd("kms.requests_per_10k"), ("kms.requests_per_10k",)),
        LineItem("Secrets Manager", "secrets", secrets, "secret-months", p.usd("secrets_manager.secret_month"),
                 ("secrets_manager.secret_month",), "one per source + snowflake service user + PAN key"),
        LineItem("Secrets Manager", "API calls", runs * rt.secret_calls_per_run / 10_000, "10k calls",
                 p.usd("secrets_manager.api_calls_per_10k"), ("secrets_manager.api_calls_per_10k",)),
    ]  # fmt: skip


def _observability_items(env: Environment, p: PriceTable, v: Volumes, w: q.Workload) -> list[LineItem]:
    rt = v.runtime
    ingest = (w.hourly_runs + w.backfill_runs) * rt.log_gb_per_connector_run
    stored = ingest / v.calendar.days_per_month * rt.log_retention_days * rt.log_storage_ratio
    alarms = rt.fixed_alarms + rt.alarms_per_source * w.sources
    runs = w.hourly_runs / w.sources  # one schedule per hour drives all sources of the environment
    return [
        LineItem("CloudWatch", "logs ingested", ingest, "GB", p.usd("cloudwatch.logs_ingest_gb"),
                 ("cloudwatch.logs_ingest_gb",)),
        LineItem("CloudWatch", f"logs stored ({rt.log_retention_days} d)", stored, "GB-month",
                 p.usd("cloudwatch.logs_storage_gb_month"), ("cloudwatch.logs_storage_gb_month",)),
        LineItem("CloudWatch", "alarms", alarms, "alarm-months", p.usd("cloudwatch.alarm_month"),
                 ("cloudwatch.alarm_month",)),
        LineItem("Messaging", "EventBridge Scheduler invocations", (runs + w.backfill_runs) / 1e6, "M invocations",
                 p.usd("messaging.scheduler_per_million"), ("messaging.scheduler_per_million",)),
        LineItem("Messaging", "SNS alert publishes", rt.sns_publishes / 1e6, "M publishes",
                 p.usd("messaging.sns_publish_per_million"), ("messaging.sns_publish_per_million",)),
    ]  # fmt: skip


def _network_items(env: Environment, p: PriceTable, v: Volumes, w: q.Workload) -> list[LineItem]:
    rt = v.runtime
    hours = v.calendar.always_on_hours_per_month
    nats = per_env(rt.nat_gateways, env.name, "runtime.nat_gateways")
    azs = per_env(rt.availability_zones, env.name, "runtime.availability_zones")
    endpoints = len(rt.interface_endpoints)
    ingest_logs = (w.hourly_runs + w.backfill_runs) * rt.log_gb_per_connector_run
    endpoint_gb = ingest_logs + per_env(rt.endpoint_other_gb, env.name, "runtime.endpoint_other_gb")
    return [
        LineItem("VPC", f"NAT gateways ({nats:g})", nats * hours, "gateway-hours", p.usd("vpc.nat_gateway_hour"),
                 ("vpc.nat_gateway_hour",)),
        LineItem("VPC", "NAT data (payment API traffic)", w.api_gb_per_month, "GB", p.usd("vpc.nat_gateway_gb"),
                 ("vpc.nat_gateway_gb",), "S3 + ECR layers go through the free S3 gateway endpoint"),
        LineItem("VPC", f"interface endpoints ({endpoints} x {azs:g} AZ)", endpoints * azs * hours, "endpoint-AZ-hours",
                 p.usd("vpc.interface_endpoint_az_hour"), ("vpc.interface_endpoint_az_hour",),
                 ", ".join(rt.interface_endpoints)),
        LineItem("VPC", "interface endpoint data", endpoint_gb, "GB", p.usd("vpc.interface_endpoint_gb"),
                 ("vpc.interface_endpoint_gb",)),
        LineItem("VPC", "S3 gateway endpoint data", w.parquet_gb_per_day * v.calendar.days_per_month, "GB",
                 p.usd("vpc.gateway_endpoint_gb"), ("vpc.gateway_endpoint_gb",), "free; listed so nobody removes it"),
    ]  # fmt: skip


SERVICES = (_snowflake_items, _s3_items, _compute_items, _security_items, _observability_items, _network_items)


def line_items(env: Environment, prices: PriceTable, volumes: Volumes) -> list[LineItem]:
    w = q.workload(env, volumes)
    return [item for service in SERVICES for item in service(env, prices, volumes, w)]


def storage_outlook(env: Environment, prices: PriceTable, volumes: Volumes, first_year_total: float) -> StorageOutlook:
    price = prices.usd(f"snowflake.storage_tb_month_{volumes.storage.snowflake_storage_plan}")
    years = env.retention.curated_years
    year1 = q.snowflake_storage(env, volumes, MONTHS_PER_YEAR).total_tb
    ceiling = q.snowflake_storage(env, volumes, years * MONTHS_PER_YEAR).total_tb

    def total_at(month: int) -> float:
        return first_year_total + (q.snowflake_storage(env, volumes, month).total_tb - year1) * price

    limit = env.budget.monthly_usd * (1 - env.budget.required_headroom)
    over = [m for m in range(MONTHS_PER_YEAR, years * MONTHS_PER_YEAR + 1) if total_at(m) > limit]
    return StorageOutlook(
        year1_tb=year1,
        year1_usd=year1 * price,
        ceiling_years=years,
        ceiling_tb=ceiling,
        ceiling_usd=ceiling * price,
        ceiling_total_usd=first_year_total + (ceiling - year1) * price,
        headroom_kept_until_month=over[0] - 1 if over else None,
    )


def estimate(env: Environment, prices: PriceTable | None = None, volumes: Volumes | None = None) -> CostReport:
    """The monthly bill of `env` in its first year (storage billed at its end-of-year-1 size)."""
    prices, volumes = prices or default_prices(), volumes or default_volumes()
    items = line_items(env, prices, volumes)
    total = sum(i.monthly_usd for i in items)
    used = sorted({k for i in items for k in i.price_keys})
    return CostReport(
        env=env.name,
        items=items,
        budget_usd=env.budget.monthly_usd,
        required_headroom=env.budget.required_headroom,
        outlook=storage_outlook(env, prices, volumes, total),
        sources={k: {"source": prices[k].source, "assumed": prices[k].assumed} for k in used},
    )


def account_credit_quota(env: Environment, prices: PriceTable | None = None) -> int:
    """Account resource monitor quota: the credits the environment's budget allocation can buy after headroom.

    Per-warehouse monitors follow the forecast; this one is the hard ceiling that keeps a runaway (or a new,
    unmonitored warehouse) inside the budget the cost gate approved.
    """
    prices = prices or default_prices()
    spendable = env.budget.monthly_usd * (1 - env.budget.required_headroom)
    return max(1, math.floor(spendable / prices.usd("snowflake.credit_usd")))
