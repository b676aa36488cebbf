"""The cost model: prod fits its budget, prices cite sources, and config changes move the bill as they should."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finsight.config import load_environment, repo_root
from finsight.config.models import Environment
from finsight.cost import estimate, monthly_snowflake_credits, resource_monitor_quotas
from finsight.cost.quantities import billed_minutes_per_resume
from finsight.cost.tables import default_prices, default_volumes, load_prices

ROOT = repo_root()
FINSIGHT = Path(sys.executable).with_name("finsight")
CLOUD_ENVS = ("dev", "staging", "prod")


def _with_warehouse(env: Environment, name: str, **changes: object) -> Environment:
    warehouses = dict(env.snowflake.warehouses)
    warehouses[name] = warehouses[name].model_copy(update=changes)  # type: ignore[index]
    return env.model_copy(update={"snowflake": env.snowflake.model_copy(update={"warehouses": warehouses})})


@pytest.fixture(scope="module")
def prod() -> Environment:
    return load_environment("prod")


@pytest.mark.parametrize("name", CLOUD_ENVS)
def test_every_cloud_env_fits_budget_with_required_headroom(name: str) -> None:
    env = load_environment(name)
    report = estimate(env)
    # both numbers come from environments/*.yaml, never from this test
    assert report.total_usd <= env.budget.monthly_usd
    assert report.headroom >= env.budget.required_headroom, f"{name}: {report.headroom:.1%} headroom"
    assert report.passed


def test_prod_total_and_headroom(prod: Environment) -> None:
    report = estimate(prod)
    assert report.total_usd <= prod.budget.monthly_usd * (1 - prod.budget.required_headroom)


def test_every_line_item_price_cites_a_source(prod: Environment) -> None:
    prices = default_prices()
    for item in estimate(prod).items:
        assert item.price_keys, item
        for key in item.price_keys:
            assert prices[key].source.startswith("https://"), key
            assert prices[key].assumed, key


def test_every_price_in_the_table_has_unit_value_source() -> None:
    raw = yaml.safe_load((ROOT / "finsight/cost/prices.yaml").read_text())
    for section, entries in raw.items():
        for name, entry in entries.items():
            assert {"unit", "value", "source", "assumed"} <= entry.keys(), f"{section}.{name}"


def test_price_without_source_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("s3:\n  standard_gb_month: {unit: USD, value: 0.023, assumed: x}\n")
    with pytest.raises(Exception, match="source"):
        load_prices(bad)


def test_billing_minimum_and_auto_suspend_tail() -> None:
    assert billed_minutes_per_resume(0, 60, 60) == 0
    assert billed_minutes_per_resume(0.2, 0, 60) == 1  # 12 s of work bills a full minute
    assert billed_minutes_per_resume(10, 300, 60) == 15  # the idle tail before suspend is billed too


@pytest.mark.parametrize(("new_size", "factor"), [("XLARGE", 2), ("MEDIUM", 0.5), ("XXLARGE", 4)])
def test_warehouse_size_scales_its_credits_and_the_bill(prod: Environment, new_size: str, factor: float) -> None:
    before = estimate(prod)
    changed = _with_warehouse(prod, "load", size=new_size)  # prod load is LARGE
    after = estimate(changed)
    load_before = monthly_snowflake_credits(prod)["load"]
    assert monthly_snowflake_credits(changed)["load"] == pytest.approx(load_before * factor)
    assert monthly_snowflake_credits(changed)["transform"] == monthly_snowflake_credits(prod)["transform"]
    credit = default_prices().usd("snowflake.credit_usd")
    assert after.total_usd - before.total_usd == pytest.approx(load_before * (factor - 1) * credit)


def test_changed_config_loaded_from_a_copied_environments_dir(tmp_path: Path, prod: Environment) -> None:
    envs = tmp_path / "environments"
    shutil.copytree(ROOT / "environments", envs)
    data = yaml.safe_load((envs / "prod.yaml").read_text())
    data["snowflake"]["warehouses"]["transform"]["size"] = "LARGE"  # MEDIUM -> LARGE doubles its credits
    (envs / "prod.yaml").write_text(yaml.safe_dump(data))
    copied = load_environment("prod", envs)
    assert monthly_snowflake_credits(copied)["transform"] == pytest.approx(
        2 * monthly_snowflake_credits(prod)["transform"]
    )


def test_credits_follow_minutes_and_backfill(prod: Environment) -> None:
    wh = prod.snowflake.warehouses["load"]
    per_hour = default_prices()["snowflake.warehouse_credits_per_hour"].value[wh.size]  # type: ignore[index]
    tail = wh.auto_suspend_seconds / 60
    expected = per_hour * ((wh.minutes_per_hourly_run + tail) * 720 + (wh.minutes_per_daily_backfill + tail) * 30) / 60
    assert monthly_snowflake_credits(prod)["load"] == pytest.approx(expected)


def test_credits_keys_are_the_configured_warehouses(prod: Environment) -> None:
    assert set(monthly_snowflake_credits(prod)) == set(prod.snowflake.warehouses) == {"load", "transform"}


def test_resource_monitor_quota_agrees_with_credits(prod: Environment) -> None:
    margin = default_volumes().resource_monitor.margin
    credits = monthly_snowflake_credits(prod)
    quotas = resource_monitor_quotas(prod)
    assert set(quotas) == set(credits)
    for name, quota in quotas.items():
        assert isinstance(quota, int)
        assert quota == math.ceil(credits[name] * (1 + margin))
        assert quota >= credits[name]


def test_snowflake_items_bill_exactly_the_quota_credits(prod: Environment) -> None:
    credit = default_prices().usd("snowflake.credit_usd")
    items = {i.item: i for i in estimate(prod).items if i.item.startswith("warehouse ")}
    assert sum(i.monthly_usd for i in items.values()) == pytest.approx(
        sum(monthly_snowflake_credits(prod).values()) * credit
    )


def test_secrets_counted_from_config(prod: Environment) -> None:
    secrets = next(i for i in estimate(prod).items if i.item == "secrets")
    assert secrets.quantity == len(prod.postgres_sources) + len(prod.api_sources) + 2


def test_s3_tiering_follows_retention(prod: Environment) -> None:
    items = {i.item: i for i in estimate(prod).items if i.service == "S3"}
    standard = next(v for k, v in items.items() if k.startswith("raw Standard ("))
    ia = next(v for k, v in items.items() if k.startswith("raw Standard-IA"))
    r = prod.retention
    assert ia.quantity / standard.quantity == pytest.approx(
        (r.raw_days - r.raw_infrequent_access_after_days) / r.raw_infrequent_access_after_days
    )


def test_storage_ceiling_is_reported_apart_and_larger(prod: Environment) -> None:
    o = estimate(prod).outlook
    assert o.ceiling_years == prod.retention.curated_years
    assert o.ceiling_tb > o.year1_tb
    assert o.ceiling_total_usd > estimate(prod).total_usd


def test_cli_json_matches_the_model(prod: Environment) -> None:
    out = subprocess.run([str(FINSIGHT), "cost", "--env", "prod", "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "PASS"
    assert data["total_usd"] == pytest.approx(sum(i["monthly_usd"] for i in data["items"]))
    assert data["total_usd"] == pytest.approx(estimate(prod).total_usd)
    assert data["budget_usd"] == prod.budget.monthly_usd


def test_cli_table_shows_total_budget_and_status() -> None:
    out = subprocess.run([str(FINSIGHT), "cost", "--env", "staging"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    for word in ("total", "budget", "headroom", "PASS", "Snowflake", "monthly USD"):
        assert word in out.stdout


def test_cli_exits_1_when_over_budget(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "environments", root / "environments")
    prod_file = root / "environments" / "prod.yaml"
    data = yaml.safe_load(prod_file.read_text())
    data["budget"] = {"monthly_usd": 1000}
    prod_file.write_text(yaml.safe_dump(data))
    env = {"FINSIGHT_ROOT": str(root), "PATH": str(FINSIGHT.parent)}
    out = subprocess.run([str(FINSIGHT), "cost", "--env", "prod"], capture_output=True, text=True, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "OVER" in out.stdout


def test_headroom_below_requirement_fails_even_under_budget(prod: Environment) -> None:
    total = estimate(prod).total_usd
    tight = prod.model_copy(update={"budget": prod.budget.model_copy(update={"monthly_usd": total / 0.9})})
    report = estimate(tight)
    assert report.total_usd < report.budget_usd
    assert not report.passed  # 10 % headroom < 25 % required
