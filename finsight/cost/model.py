"""Monthly cost of the platform: quantities (config + volumes.yaml + the benchmark) x unit prices (prices.yaml).

Pure functions over `Environment`s; pass a modified copy (`env.model_copy(update=...)`) to ask "what if".
The bill is a function of the month of operation: storage fills up until the retention ceiling, so the gate
(`finsight cost --env all --horizon 84`) checks every month of the horizon against the cap minus the headroom,
and the worst month decides. `monthly_snowflake_credits` is the contract the IaC uses for resource monitors.
The worst month stays under the cap because CURATED/MARTS history older than `curated_archive.hot_months` is priced
as Iceberg on tiered S3, not native storage: the ARCHIVE_CURATED task (snowpark/archive.py) is what moves it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from finsight.config.models import Environment
from finsight.cost import quantities as q
from finsight.cost.merge_basis import MERGE_WAREHOUSE, MergeBasis, merge_basis
from finsight.cost.tables import PriceTable, Volumes, default_prices, default_volumes, per_env

MONTHS_PER_YEAR = 12
DEFAULT_HORIZON_MONTHS = 84  # seven years: CURATED's retention ceiling
CLOUD_ENVIRONMENTS = ("dev", "staging", "prod")
TRANSIT_PRICES = {
    "transit_gateway": "vpc.transit_gateway_gb",
    "vpc_peering_cross_az": "vpc.vpc_peering_cross_az_gb",
    "vpc_peering_same_az": "vpc.vpc_peering_same_az_gb",
}


@dataclass(frozen=True)
class LineItem:
    service: str
    item: str
    quantity: float
    unit: str  # unit of `quantity`
    unit_price_usd: float
    price_keys: tuple[str, ...]  # entries of prices.yaml this line relies on (each cites its source)
    note: str = ""
    basis: str = ""  # where the quantity comes from: config keys, volumes.yaml keys, bench/results.json keys + ran_at

    @property
    def source(self) -> str:
        prices = ", ".join(f"prices.yaml {k}" for k in self.price_keys)
        return f"{self.basis}; {prices}" if self.basis else prices

    @property
    def monthly_usd(self) -> float:
        return self.quantity * self.unit_price_usd


@dataclass(frozen=True)
class CostReport:
    """One environment's bill in one month of operation, against its budget allocation."""

    env: str
    month: int
    items: list[LineItem]
    budget_usd: float
    required_headroom: float
    sources: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def total_usd(self) -> float:
        return sum(i.monthly_usd for i in self.items)

    @property
    def limit_usd(self) -> float:
        """An environment must fit its allocation; the required headroom is held once, under the platform cap, by
        the allocations (`allocations_fit`), so it is not taken a second time inside each allocation."""
        return self.budget_usd

    @property
    def headroom(self) -> float:
        return 1 - self.total_usd / self.budget_usd

    @property
    def passed(self) -> bool:
        return self.total_usd <= self.limit_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "month": self.month,
            "items": [
                {**asdict(i), "price_keys": list(i.price_keys), "source": i.source, "monthly_usd": i.monthly_usd}
                for i in self.items
            ],
            "total_usd": self.total_usd,
            "budget_usd": self.budget_usd,
            "limit_usd": self.limit_usd,
            "headroom": self.headroom,
            "required_headroom": self.required_headroom,
            "status": "PASS" if self.passed else "OVER",
            "price_sources": self.sources,
        }


@dataclass(frozen=True)
class Curve:
    """Month-by-month totals of one or more environments against a cap minus the required headroom."""

    scope: str  # an environment name, or "all"
    months: list[int]
    by_env: dict[str, list[float]]  # env -> USD per month (same order as `months`)
    cap_usd: float
    required_headroom: float
    worst: dict[str, CostReport]  # env -> its line items in the worst month

    @property
    def totals(self) -> list[float]:
        return [sum(v[i] for v in self.by_env.values()) for i in range(len(self.months))]

    @property
    def limit_usd(self) -> float:
        return self.cap_usd * (1 - self.required_headroom)

    @property
    def worst_month(self) -> int:
        totals = self.totals
        return self.months[max(range(len(totals)), key=totals.__getitem__)]

    @property
    def worst_usd(self) -> float:
        return max(self.totals)

    @property
    def months_over(self) -> list[int]:
        return [m for m, t in zip(self.months, self.totals, strict=True) if t > self.limit_usd]

    @property
    def passed(self) -> bool:
        return not self.months_over

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "cap_usd": self.cap_usd,
            "required_headroom": self.required_headroom,
            "limit_usd": self.limit_usd,
            "worst_month": self.worst_month,
            "worst_usd": self.worst_usd,
            "months_over": self.months_over,
            "status": "PASS" if self.passed else "OVER",
            "curve": [
                {"month": m, **{e: v[i] for e, v in self.by_env.items()}, "total_usd": self.totals[i]}
                for i, m in enumerate(self.months)
            ],
            "worst_month_items": {e: r.to_dict() for e, r in self.worst.items()},
        }


# -- Snowflake compute: the figures resource monitors are set from ------------------------------------------------


def merge_basis_for(env: Environment, prices: PriceTable, vol: Volumes) -> MergeBasis:
    """The measured MERGE (bench/results.json or FINSIGHT_BENCH_RESULTS) scaled to `env`; fails if there is none."""
    return merge_basis(env, prices, vol, q.bench_results_path())


def warehouse_credits(env: Environment, name: str, prices: PriceTable, vol: Volumes) -> float:
    wh = env.snowflake.warehouses[name]  # type: ignore[index]
    per_hour = prices["snowflake.warehouse_credits_per_hour"].value
    assert isinstance(per_hour, dict)
    hourly = daily = 0.0
    if name == MERGE_WAREHOUSE:
        basis = merge_basis_for(env, prices, vol)
        hourly, daily = basis.busy_minutes_per_hourly_run, basis.busy_minutes_per_daily_backfill
    hours = q.warehouse_hours(wh, vol, prices.usd("snowflake.warehouse_min_billed_seconds"), hourly, daily)
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
    credits = monthly_snowflake_credits(env, volumes=volumes)
    credits["transform"] = credits.get("transform", 0.0) + archive_move_credits(env, default_prices(), volumes)
    return {name: math.ceil(c * (1 + margin)) for name, c in credits.items()}


ARCHIVE_JOB = "OPS.ARCHIVE_CURATED"  # = snowpark.procedures.ARCHIVE_CURATED.name (tests/cost keeps them equal)


def archive_move_credits(env: Environment, prices: PriceTable, vol: Volumes) -> float:
    """The monthly move of CURATED's oldest month into the Iceberg archive, on the transform warehouse: the
    ARCHIVE_CURATED task of the daily retention graph (a no-op except on the first run of a month)."""
    if env.curated_archive is None or "transform" not in env.snowflake.warehouses:
        return 0.0
    per_hour = prices["snowflake.warehouse_credits_per_hour"].value
    assert isinstance(per_hour, dict)
    minutes = per_env(vol.archive.move_minutes_per_month, env.name, "archive.move_minutes_per_month")
    return per_hour[env.snowflake.warehouses["transform"].size] * minutes / 60


# -- line items, one function per service (month = month of operation, 1-based) ------------------------------------


@dataclass(frozen=True)
class Ctx:
    env: Environment
    p: PriceTable
    v: Volumes
    w: q.Workload
    month: int


def _snowflake_items(c: Ctx) -> list[LineItem]:
    env, p, v, w = c.env, c.p, c.v, c.w
    credit = p.usd("snowflake.credit_usd")
    items = []
    for name, credits in monthly_snowflake_credits(env, p, v).items():
        wh = env.snowflake.warehouses[name]  # type: ignore[index]
        basis = f"config snowflake.warehouses.{name}"
        busy = f"{wh.minutes_per_hourly_run:g} min/h + {wh.minutes_per_daily_backfill:g} min/day backfill"
        if name == MERGE_WAREHOUSE:
            m = merge_basis_for(env, p, v)
            basis += f" (size); MERGE minutes: {m.source()}; volumes.yaml merge.*, workload.rows_per_day"
            busy = (f"measured MERGE {m.busy_minutes_per_hourly_run + wh.minutes_per_hourly_run:.1f} min/h + "
                    f"{m.busy_minutes_per_daily_backfill + wh.minutes_per_daily_backfill:.1f} min/day backfill "
                    f"[{m.derivation()}]")  # fmt: skip
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
                f"{busy}, +{wh.auto_suspend_seconds}s auto-suspend tail per resume",
                basis,
            )
        )
    move = archive_move_credits(env, p, v)
    if move:
        items.append(LineItem("Snowflake", "archive move (monthly, transform warehouse)", move, "credits", credit,
                              ("snowflake.credit_usd", "snowflake.warehouse_credits_per_hour"),
                              f"task {ARCHIVE_JOB} of the retention graph (snowpark/archive.py)",
                              "volumes.yaml archive.move_minutes_per_month"))  # fmt: skip
    days = v.calendar.days_per_month
    files = w.files_per_day * days
    items += [
        LineItem("Snowflake", "Snowpipe ingestion (per GB)", w.parquet_gb_per_day * days
                 * p.usd("snowflake.snowpipe_credits_per_gb"), "credits", credit,
                 ("snowflake.credit_usd", "snowflake.snowpipe_credits_per_gb"),
                 f"{w.parquet_gb_per_day * days:,.0f} GB Parquet/month"),
        LineItem("Snowflake", "Snowpipe per-file overhead", files / 1000
                 * p.usd("snowflake.snowpipe_credits_per_1000_files"), "credits", credit,
                 ("snowflake.credit_usd", "snowflake.snowpipe_credits_per_1000_files"), f"{files:,.0f} files/month"),
    ]  # fmt: skip
    storage = q.snowflake_storage(env, v, c.month)
    items.append(
        LineItem(
            "Snowflake",
            "storage (on-demand, as credits)",
            storage.total_tb,
            "TB-month",
            p.usd("snowflake.storage_tb_month"),
            ("snowflake.storage_tb_month",),
            f"curated (hot) {storage.curated_tb:,.1f} + raw {storage.raw_tb:,.1f} + time-travel/fail-safe "
            f"{storage.churn_tb:,.1f} + marts {storage.marts_tb:,.1f} TB",
            "config curated_archive.hot_months, retention.*; volumes.yaml workload.raw_gb_per_day, storage.*",
        )
    )
    return items


def _s3_items(c: Ctx) -> list[LineItem]:
    env, p, v, w = c.env, c.p, c.v, c.w
    raw = q.s3_raw_gb(env, v, c.month)
    days = v.calendar.days_per_month
    files = w.files_per_day * days
    parts = w.parquet_gb_per_day * 1024 / v.storage.multipart_part_mb * days
    r = env.retention
    transitions = files / 1000 if c.month * days > r.raw_infrequent_access_after_days else 0.0
    items = [
        LineItem("S3", f"raw Standard (first {r.raw_infrequent_access_after_days} d)", raw.standard_gb, "GB-month",
                 p.usd("s3.standard_gb_month"), ("s3.standard_gb_month",)),
        LineItem("S3", f"raw Standard-IA (to day {r.raw_days})", raw.ia_gb, "GB-month",
                 p.usd("s3.standard_ia_gb_month"), ("s3.standard_ia_gb_month",)),
        LineItem("S3", f"raw noncurrent versions ({v.storage.raw_noncurrent_days} d after expiry)", raw.noncurrent_gb,
                 "GB-month", p.usd("s3.standard_ia_gb_month"), ("s3.standard_ia_gb_month",)),
        LineItem("S3", "PUT requests (multipart parts + files)", (parts + files) / 1000, "1k requests",
                 p.usd("s3.put_per_1000"), ("s3.put_per_1000",)),
        LineItem("S3", "GET requests (Snowpipe reads)", files * v.storage.gets_per_file / 1000, "1k requests",
                 p.usd("s3.get_per_1000"), ("s3.get_per_1000",)),
        LineItem("S3", "lifecycle transitions to IA", transitions, "1k requests",
                 p.usd("s3.ia_transition_per_1000"), ("s3.ia_transition_per_1000",)),
    ]  # fmt: skip
    if env.curated_archive is not None:
        arc = q.archive_storage(env, v, c.month)
        moved_files = q.curated_growth_tb_per_day(env, v) * days * v.storage.archive_files_per_tb
        items += [
            LineItem("S3", "CURATED archive (Iceberg) Standard", arc.standard_gb, "GB-month",
                     p.usd("s3.standard_gb_month"), ("s3.standard_gb_month",)),
            LineItem("S3", "CURATED archive (Iceberg) Standard-IA", arc.ia_gb, "GB-month",
                     p.usd("s3.standard_ia_gb_month"), ("s3.standard_ia_gb_month",)),
            LineItem("S3", "CURATED archive (Iceberg) Glacier IR", arc.glacier_ir_gb, "GB-month",
                     p.usd("s3.glacier_ir_gb_month"), ("s3.glacier_ir_gb_month",)),
            LineItem("S3", "CURATED archive lifecycle transitions", 2 * moved_files / 1000 if arc.total_gb else 0.0,
                     "1k requests", p.usd("s3.glacier_ir_transition_per_1000"),
                     ("s3.glacier_ir_transition_per_1000",), "IA then Glacier IR (priced at the dearer of the two)"),
        ]  # fmt: skip
        items += _archive_retrieval_items(c, arc)
    return items


def _archive_retrieval_items(c: Ctx, arc: q.ArchiveStorage) -> list[LineItem]:
    """Reading archived history back (HISTORY views over the Iceberg tables) pays S3's per-GB retrieval fee on the
    Standard-IA and Glacier IR tiers; the read pattern is volumes.yaml archive.read_back_months."""
    read = q.archive_read_back(c.env, c.v, arc)
    basis = "volumes.yaml archive.read_back_months; config curated_archive.*_after_days"
    return [
        LineItem("S3", "CURATED archive retrieval from Standard-IA", read.ia_gb, "GB",
                 c.p.usd("s3.standard_ia_retrieval_gb"), ("s3.standard_ia_retrieval_gb",),
                 f"{read.months:g} archived month(s) read back/month, spread over the tiers by size", basis),
        LineItem("S3", "CURATED archive retrieval from Glacier IR", read.glacier_ir_gb, "GB",
                 c.p.usd("s3.glacier_ir_retrieval_gb"), ("s3.glacier_ir_retrieval_gb",), "", basis),
    ]  # fmt: skip


def _compute_items(c: Ctx) -> list[LineItem]:
    env, p, w = c.env, c.p, c.w
    runtime = env.connectors
    vcpu, gb = runtime.cpu / 1024, runtime.memory_mb / 1024
    note = f"{w.sources} sources, {w.connector_task_hours:,.0f} task-h incl. backfills"
    return [
        LineItem("ECS Fargate", f"connector vCPU ({vcpu:g} vCPU/task)", w.connector_task_hours * vcpu, "vCPU-hours",
                 p.usd("fargate.vcpu_hour"), ("fargate.vcpu_hour",), note),
        LineItem("ECS Fargate", f"connector memory ({gb:g} GB/task)", w.connector_task_hours * gb, "GB-hours",
                 p.usd("fargate.gb_hour"), ("fargate.gb_hour",), note),
    ]  # fmt: skip


def _release_items(c: Ctx) -> list[LineItem]:
    """The one shared release repository (build account): billed once, with prod."""
    if c.env.name != "prod":
        return []
    rt = c.v.runtime
    return [LineItem("ECR", "release repository (shared by every environment)", rt.ecr_image_gb * rt.ecr_images_kept,
                     "GB-month", c.p.usd("ecr.storage_gb_month"), ("ecr.storage_gb_month",))]  # fmt: skip


def _security_items(c: Ctx) -> list[LineItem]:
    env, p, v, w = c.env, c.p, c.v, c.w
    rt = v.runtime
    secrets = w.sources + 2  # one per source + Snowflake service user + PAN tokenization key
    runs = w.hourly_runs + w.backfill_runs
    kms_requests = w.files_per_day * v.calendar.days_per_month * rt.kms_requests_per_file
    return [
        LineItem("KMS", "customer managed keys", 1 + rt.extra_kms_keys, "key-months", p.usd("kms.key_month"),
                 ("kms.key_month",), f"{env.aws.s3.kms_key_alias} + {rt.extra_kms_keys} (secrets, ops)"),
        LineItem("KMS", "requests (S3 Bucket Keys on)", kms_requests / 10_000, "10k requests",
                 p.usd("kms.requests_per_10k"), ("kms.requests_per_10k",)),
        LineItem("Secrets Manager", "secrets", secrets, "secret-months", p.usd("secrets_manager.secret_month"),
                 ("secrets_manager.secret_month",), "one per source + snowflake service user + PAN key"),
        LineItem("Secrets Manager", "API calls", runs * rt.secret_calls_per_run / 10_000, "10k calls",
                 p.usd("secrets_manager.api_calls_per_10k"), ("secrets_manager.api_calls_per_10k",)),
    ]  # fmt: skip


def _observability_items(c: Ctx) -> list[LineItem]:
    env, p, v, w = c.env, c.p, c.v, c.w
    rt = v.runtime
    connector_logs = (w.hourly_runs + w.backfill_runs) * rt.log_gb_per_connector_run
    flow_logs = per_env(rt.flow_log_gb_per_month, env.name, "runtime.flow_log_gb_per_month")
    ingest = connector_logs + flow_logs
    kept_days = min(c.month * v.calendar.days_per_month, rt.log_retention_days)
    stored = ingest / v.calendar.days_per_month * kept_days * rt.log_storage_ratio
    alarms = rt.fixed_alarms + rt.alarms_per_source * w.sources
    runs = w.hourly_runs / w.sources  # one schedule per hour drives all sources of the environment
    return [
        LineItem("CloudWatch", "logs ingested (connectors + VPC flow logs)", ingest, "GB",
                 p.usd("cloudwatch.logs_ingest_gb"), ("cloudwatch.logs_ingest_gb",),
                 f"{connector_logs:,.1f} GB connector + {flow_logs:,.1f} GB flow logs"),
        LineItem("CloudWatch", f"logs stored (up to {rt.log_retention_days} d)", stored, "GB-month",
                 p.usd("cloudwatch.logs_storage_gb_month"), ("cloudwatch.logs_storage_gb_month",)),
        LineItem("CloudWatch", "alarms", alarms, "alarm-months", p.usd("cloudwatch.alarm_month"),
                 ("cloudwatch.alarm_month",)),
        LineItem("Messaging", "EventBridge Scheduler invocations", (runs + w.backfill_runs) / 1e6, "M invocations",
                 p.usd("messaging.scheduler_per_million"), ("messaging.scheduler_per_million",)),
        LineItem("Messaging", "SNS alert publishes", rt.sns_publishes / 1e6, "M publishes",
                 p.usd("messaging.sns_publish_per_million"), ("messaging.sns_publish_per_million",)),
    ]  # fmt: skip


def _network_items(c: Ctx) -> list[LineItem]:
    env, p, v, w = c.env, c.p, c.v, c.w
    rt = v.runtime
    hours = v.calendar.always_on_hours_per_month
    layout = env.network
    nats, azs, endpoints = layout.nat_gateways, layout.availability_zones, len(layout.interface_endpoints)
    ingest_logs = (w.hourly_runs + w.backfill_runs) * rt.log_gb_per_connector_run
    endpoint_gb = ingest_logs + per_env(rt.endpoint_other_gb, env.name, "runtime.endpoint_other_gb")
    items = [
        LineItem("VPC", f"NAT gateways ({nats})", nats * hours, "gateway-hours", p.usd("vpc.nat_gateway_hour"),
                 ("vpc.nat_gateway_hour",), "count from `network:` (the IaC builds the same)"),
        LineItem("VPC", "NAT data (payment API traffic)", w.api_gb_per_month, "GB", p.usd("vpc.nat_gateway_gb"),
                 ("vpc.nat_gateway_gb",), "S3 + ECR layers go through the free S3 gateway endpoint"),
        LineItem("VPC", f"interface endpoints ({endpoints} x {azs} AZ)", endpoints * azs * hours, "endpoint-AZ-hours",
                 p.usd("vpc.interface_endpoint_az_hour"), ("vpc.interface_endpoint_az_hour",),
                 ", ".join(layout.interface_endpoints)),
        LineItem("VPC", "interface endpoint data", endpoint_gb, "GB", p.usd("vpc.interface_endpoint_gb"),
                 ("vpc.interface_endpoint_gb",)),
        LineItem("VPC", "S3 gateway endpoint data", w.parquet_gb_per_day * v.calendar.days_per_month, "GB",
                 p.usd("vpc.gateway_endpoint_gb"), ("vpc.gateway_endpoint_gb",), "free; listed so nobody removes it"),
    ]  # fmt: skip
    if env.source_network is not None:
        key = TRANSIT_PRICES[env.source_network.transit]
        gb = w.raw_gb_per_day * (1 + v.workload.backfill_fraction_of_daily) * v.calendar.days_per_month
        items.append(LineItem("VPC", f"transit from the sources ({env.source_network.transit})", gb, "GB",
                              p.usd(key), (key,), "uncompressed rows read from the 12 databases"))  # fmt: skip
    return items


SERVICES = (_snowflake_items, _s3_items, _compute_items, _release_items, _security_items, _observability_items,
            _network_items)  # fmt: skip


# Where each line's quantity comes from, for lines that do not say it themselves (item name prefix -> keys).
_ROWS = "volumes.yaml workload.raw_gb_per_day, workload.backfill_fraction_of_daily, storage.parquet_ratio"
_FILES = "config connectors.rows_per_file, source tables; volumes.yaml workload.rows_per_day"
QUANTITY_SOURCES = {
    "Snowpipe ingestion": _ROWS,
    "Snowpipe per-file": _FILES,
    "raw Standard": f"config retention.raw_days, retention.raw_infrequent_access_after_days; {_ROWS}",
    "raw noncurrent": f"volumes.yaml storage.raw_noncurrent_days; {_ROWS}",
    "PUT requests": f"volumes.yaml storage.multipart_part_mb; {_FILES}",
    "GET requests": f"volumes.yaml storage.gets_per_file; {_FILES}",
    "lifecycle transitions": _FILES,
    "CURATED archive (Iceberg)": "config curated_archive.*; volumes.yaml storage.curated_growth_fraction, "
    "storage.marts_fraction_of_curated, storage.iceberg_vs_snowflake",
    "CURATED archive lifecycle": "volumes.yaml storage.archive_files_per_tb",
    "release repository": "volumes.yaml runtime.ecr_image_gb, runtime.ecr_images_kept",
    "customer managed keys": "config aws.s3.kms_key_alias; volumes.yaml runtime.extra_kms_keys",
    "requests (S3 Bucket Keys on)": f"volumes.yaml runtime.kms_requests_per_file; {_FILES}",
    "secrets": "config postgres_sources, api_sources, secrets.*",  # pragma: allowlist secret (a line label)
    "API calls": "volumes.yaml runtime.secret_calls_per_run; config sources",
    "logs ingested": "volumes.yaml runtime.log_gb_per_connector_run, runtime.flow_log_gb_per_month",
    "logs stored": "volumes.yaml runtime.log_retention_days, runtime.log_storage_ratio",
    "alarms": "volumes.yaml runtime.fixed_alarms, runtime.alarms_per_source",
    "EventBridge Scheduler": "config sources; volumes.yaml calendar.days_per_month",
    "SNS alert publishes": "volumes.yaml runtime.sns_publishes",
    "NAT gateways": "config network.nat_gateways",
    "NAT data": "volumes.yaml workload.api_gb_per_day",
    "interface endpoints": "config network.interface_endpoints, network.availability_zones",
    "interface endpoint data": "volumes.yaml runtime.endpoint_other_gb, runtime.log_gb_per_connector_run",
    "S3 gateway endpoint": _ROWS,
    "transit from the sources": "config source_network.transit; volumes.yaml workload.raw_gb_per_day",
}


def _connector_basis(env: Environment) -> str:
    measured = q.measured_extract_source()
    runtime = "config connectors.cpu, connectors.memory_mb; volumes.yaml runtime.task_overhead_minutes"
    if measured is None:
        return f"{runtime}, config connectors.minutes_per_hourly_run (no extract measurement)"
    return f"{runtime}; {measured} x volumes.yaml workload.rows_per_day"


def _with_source(item: LineItem, env: Environment) -> LineItem:
    if item.basis:
        return item
    if item.service == "ECS Fargate":
        return replace(item, basis=_connector_basis(env))
    for prefix, basis in QUANTITY_SOURCES.items():
        if item.item.startswith(prefix):
            return replace(item, basis=basis)
    raise AssertionError(f"line item {item.item!r} does not say where its quantity comes from")  # tests/cost


def line_items(env: Environment, prices: PriceTable, volumes: Volumes, month: int = MONTHS_PER_YEAR) -> list[LineItem]:
    w = q.workload(env, volumes, q.measured_extract_rows_per_second())
    ctx = Ctx(env, prices, volumes, w, month)
    return [_with_source(item, env) for service in SERVICES for item in service(ctx)]


def estimate(
    env: Environment,
    prices: PriceTable | None = None,
    volumes: Volumes | None = None,
    month: int = MONTHS_PER_YEAR,
) -> CostReport:
    """The bill of `env` in month `month` of operation (default: the last month of year 1)."""
    prices, volumes = prices or default_prices(), volumes or default_volumes()
    items = line_items(env, prices, volumes, month)
    used = sorted({k for i in items for k in i.price_keys})
    return CostReport(
        env=env.name,
        month=month,
        items=items,
        budget_usd=env.budget.monthly_usd,
        required_headroom=env.budget.required_headroom,
        sources={k: {"source": prices[k].source, "assumed": prices[k].assumed} for k in used},
    )


def curve(
    envs: list[Environment],
    horizon: int = DEFAULT_HORIZON_MONTHS,
    prices: PriceTable | None = None,
    volumes: Volumes | None = None,
) -> Curve:
    """Month 1..horizon totals. One env: against its allocation; several: against the shared platform cap minus the
    required headroom."""
    if not envs:
        raise ValueError("no environments to cost")
    if horizon < 1:
        raise ValueError(f"--horizon must be at least 1 month, got {horizon}")
    prices, volumes = prices or default_prices(), volumes or default_volumes()
    months = list(range(1, horizon + 1))
    reports = {e.name: [estimate(e, prices, volumes, m) for m in months] for e in envs}
    by_env = {name: [r.total_usd for r in rs] for name, rs in reports.items()}
    if len(envs) == 1:  # the headroom is held at the platform level, by the allocations: none inside one
        scope, cap, headroom = envs[0].name, envs[0].budget.monthly_usd, 0.0
    else:
        caps = {e.budget.platform_monthly_usd for e in envs}
        if len(caps) != 1:
            raise ValueError(f"environments disagree on budget.platform_monthly_usd: {sorted(caps)}")
        scope, cap, headroom = "all", caps.pop(), max(e.budget.required_headroom for e in envs)
    totals = [sum(v[i] for v in by_env.values()) for i in range(len(months))]
    worst_index = max(range(len(months)), key=totals.__getitem__)
    return Curve(
        scope=scope,
        months=months,
        by_env=by_env,
        cap_usd=cap,
        required_headroom=headroom,
        worst={name: rs[worst_index] for name, rs in reports.items()},
    )


def allocations_fit(envs: list[Environment]) -> tuple[float, float]:
    """(sum of the environments' budget allocations, the platform cap minus the required headroom): the first must
    not exceed the second, so the budgets alone leave the headroom free."""
    cap = max(e.budget.platform_monthly_usd for e in envs)
    headroom = max(e.budget.required_headroom for e in envs)
    return sum(e.budget.monthly_usd for e in envs), cap * (1 - headroom)


def account_credit_quota(env: Environment, prices: PriceTable | None = None) -> int:
    """Account resource monitor quota: the credits the Snowflake share of the allocation (allocation minus the AWS
    Budgets limit) can buy.

    Per-warehouse monitors follow the forecast; this one is the hard ceiling that keeps a runaway (or a new,
    unmonitored warehouse) inside the budget the cost gate approved.
    """
    prices = prices or default_prices()
    # the allocation already sits inside the platform headroom (allocations_fit); AWS Budgets watch its AWS share
    spendable = env.budget.monthly_usd - (env.budget.aws_monthly_usd or 0.0)
    return max(1, math.floor(spendable / prices.usd("snowflake.credit_usd")))
