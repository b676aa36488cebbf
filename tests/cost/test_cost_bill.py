"""prod's whole bill in month 84, line by line: service, item, unit, price entry, quantity and note, each quantity
derived by hand from environments/prod.yaml and finsight/cost/volumes.yaml (comments), not through the model.

test_cost_model.py holds the dollar figures of the big lines; this file holds every line, so a line dropped,
renamed, moved to another service, priced from another entry or computed from another quantity goes red.
"""

from __future__ import annotations

import pytest

from finsight.config import load_environment
from finsight.config.models import Environment
from finsight.cost import curve, estimate
from finsight.cost.model import LineItem, resource_monitor_quotas
from finsight.cost.tables import default_prices

# prod: 12 PostgreSQL + 4 API sources = 16; 22 streams; connector task 4 vCPU / 16 GB, 9 min per hourly run,
# 2 M rows per file; network: 1 NAT gateway, 2 AZs, 4 interface endpoints; transit_gateway to the sources.
# volumes.yaml (prod): raw 1,200 GB/day, 8e9 rows/day, API 25 GB/day, backfill +10 %, Parquet 0.25 of raw.
#   days = 30; Parquet/day P = 1,200 x 0.25 x 1.1 = 330 GB; files/day = 8e9 x 1.1 / 2e6 + 2 x 22 streams x 24
#   = 4,400 + 1,056 = 5,456 -> F = 163,680 files/month
#   hourly runs 16 x 24 x 30 = 11,520; backfill runs 16 x 30 = 480 (each 9 x 24 x 0.1 = 21.6 min)
#   task-hours = (11,520 x 9 + 480 x 21.6) / 60 = (103,680 + 10,368) / 60 = 1,900.8
#   curated growth G = 330 / 1024 x 0.5 TB/day; archived files/month = G x 30 x 4,096 = 165 x 120 = 19,800
# MERGE (tests/cost/pinned_bench_merge.json): 10.16 s for 1 M rows into 5 M = 6 M rows x 206 B = 1.1511 GB scanned
#   -> 8.826 s/GB; prod 8e9 rows/day / 24 x 1.1511e-6 GB/row x (1,200 GB / 8e9 rows / 206 B) = 300 GB/h
#   -> 0.7355 machine-h/h = XSMALL-h/h (factor 1.0) -> on MEDIUM (4x) B = 11.0328 min/h; backfill 2.4 B = 26.479
#   credits = 4 x (720 x (B + 1) + 30 x (2.4 B + 1)) / 60 = 632.531
# archive read back: 2 months x 181.5 GB/day x 30 = 10,890 GB of the 421,987.5 GB archive, spread by tier size:
#   IA 10,890 x 10,890 / 421,987.5 = 281.032; Glacier IR 10,890 x 405,652.5 / 421,987.5 = 10,468.452
EXPECTED: list[tuple[str, str, str, tuple[str, ...], float, str]] = [
    # (service, item, unit, price entries, quantity, note)
    ("Snowflake", "warehouse load (MEDIUM)", "credits",
     ("snowflake.credit_usd", "snowflake.warehouse_credits_per_hour", "snowflake.warehouse_min_billed_seconds"),
     632.531, "measured MERGE 11.0 min/h + 26.5 min/day backfill [8.8 s/GB on the bench machine x 300.0 GB "
     "scanned/h = 0.74 machine-h/h -> 0.74 XSMALL-h/h -> 11.0 min/h on MEDIUM], +60s auto-suspend tail per resume"),
    ("Snowflake", "warehouse transform (SMALL)", "credits",
     ("snowflake.credit_usd", "snowflake.warehouse_credits_per_hour", "snowflake.warehouse_min_billed_seconds"),
     264.0, "10 min/h + 0 min/day backfill, +60s auto-suspend tail per resume"),  # 132 h x 2
    ("Snowflake", "archive move (monthly, transform warehouse)", "credits",
     ("snowflake.credit_usd", "snowflake.warehouse_credits_per_hour"), 4.0,
     "task OPS.ARCHIVE_CURATED of the retention graph (snowpark/archive.py)"),  # SMALL 2 cr/h x 120 min
    ("Snowflake", "Snowpipe ingestion (per GB)", "credits",
     ("snowflake.credit_usd", "snowflake.snowpipe_credits_per_gb"), 36.63,
     "9,900 GB Parquet/month"),  # 330 x 30 = 9,900 GB x 0.0037
    ("Snowflake", "Snowpipe per-file overhead", "credits",
     ("snowflake.credit_usd", "snowflake.snowpipe_credits_per_1000_files"), 9.8208,
     "163,680 files/month"),  # 163.68 x 0.06
    ("Snowflake", "storage (on-demand, as credits)", "TB-month", ("snowflake.storage_tb_month",), 42.941895,
     "curated (hot) 31.4 + raw 4.5 + time-travel/fail-safe 3.9 + marts 3.1 TB"),  # test_cost_model's sums
    ("S3", "raw Standard (first 30 d)", "GB-month", ("s3.standard_gb_month",), 9900.0, ""),  # 30 d x 330
    ("S3", "raw Standard-IA (to day 180)", "GB-month", ("s3.standard_ia_gb_month",), 49500.0, ""),  # 150 d x 330
    ("S3", "raw noncurrent versions (30 d after expiry)", "GB-month", ("s3.standard_ia_gb_month",), 9900.0, ""),
    # parts 330 x 1,024 / 16 MB x 30 = 633,600 + F 163,680 = 797,280 requests
    ("S3", "PUT requests (multipart parts + files)", "1k requests", ("s3.put_per_1000",), 797.28, ""),
    ("S3", "GET requests (Snowpipe reads)", "1k requests", ("s3.get_per_1000",), 1309.44, ""),  # F x 8 GETs
    ("S3", "lifecycle transitions to IA", "1k requests", ("s3.ia_transition_per_1000",), 163.68, ""),  # F
    ("S3", "CURATED archive (Iceberg) Standard", "GB-month", ("s3.standard_gb_month",), 5445.0, ""),
    ("S3", "CURATED archive (Iceberg) Standard-IA", "GB-month", ("s3.standard_ia_gb_month",), 10890.0, ""),
    ("S3", "CURATED archive (Iceberg) Glacier IR", "GB-month", ("s3.glacier_ir_gb_month",), 405652.5, ""),
    ("S3", "CURATED archive lifecycle transitions", "1k requests", ("s3.glacier_ir_transition_per_1000",), 39.6,
     "IA then Glacier IR (priced at the dearer of the two)"),  # 2 transitions x 19,800 files
    ("S3", "CURATED archive retrieval from Standard-IA", "GB", ("s3.standard_ia_retrieval_gb",), 281.032258,
     "2 archived month(s) read back/month, spread over the tiers by size"),
    ("S3", "CURATED archive retrieval from Glacier IR", "GB", ("s3.glacier_ir_retrieval_gb",), 10468.451613, ""),
    ("ECS Fargate", "connector vCPU (4 vCPU/task)", "vCPU-hours", ("fargate.vcpu_hour",), 7603.2,
     "16 sources, 1,901 task-h incl. backfills"),  # 1,900.8 x 4
    ("ECS Fargate", "connector memory (16 GB/task)", "GB-hours", ("fargate.gb_hour",), 30412.8,
     "16 sources, 1,901 task-h incl. backfills"),  # 1,900.8 x 16
    ("ECR", "release repository (shared by every environment)", "GB-month", ("ecr.storage_gb_month",), 30.0, ""),
    ("KMS", "customer managed keys", "key-months", ("kms.key_month",), 3,
     "alias/finsight-prod-raw + 2 (secrets, ops)"),  # the raw bucket's key + 2
    ("KMS", "requests (S3 Bucket Keys on)", "10k requests", ("kms.requests_per_10k",), 32.736, ""),  # F x 2
    ("Secrets Manager", "secrets", "secret-months", ("secrets_manager.secret_month",), 18,
     "one per source + snowflake service user + PAN key"),  # 16 + 2
    ("Secrets Manager", "API calls", "10k calls", ("secrets_manager.api_calls_per_10k",), 2.4, ""),  # 12,000 runs x 2
    ("CloudWatch", "logs ingested (connectors + VPC flow logs)", "GB", ("cloudwatch.logs_ingest_gb",), 120.0,
     "60.0 GB connector + 60.0 GB flow logs"),  # 12,000 runs x 0.005 GB + 60 GB flow logs
    ("CloudWatch", "logs stored (up to 365 d)", "GB-month", ("cloudwatch.logs_storage_gb_month",), 219.0, ""),
    ("CloudWatch", "alarms", "alarm-months", ("cloudwatch.alarm_month",), 24, ""),  # 8 fixed + 16 sources
    # one schedule per hour for all sources (720) + 480 backfill tasks
    ("Messaging", "EventBridge Scheduler invocations", "M invocations", ("messaging.scheduler_per_million",),
     0.0012, ""),
    ("Messaging", "SNS alert publishes", "M publishes", ("messaging.sns_publish_per_million",), 0.01, ""),
    ("VPC", "NAT gateways (1)", "gateway-hours", ("vpc.nat_gateway_hour",), 730.0,
     "count from `network:` (the IaC builds the same)"),
    ("VPC", "NAT data (payment API traffic)", "GB", ("vpc.nat_gateway_gb",), 825.0,
     "S3 + ECR layers go through the free S3 gateway endpoint"),  # 25 x 1.1 x 30
    ("VPC", "interface endpoints (4 x 2 AZ)", "endpoint-AZ-hours", ("vpc.interface_endpoint_az_hour",), 5840.0,
     "secretsmanager, ecr.api, ecr.dkr, logs"),  # 4 x 2 x 730
    ("VPC", "interface endpoint data", "GB", ("vpc.interface_endpoint_gb",), 80.0, ""),  # 60 GB logs + 20 other
    ("VPC", "S3 gateway endpoint data", "GB", ("vpc.gateway_endpoint_gb",), 9900.0,
     "free; listed so nobody removes it"),  # P x 30
    ("VPC", "transit from the sources (transit_gateway)", "GB", ("vpc.transit_gateway_gb",), 39600.0,
     "uncompressed rows read from the 12 databases"),  # 1,200 x 1.1 x 30
]  # fmt: skip


@pytest.fixture(scope="module")
def prod() -> Environment:
    return load_environment("prod")


def _row(i: LineItem) -> tuple[str, str, str, tuple[str, ...], float, str]:
    return (i.service, i.item, i.unit, i.price_keys, i.quantity, i.note)


def test_prod_month_84_every_line_of_the_bill(prod: Environment) -> None:
    items = estimate(prod, month=84).items
    assert [i.item for i in items] == [e[1] for e in EXPECTED]  # the same lines, in the printed order
    for item, expected in zip(items, EXPECTED, strict=True):
        service, name, unit, keys, quantity, note = expected
        assert (item.service, item.unit, item.price_keys, item.note) == (service, unit, keys, note), name
        assert item.quantity == pytest.approx(quantity, rel=1e-6), name


def test_each_line_is_priced_from_its_first_price_entry(prod: Environment) -> None:
    """The unit price is the cited entry's: credits at the credit price, everything else at its own entry."""
    prices = default_prices()
    for item in estimate(prod, month=84).items:
        assert item.unit_price_usd == prices.usd(item.price_keys[0]), item.item
    assert prices.usd("snowflake.credit_usd") == 4.00  # what the credit lines above are multiplied by


def test_month_one_before_anything_ages(prod: Environment) -> None:
    """Month 1: nothing is older than 30 days yet (no transitions to IA), logs kept 30 days, not 365."""
    by_item = {i.item: i for i in estimate(prod, month=1).items}
    assert by_item["lifecycle transitions to IA"].quantity == 0.0  # 1 x 30 days is not past the 30-day transition
    assert by_item["logs stored (up to 365 d)"].quantity == pytest.approx(18.0)  # 120 GB / 30 x 30 d x 0.15
    assert estimate(prod, month=2).items[11].quantity == pytest.approx(163.68)  # day 60 > 30: transitions billed


def test_the_release_repository_is_billed_once_with_prod() -> None:
    for name in ("dev", "staging"):
        assert "ECR" not in {i.service for i in estimate(load_environment(name), month=84).items}, name


def test_curve_months_worst_month_and_its_bill(prod: Environment) -> None:
    c = curve([prod], 3)
    assert c.months == [1, 2, 3] and c.scope == "prod" and c.cap_usd == prod.budget.monthly_usd
    worst = c.worst["prod"]
    assert worst.month == 3 and worst.env == "prod"
    assert [_row(i) for i in worst.items] == [_row(i) for i in estimate(prod, month=3).items]
    assert c.by_env["prod"] == [estimate(prod, month=m).total_usd for m in (1, 2, 3)]
    with pytest.raises(ValueError, match="no environments to cost"):
        curve([], 3)
    with pytest.raises(ValueError, match="at least 1 month, got 0"):
        curve([prod], 0)
    staging = load_environment("staging")
    other = staging.model_copy(update={"budget": staging.budget.model_copy(update={"platform_monthly_usd": 18001})})
    with pytest.raises(ValueError, match=r"disagree on budget.platform_monthly_usd: \[18000.*18001"):
        curve([prod, other], 1)


def test_resource_monitor_quotas_for_prod(prod: Environment) -> None:
    """load 632.531 credits x 1.2 = 759.04 -> 760; transform (264 + 4 archive move) x 1.2 = 321.6 -> 322."""
    assert resource_monitor_quotas(prod) == {"load": 760, "transform": 322}
