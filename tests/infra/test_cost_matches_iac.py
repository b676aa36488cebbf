"""What the cost model counts is what the IaC builds: NAT gateways, interface endpoints x AZs, warehouses, and the
lifecycle windows the storage lines are priced on (read from the synthesized stacks, not from shared constants)."""

from __future__ import annotations

from finsight.cost.model import estimate
from finsight.cost.tables import default_volumes
from tests.infra.conftest import Synth


def _items(s: Synth) -> dict[str, float]:
    return {i.item: i.quantity for i in estimate(s.env, month=84).items}


def _line(s: Synth, prefix: str) -> float:
    (q,) = [q for item, q in _items(s).items() if item.startswith(prefix)]
    return q


def test_nat_gateways_counted_as_built(stack: Synth) -> None:
    hours = default_volumes().calendar.always_on_hours_per_month
    built = len(stack.resources("aws", "aws_nat_gateway"))
    assert built >= 1
    assert _line(stack, "NAT gateways") == built * hours


def test_interface_endpoints_and_azs_counted_as_built(stack: Synth) -> None:
    hours = default_volumes().calendar.always_on_hours_per_month
    endpoints = [
        e for e in stack.resources("aws", "aws_vpc_endpoint").values() if e["vpc_endpoint_type"] == "Interface"
    ]
    azs = {
        s["availability_zone"] for s in stack.resources("aws", "aws_subnet").values() if "private" in s["tags"]["Name"]
    }
    for e in endpoints:
        assert len(e["subnet_ids"]) == len(azs)  # an endpoint has a (billed) network interface in every AZ
    assert _line(stack, "interface endpoints") == len(endpoints) * len(azs) * hours


def test_warehouses_counted_as_built(stack: Synth) -> None:
    built = {w["name"] for w in stack.resources("snowflake", "snowflake_warehouse").values()}
    priced = {item for item in _items(stack) if item.startswith("warehouse ")}
    assert len(priced) == len(built) == len(stack.env.snowflake.warehouses)
    for logical, wh in stack.env.snowflake.warehouses.items():
        assert f"warehouse {logical} ({wh.size})" in priced
        assert stack.env.snowflake.warehouse_name(logical) in built


def _rules(s: Synth, bucket: str) -> list[dict]:
    (bucket_cid,) = [cid for cid, b in s.resources("aws", "aws_s3_bucket").items() if b["bucket"] == bucket]
    (lc,) = [
        lc
        for lc in s.resources("aws", "aws_s3_bucket_lifecycle_configuration").values()
        if lc["bucket"] == f"${{aws_s3_bucket.{bucket_cid}.id}}"
    ]
    return [r for r in lc["rule"] if r["filter"][0].get("prefix")]


def test_raw_noncurrent_window_priced_as_built(stack: Synth) -> None:
    (rule,) = _rules(stack, stack.env.aws.s3.bucket)
    assert rule["noncurrent_version_expiration"][0]["noncurrent_days"] == default_volumes().storage.raw_noncurrent_days


def test_archive_tiers_priced_as_built(stack: Synth) -> None:
    archive = stack.env.curated_archive
    assert archive is not None
    (rule,) = _rules(stack, archive.bucket)
    transitions = {t["storage_class"]: t["days"] for t in rule["transition"]}
    assert transitions == {
        "STANDARD_IA": archive.infrequent_access_after_days,
        "GLACIER_IR": archive.glacier_ir_after_days,
    }
    assert rule["filter"][0]["prefix"] == f"{archive.prefix}/"


def test_log_retention_priced_as_built(stack: Synth) -> None:
    kept = {g["retention_in_days"] for g in stack.resources("aws", "aws_cloudwatch_log_group").values()}
    assert kept == {default_volumes().runtime.log_retention_days}
