"""The cost model: dev + staging + prod fit the platform cap at the worst month of seven years, prices cite
sources, and config changes move the bill as they should.

The worst month is recomputed here from the price table by hand (numbers derived in comments), not through the
model's code path: a change to the model's arithmetic that moves the bill must also move these numbers.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finsight.config import load_environment, repo_root
from finsight.config.models import Environment
from finsight.cost import curve, estimate, monthly_snowflake_credits, resource_monitor_quotas
from finsight.cost.model import allocations_fit, archive_move_credits
from finsight.cost.quantities import billed_minutes_per_resume
from finsight.cost.tables import default_prices, default_volumes, load_prices
from tests.cost.conftest import PINNED_BENCH

ROOT = repo_root()
FINSIGHT = Path(sys.executable).with_name("finsight")
CLOUD_ENVS = ("dev", "staging", "prod")


def _with_warehouse(env: Environment, name: str, **changes: object) -> Environment:
    warehouses = dict(env.snowflake.warehouses)
    warehouses[name] = warehouses[name].model_copy(update=changes)  # type: ignore[index]
    return env.model_copy(update={"snowflake": env.snowflake.model_copy(update={"warehouses": warehouses})})


def _item(env: Environment, month: int, startswith: str) -> float:
    items = estimate(env, month=month).items
    exact = [i for i in items if i.item == startswith]
    (item,) = exact or [i for i in items if i.item.startswith(startswith)]
    return item.monthly_usd


@pytest.fixture(scope="module")
def prod() -> Environment:
    return load_environment("prod")


@pytest.fixture(scope="module")
def envs() -> list[Environment]:
    return [load_environment(n) for n in CLOUD_ENVS]


# -- the gate: every month of the horizon, all environments together -------------------------------------------------


def test_all_environments_fit_the_platform_cap_at_every_month(envs: list[Environment]) -> None:
    c = curve(envs, 84)
    assert c.scope == "all" and c.cap_usd == 18000 and c.limit_usd == 13500  # from environments/base.yaml
    assert c.passed, f"over the cap minus headroom in months {c.months_over}"
    assert c.worst_month == 84  # storage only grows until the retention ceiling: the last month is the worst


def test_allocations_leave_the_required_headroom_under_the_platform_cap(envs: list[Environment]) -> None:
    """The budgets themselves, not only the forecast, keep 25 % of the $18K cap free; each env fits its own."""
    cap, headroom = envs[0].budget.platform_monthly_usd, envs[0].budget.required_headroom
    assert (cap, headroom) == (18000, 0.25)
    assert sum(e.budget.monthly_usd for e in envs) <= cap * (1 - headroom)  # 550 + 1,400 + 11,250 = 13,200
    assert allocations_fit(envs) == (13200, 13500)
    for env in envs:
        assert curve([env], 84).passed, f"{env.name} exceeds its allocation"


def test_worst_month_of_84_keeps_a_quarter_of_the_cap_free_on_the_measured_merge(
    envs: list[Environment], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's gate computed from the model: worst month of dev + staging + prod <= $13,500, MERGE from the
    bench measurement (the pinned copy and today's bench/results.json alike)."""
    for results in (PINNED_BENCH, repo_root() / "bench" / "results.json"):
        monkeypatch.setenv("FINSIGHT_BENCH_RESULTS", str(results))
        c = curve(envs, 84)
        assert c.worst_usd <= 18000 * (1 - 0.25), results
        assert 1 - c.worst_usd / c.cap_usd >= 0.25
        assert c.passed and c.limit_usd == 13500


def test_prod_worst_month_recomputed_from_the_price_table(prod: Environment) -> None:
    """prod, month 84, the big lines by hand (prices.yaml: credit $4.00 BC, storage $40/TB on-demand, ...).

    load (MEDIUM, 4 cr/h): measured MERGE B = 11.0328 min/h (test_cost_bill.py derives it from the pinned bench):
        (B + 1 min tail) x 720 runs + (2.4 B + 1) x 30 backfills = 9,487.97 min -> 632.531 credits x $4 = $2,530.12
    transform (SMALL, 2 cr/h): (10 + 1) x 720 = 7,920 min = 132 h -> 264 credits x $4 = $1,056.00
    archive move: SMALL 120 min/month = 4 credits = $16.00
    parquet/day = 1,200 GB x 0.25 x 1.1 (backfill) = 330 GB; loaded L = 330/1024 = 0.322266 TB/day;
        curated growth G = L x 0.5 = 0.161133 TB/day
    Snowflake storage: raw 14 d x L = 4.511719; hot curated 6 months + 0.5 (the monthly move's average lag:
        snowpark/archive.py moves whole months) = 195 d x G = 31.420898; churn 8 x L + 8 x G = 3.867188;
        marts 0.1 x 31.420898 = 3.142090 -> 42.941895 TB x $40 = $1,717.68
    Iceberg archive: (G x 1.1 marts) x 1024 = 181.5 GB/day; history in the archive 2,520 - 195 = 2,325 d:
        Standard 30 d = 5,445 GB x $0.023 = $125.235; IA 60 d = 10,890 GB x $0.0125 = $136.125;
        Glacier IR 2,235 d = 405,652.5 GB x $0.004 = $1,622.61
    archive read back 2 months = 10,890 GB by tier size: IA 281.032 GB x $0.01 = $2.81;
        Glacier IR 10,468.452 GB x $0.03 = $314.05
    raw S3: Standard 30 d x 330 = 9,900 GB x $0.023 = $227.70; IA 150 d = 49,500 GB x $0.0125 = $618.75;
        noncurrent 30 d = 9,900 GB x $0.0125 = $123.75
    transit (Transit Gateway): 1,200 GB x 1.1 x 30 = 39,600 GB x $0.02 = $792.00
    Snowpipe: 330 x 30 = 9,900 GB x 0.0037 = 36.63 credits = $146.52;
        files/day = 8e9 x 1.1 / 2e6 + 2 x 19 streams x 24 = 4,400 + 912 = 5,312 -> 159,360/month
        x 0.06/1000 = 9.5616 credits = $38.2464 ... + the API streams' share counted in `streams`
    """
    expected = {
        "warehouse load": 2530.124,
        "warehouse transform": 1056.00,
        "archive move": 16.00,
        "storage (on-demand, as credits)": 1717.6758,
        "CURATED archive retrieval from Standard-IA": 2.8103,
        "CURATED archive retrieval from Glacier IR": 314.0535,
        "CURATED archive (Iceberg) Standard": 125.235,
        "CURATED archive (Iceberg) Standard-IA": 136.125,
        "CURATED archive (Iceberg) Glacier IR": 1622.61,
        "raw Standard (": 227.70,
        "raw Standard-IA": 618.75,
        "raw noncurrent": 123.75,
        "transit from the sources": 792.00,
        "Snowpipe ingestion": 146.52,
    }
    for prefix, usd in expected.items():
        assert _item(prod, 84, prefix) == pytest.approx(usd, rel=1e-4), prefix


def test_worst_month_total_recomputed_independently(envs: list[Environment]) -> None:
    """Month 84 of dev + staging + prod from the hand figures of the dominant lines plus the model's small lines.

    Hand: prod big lines (previous test) sum to $9,429.40; the remaining prod lines (Fargate $442.96, Snowpipe
    files $39.28, NAT, endpoints, logs, KMS, secrets, ECR, requests) are ~$700. staging (measured MERGE on
    XSMALL + transform 5 min, 3 + 0.5 hot months) ~$1,292, dev ~$493. Total ~$11,916 <= $13,500.
    """
    c = curve(envs, 84)
    prod_hand = 2530.124 + 1056.00 + 16.00 + 1717.6758 + 125.235 + 136.125 + 1622.61 + 227.70 + 618.75 + 123.75
    prod_hand += 792.00 + 146.52 + 2.8103 + 314.0535
    assert prod_hand == pytest.approx(9429.35, abs=0.01)
    assert c.by_env["prod"][-1] - prod_hand == pytest.approx(701.6, abs=5)  # the many small lines
    assert c.worst_usd == pytest.approx(11916, abs=15)
    assert c.worst_usd <= 18000 * (1 - 0.25)


def test_without_the_iceberg_archive_month_84_breaks_the_cap(envs: list[Environment]) -> None:
    """The design change is load-bearing: keeping all 7 years in native storage ($40/TB) crosses the limit.

    prod hot curated 2,520 d x G = 406.05 TB + marts 40.6 TB instead of 31.4 + 3.1: +412.1 TB x $40 = +$16,480,
    minus the archive's ~$2,200: the all-env worst month goes from ~$11.9K to ~$26K.
    """
    hot_forever = [
        e.model_copy(
            update={"curated_archive": e.curated_archive.model_copy(update={"hot_months": 83})}  # type: ignore[union-attr]
        )
        for e in envs
    ]
    c = curve(hot_forever, 84)
    assert not c.passed
    assert c.worst_usd > 18000 * 0.75


def test_the_curve_rises_to_the_retention_ceiling(prod: Environment) -> None:
    c = curve([prod], 84)
    totals = c.totals
    assert totals == sorted(totals)  # nothing gets cheaper while history accumulates
    assert totals[0] < totals[11] < totals[-1]


# -- prices, BC edition, sources ------------------------------------------------------------------------------------


def test_credit_price_is_business_critical() -> None:
    credit = default_prices()["snowflake.credit_usd"]
    assert credit.value == 4.00
    assert "Business Critical" in credit.assumed


def test_every_line_item_price_cites_a_source(prod: Environment) -> None:
    prices = default_prices()
    for item in estimate(prod, month=84).items:
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


# -- quantities follow the config -----------------------------------------------------------------------------------


def test_billing_minimum_and_auto_suspend_tail() -> None:
    assert billed_minutes_per_resume(0, 60, 60) == 0
    assert billed_minutes_per_resume(0.2, 0, 60) == 1  # 12 s of work bills a full minute
    assert billed_minutes_per_resume(10, 300, 60) == 15  # the idle tail before suspend is billed too


@pytest.mark.parametrize(("new_size", "factor"), [("LARGE", 2), ("SMALL", 0.5), ("XLARGE", 4)])
def test_warehouse_size_scales_its_credits_and_the_bill(prod: Environment, new_size: str, factor: float) -> None:
    """transform (configured minutes): credits scale with the size. load (measured MERGE): the same work runs
    `factor` times faster, so only the auto-suspend tail of each resume scales."""
    before = estimate(prod)
    changed = _with_warehouse(prod, "transform", size=new_size)
    t_factor = 2 * factor  # prod transform is SMALL, half of MEDIUM
    transform_before = monthly_snowflake_credits(prod)["transform"]
    assert monthly_snowflake_credits(changed)["transform"] == pytest.approx(transform_before * t_factor)
    credit = default_prices().usd("snowflake.credit_usd")
    move = archive_move_credits(prod, default_prices(), default_volumes())  # the archive move runs there too
    assert estimate(changed).total_usd - before.total_usd == pytest.approx(
        (transform_before + move) * (t_factor - 1) * credit
    )
    resized = _with_warehouse(prod, "load", size=new_size)  # prod load is MEDIUM, 4 credits/h
    busy = 11.0328 / factor  # min/h of MERGE on the new size (test_cost_bill.py derives 11.0328 on MEDIUM)
    expected = 4 * factor * (720 * (busy + 1) + 30 * (2.4 * busy + 1)) / 60
    assert monthly_snowflake_credits(resized)["load"] == pytest.approx(expected, rel=1e-4)
    assert monthly_snowflake_credits(resized)["transform"] == transform_before


def test_changed_config_loaded_from_a_copied_environments_dir(tmp_path: Path, prod: Environment) -> None:
    envs = tmp_path / "environments"
    shutil.copytree(ROOT / "environments", envs)
    data = yaml.safe_load((envs / "prod.yaml").read_text())
    data["snowflake"]["warehouses"]["transform"]["size"] = "MEDIUM"  # SMALL -> MEDIUM doubles its credits
    (envs / "prod.yaml").write_text(yaml.safe_dump(data))
    copied = load_environment("prod", envs)
    assert monthly_snowflake_credits(copied)["transform"] == pytest.approx(
        2 * monthly_snowflake_credits(prod)["transform"]
    )


def test_credits_follow_minutes_and_backfill(prod: Environment) -> None:
    wh = _with_warehouse(prod, "transform", minutes_per_daily_backfill=30).snowflake.warehouses["transform"]
    per_hour = default_prices()["snowflake.warehouse_credits_per_hour"].value[wh.size]  # type: ignore[index]
    tail = wh.auto_suspend_seconds / 60
    expected = per_hour * ((wh.minutes_per_hourly_run + tail) * 720 + (wh.minutes_per_daily_backfill + tail) * 30) / 60
    changed = _with_warehouse(prod, "transform", minutes_per_daily_backfill=30)
    assert monthly_snowflake_credits(changed)["transform"] == pytest.approx(expected)


def test_resource_monitor_quota_agrees_with_credits(prod: Environment) -> None:
    margin = default_volumes().resource_monitor.margin
    credits = monthly_snowflake_credits(prod)
    credits["transform"] += archive_move_credits(prod, default_prices(), default_volumes())
    quotas = resource_monitor_quotas(prod)
    assert set(quotas) == set(credits)
    for name, quota in quotas.items():
        assert isinstance(quota, int)
        assert quota == math.ceil(credits[name] * (1 + margin))


def test_secrets_counted_from_config(prod: Environment) -> None:
    secrets = next(i for i in estimate(prod).items if i.item == "secrets")
    assert secrets.quantity == len(prod.postgres_sources) + len(prod.api_sources) + 2


def test_transit_price_follows_the_configured_path(prod: Environment) -> None:
    peered = prod.model_copy(
        update={"source_network": prod.source_network.model_copy(update={"transit": "vpc_peering_same_az"})}  # type: ignore[union-attr]
    )
    assert _item(prod, 84, "transit from the sources") == pytest.approx(792.0)
    assert _item(peered, 84, "transit from the sources") == 0.0


def test_raw_storage_fills_up_then_holds(prod: Environment) -> None:
    month1 = _item(prod, 1, "raw Standard-IA")
    month6 = _item(prod, 6, "raw Standard-IA")
    month84 = _item(prod, 84, "raw Standard-IA")
    assert month1 == 0.0  # nothing older than 30 days yet
    assert month6 == month84  # 180 days reached: steady
    assert _item(prod, 6, "raw noncurrent") == 0.0 and _item(prod, 7, "raw noncurrent") > 0


def test_bench_rate_replaces_configured_connector_minutes(
    tmp_path: Path, prod: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from finsight.cost import quantities as q

    results = tmp_path / "results.json"
    merge = json.loads(PINNED_BENCH.read_text())["merge"]
    results.write_text(json.dumps({"extract": {"ours_rows_per_s": 300000, "copy_limit_rows_per_s": 573000},
                                   "merge": merge}))  # fmt: skip
    monkeypatch.setenv("FINSIGHT_BENCH_RESULTS", str(results))
    rate = q.measured_extract_rows_per_second()
    assert rate == 300000
    before = next(i for i in estimate(prod).items if i.item.startswith("connector vCPU")).quantity
    monkeypatch.setenv("FINSIGHT_BENCH_RESULTS", str(PINNED_BENCH))  # MERGE only: the configured connector minutes
    configured = next(i for i in estimate(prod).items if i.item.startswith("connector vCPU")).quantity
    assert before < configured  # 2.5 measured minutes per run instead of the configured 9
    # 8e9 rows/day / 24 h / 12 databases = 27.78 M rows per run / 300 K rows/s = 92.6 s + 1 min start-up
    assert q.connector_minutes_per_run(prod, default_volumes(), rate) == pytest.approx(92.593 / 60 + 1, rel=1e-3)
    assert q.measured_extract_rows_per_second(tmp_path / "missing.json") is None


# -- CLI --------------------------------------------------------------------------------------------------------------


def test_cli_json_curve_matches_the_model(envs: list[Environment]) -> None:
    out = subprocess.run([str(FINSIGHT), "cost", "--env", "all", "--horizon", "84", "--json"],
                         capture_output=True, text=True, cwd=ROOT, env=_cli_env())  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "PASS" and data["scope"] == "all"
    assert len(data["curve"]) == 84
    assert data["worst_usd"] == pytest.approx(curve(envs, 84).worst_usd)
    last = data["curve"][-1]
    assert last["total_usd"] == pytest.approx(last["dev"] + last["staging"] + last["prod"])
    assert set(data["worst_month_items"]) == set(CLOUD_ENVS)


def test_cli_table_shows_the_curve_limit_and_status() -> None:
    out = subprocess.run([str(FINSIGHT), "cost", "--env", "staging"], capture_output=True, text=True, cwd=ROOT,
                         env=_cli_env())  # fmt: skip
    assert out.returncode == 0, out.stderr
    for word in ("month", "total", "limit", "worst month", "PASS", "Snowflake", "monthly USD", "source"):
        assert word in out.stdout


def _cli_env(root: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "FINSIGHT_BENCH_RESULTS": str(PINNED_BENCH)}
    if root is not None:
        env["FINSIGHT_ROOT"] = str(root)
    return env


def _copied_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "environments", root / "environments")
    return root


def test_cli_exits_1_when_a_late_month_crosses_the_cap(tmp_path: Path) -> None:
    """A cap that year 1 fits but month 84 does not: the old first-year-only gate would have said PASS."""
    root = _copied_repo(tmp_path)
    base = root / "environments" / "base.yaml"
    data = yaml.safe_load(base.read_text())
    data["budget"]["platform_monthly_usd"] = 15000  # limit 11,250: year 1 fits (~$10.0K), month 84 (~$11.9K) not
    base.write_text(yaml.safe_dump(data))
    prod_file = root / "environments" / "prod.yaml"
    prod_data = yaml.safe_load(prod_file.read_text())
    prod_data["budget"]["monthly_usd"] = 9300  # allocations 550 + 1,400 + 9,300 = 11,250: the allocations fit
    prod_data["budget"]["aws_monthly_usd"] = 4000
    prod_file.write_text(yaml.safe_dump(prod_data))
    env = _cli_env(root)
    out = subprocess.run([str(FINSIGHT), "cost", "--env", "all"], capture_output=True, text=True, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "OVER" in out.stdout
    one_year = subprocess.run([str(FINSIGHT), "cost", "--env", "all", "--horizon", "12"],
                              capture_output=True, text=True, env=env)  # fmt: skip
    assert one_year.returncode == 0, one_year.stdout


def test_cli_exits_1_when_allocations_exceed_the_cap(tmp_path: Path) -> None:
    root = _copied_repo(tmp_path)
    dev = root / "environments" / "dev.yaml"
    data = yaml.safe_load(dev.read_text())
    data["budget"]["monthly_usd"] = 850  # 850 + 1,400 + 11,250 = 13,500: exactly the cap minus the headroom
    dev.write_text(yaml.safe_dump(data))
    out = subprocess.run([str(FINSIGHT), "cost", "--env", "all"], capture_output=True, text=True, env=_cli_env(root))
    assert out.returncode == 0, out.stdout + out.stderr
    data["budget"]["monthly_usd"] = 851  # one dollar more eats into the 25 % headroom, though every month fits
    dev.write_text(yaml.safe_dump(data))
    out = subprocess.run([str(FINSIGHT), "cost", "--env", "all"], capture_output=True, text=True, env=_cli_env(root))
    assert out.returncode == 1
    assert "allocations add to $13,501 > $13,500" in out.stderr


def test_an_environment_over_its_allocation_fails(prod: Environment) -> None:
    worst = curve([prod], 84).worst_usd
    tight = prod.model_copy(update={"budget": prod.budget.model_copy(update={"monthly_usd": worst * 0.99})})
    c = curve([tight], 84)
    assert c.required_headroom == 0  # the headroom is held once, by the allocations under the platform cap
    assert not c.passed and c.months_over[-1] == 84


@pytest.mark.parametrize("env_name", ["local", "dev", "staging", "prod"])
def test_the_archive_move_is_priced_exactly_where_the_retention_graph_runs_it(env_name: str) -> None:
    """The cost model prices the Iceberg archive only because a task moves the rows: the two stay together."""
    from finsight.cost.model import ARCHIVE_JOB
    from snowpark.procedures import ARCHIVE_CURATED
    from tasks.dag import build_retention_dag

    env = load_environment(env_name)
    tasks = [n for n in build_retention_dag(env) if n.procedure is ARCHIVE_CURATED]
    assert ARCHIVE_CURATED.name == ARCHIVE_JOB
    assert (
        (archive_move_credits(env, default_prices(), default_volumes()) > 0)
        == bool(tasks)
        == (env.curated_archive is not None)
    )
    if tasks:
        move = [i for i in estimate(env, month=84).items if i.item.startswith("archive move")]
        assert len(move) == 1 and ARCHIVE_JOB in move[0].note
