"""MERGE credits come from `make bench`'s measured MERGE; without one, cost fails loudly. Every line says where its
figures come from; storage has one pricing basis; archive reads are priced; the budgets split AWS from Snowflake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finsight.config import load_environment, repo_root
from finsight.config.models import Environment
from finsight.cost import curve, estimate, monthly_snowflake_credits
from finsight.cost.merge_basis import BYTES_PER_GB, MergeMeasurementError, merge_basis
from finsight.cost.model import account_credit_quota
from finsight.cost.tables import default_prices, default_volumes
from tests.cost.conftest import PINNED_BENCH

ROOT = repo_root()
FINSIGHT = Path(sys.executable).with_name("finsight")
PINNED = json.loads(PINNED_BENCH.read_text())


@pytest.fixture(scope="module")
def prod() -> Environment:
    return load_environment("prod")


def _results(tmp_path: Path, merge: dict | None, **top: object) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"ran_at": "2026-12-01T00:00:00+00:00", **top, **({"merge": merge} if merge else {})}))
    return path


# -- no measurement, no MERGE cost ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("merge", "missing"),
    [
        (None, "merge.ours_s, merge.batch_rows, merge.base_rows"),
        ({"base_rows": 5000000, "batch_rows": 1000000}, "merge.ours_s"),
        ({"ours_s": 10.16, "base_rows": 5000000}, "merge.batch_rows"),
    ],
)
def test_cost_fails_loudly_without_the_measured_merge(
    tmp_path: Path, prod: Environment, monkeypatch: pytest.MonkeyPatch, merge: dict | None, missing: str
) -> None:
    path = _results(tmp_path, merge, extract={"ours_rows_per_s": 500000})
    monkeypatch.setenv("FINSIGHT_BENCH_RESULTS", str(path))
    with pytest.raises(MergeMeasurementError) as err:
        estimate(prod, month=84)
    assert str(err.value) == (
        f"{path}: no measured MERGE ({missing} missing): the load warehouse's credits are derived from it; run "
        "`make bench` (tests/bench/merge_bench.py) to measure it"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"merge": {"ours_s": "fast", "base_rows": 1, "batch_rows": 1}}', "'merge.ours_s' must be a positive number"),
        ('{"merge": {"ours_s": 0, "base_rows": 1, "batch_rows": 1}}', "'merge.ours_s' must be a positive number"),
        ("{not json", "not valid JSON"),
    ],
)
def test_a_malformed_measurement_is_named(
    tmp_path: Path, prod: Environment, monkeypatch: pytest.MonkeyPatch, content: str, message: str
) -> None:
    path = tmp_path / "results.json"
    path.write_text(content)
    monkeypatch.setenv("FINSIGHT_BENCH_RESULTS", str(path))
    with pytest.raises(MergeMeasurementError, match=message):
        monthly_snowflake_credits(prod)


def test_no_results_file_selected_is_an_error_not_a_guess(prod: Environment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSIGHT_BENCH_RESULTS", "")
    with pytest.raises(MergeMeasurementError, match="FINSIGHT_BENCH_RESULTS is empty"):
        estimate(prod)


def test_cli_says_what_is_missing_without_a_traceback(tmp_path: Path) -> None:
    path = _results(tmp_path, None)
    out = subprocess.run([str(FINSIGHT), "cost", "--env", "prod"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "FINSIGHT_BENCH_RESULTS": str(path)})  # fmt: skip
    assert out.returncode != 0
    assert "no measured MERGE (merge.ours_s, merge.batch_rows, merge.base_rows missing)" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


# -- from the measurement to credits -----------------------------------------------------------------------------------


def test_derived_from_rows_when_the_bench_reports_no_bytes(prod: Environment) -> None:
    m = merge_basis(prod, default_prices(), default_volumes(), PINNED_BENCH)
    assert m.scanned_from.startswith("(base_rows + batch_rows) x merge.bench_row_bytes 206")
    assert m.scanned_gb == pytest.approx(6e6 * 206 / 2**30)  # 1.1511 GB
    assert m.machine_s_per_gb == pytest.approx(10.16 / (6e6 * 206 / 2**30))  # 8.826 s/GB on the bench machine
    assert m.prod_scanned_gb_per_hour == pytest.approx(300.0)  # 6 x prod's 50 GB/h of rows: target + batch scanned
    assert m.busy_minutes_per_hourly_run == pytest.approx(11.0328, rel=1e-4)  # 0.7355 XSMALL-h/h / 4 (MEDIUM)
    assert m.ran_at == PINNED["ran_at"]


def test_bytes_scanned_per_batch_is_preferred_when_the_bench_reports_it(
    tmp_path: Path, prod: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pruned MERGE that reads 2 GB per 1 M-row batch in 10.16 s: 5.08 s/GB; production scans 2 GB per 1 M rows
    at prod's row width (161 B vs the bench's 206) -> 333.3 M rows/h x 2e-3 x 0.7819 = 521.2 GB/h."""
    merge = {**PINNED["merge"], "bytes_scanned_per_batch": 2 * BYTES_PER_GB}
    path = _results(tmp_path, merge)
    m = merge_basis(prod, default_prices(), default_volumes(), path)
    assert m.scanned_from == "merge.bytes_scanned_per_batch"
    assert m.machine_s_per_gb == pytest.approx(5.08)
    width = 1200 * 2**30 / 8e9 / 206
    assert m.prod_scanned_gb_per_hour == pytest.approx(8e9 / 24 / 1e6 * 2 * width)
    monkeypatch.setenv("FINSIGHT_BENCH_RESULTS", str(path))
    (load,) = [i for i in estimate(prod, month=84).items if i.item.startswith("warehouse load")]
    assert "merge.bytes_scanned_per_batch" in load.source and "ran_at 2026-12-01T00:00:00+00:00" in load.source


def test_the_merge_into_the_largest_measured_table_is_priced(
    tmp_path: Path, prod: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production's CURATED holds years: a batch's late updates touch as many micro-partitions as they are, each
    rewritten. The bench's largest table is the nearest to that, so its MERGE is priced, not the 1x headline (twice
    the seconds here: twice the busy minutes). Red when the basis reads merge.ours_s while runs are reported."""
    runs = {
        "1x": {"base_rows": 1000000, "batch_rows": 1000000, "ours_s": 10.16, "bytes_scanned": BYTES_PER_GB},
        "10x": {"base_rows": 10000000, "batch_rows": 1000000, "ours_s": 20.32, "bytes_scanned": BYTES_PER_GB},
    }
    merge = {**PINNED["merge"], "base_rows": 1000000, "runs": runs}
    one = merge_basis(prod, default_prices(), default_volumes(), _results(tmp_path, merge))
    assert (one.merge_s, one.base_rows, one.measured) == (20.32, 10000000, "merge.runs.10x")
    assert one.scanned_from == "merge.runs.10x.bytes_scanned"
    only_1x = merge_basis(prod, default_prices(), default_volumes(),
                          _results(tmp_path, {**merge, "runs": {"1x": runs["1x"]}}))  # fmt: skip
    assert one.busy_minutes_per_hourly_run == pytest.approx(2 * only_1x.busy_minutes_per_hourly_run)
    monkeypatch.setenv("FINSIGHT_BENCH_RESULTS", str(_results(tmp_path, merge)))
    (load,) = [i for i in estimate(prod, month=84).items if i.item.startswith("warehouse load")]
    assert "merge.runs.10x.ours_s=20.32s" in load.source and "merge.runs.10x.base_rows=10,000,000" in load.source


def test_the_runs_that_rewrite_whole_partitions_are_priced_when_the_bench_has_them(
    tmp_path: Path, prod: Environment
) -> None:
    """DuckDB rewrites only the columns an update changed, Snowflake every touched micro-partition whole: the bench's
    runs whose updates change every column are the ones the local double rewrites whole partitions in, so the largest
    of those is priced (1.5x the seconds here: 1.5x the busy minutes). Red when `merge.runs` is read first."""
    run = {"base_rows": 10000000, "batch_rows": 1000000, "ours_s": 4.0, "bytes_scanned": BYTES_PER_GB}
    merge = {**PINNED["merge"], "runs": {"10x": run}}
    whole = {**merge, "whole_partition_runs": {"1x": {**run, "base_rows": 1000000}, "10x": {**run, "ours_s": 6.0}}}
    priced = merge_basis(prod, default_prices(), default_volumes(), _results(tmp_path, whole))
    assert (priced.merge_s, priced.measured) == (6.0, "merge.whole_partition_runs.10x")
    assert priced.scanned_from == "merge.whole_partition_runs.10x.bytes_scanned"
    partial = merge_basis(prod, default_prices(), default_volumes(), _results(tmp_path, merge))
    assert partial.measured == "merge.runs.10x"
    assert priced.busy_minutes_per_hourly_run == pytest.approx(1.5 * partial.busy_minutes_per_hourly_run)


def test_a_merge_run_without_its_seconds_fails_loudly(tmp_path: Path, prod: Environment) -> None:
    merge = {**PINNED["merge"], "runs": {"10x": {"base_rows": 10000000, "batch_rows": 1000000}}}
    path = _results(tmp_path, merge)
    with pytest.raises(MergeMeasurementError) as err:
        merge_basis(prod, default_prices(), default_volumes(), path)
    assert str(err.value) == f"{path}: the MERGE run merge.runs.10x lacks merge.runs.10x.ours_s"


def test_slower_measured_merge_costs_proportionally_more(
    tmp_path: Path, prod: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Double the measured seconds: busy minutes double; credits follow (billed tail unchanged)."""
    base = monthly_snowflake_credits(prod)["load"]
    monkeypatch.setenv("FINSIGHT_BENCH_RESULTS", str(_results(tmp_path, {**PINNED["merge"], "ours_s": 20.32})))
    busy = 2 * 11.0328
    assert monthly_snowflake_credits(prod)["load"] == pytest.approx(4 * (720 * (busy + 1) + 30 * (2.4 * busy + 1)) / 60,
                                                                    rel=1e-4)  # fmt: skip
    assert monthly_snowflake_credits(prod)["load"] > 1.9 * base - 4 * (720 + 30) / 60


def test_bench_row_bytes_is_the_bench_tables_row_width() -> None:
    """volumes.yaml merge.bench_row_bytes stays what tests/bench/merge_bench.py generates (Arrow bytes per row)."""
    np = pytest.importorskip("numpy")
    from tests.bench.merge_bench import BENCH_BATCH, _rows

    rows = _rows(np.arange(20_000), BENCH_BATCH, np.datetime64("2026-11-27T10:00:00"), seed=2)
    assert rows.nbytes / rows.num_rows == pytest.approx(default_volumes().merge.bench_row_bytes, rel=0.05)


# -- where every figure comes from -------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_name", ["dev", "staging", "prod"])
def test_every_line_names_the_source_of_its_quantity_and_price(env_name: str) -> None:
    for item in estimate(load_environment(env_name), month=84).items:
        assert item.basis, item.item
        assert all(f"prices.yaml {k}" in item.source for k in item.price_keys), item.item


def test_the_load_line_cites_the_bench_keys_and_when_it_ran(prod: Environment) -> None:
    (load,) = [i for i in estimate(prod, month=84).items if i.item.startswith("warehouse load")]
    for key in ("merge.ours_s=10.16s", "merge.batch_rows=1,000,000", "merge.base_rows=5,000,000",
                f"ran_at {PINNED['ran_at']}", "volumes.yaml merge.*", "prices.yaml snowflake.credit_usd"):  # fmt: skip
        assert key in load.source, key


def test_cli_prints_a_source_column(tmp_path: Path) -> None:
    out = subprocess.run([str(FINSIGHT), "cost", "--env", "prod", "--json"], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "FINSIGHT_BENCH_RESULTS": str(PINNED_BENCH)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)["worst_month_items"]["prod"]["items"]
    assert all(i["source"] for i in items)
    table = subprocess.run([str(FINSIGHT), "cost", "--env", "prod"], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "FINSIGHT_BENCH_RESULTS": str(PINNED_BENCH)})  # fmt: skip
    assert "source" in table.stdout and "pinned_bench_merge.json merge.ours_s=10.16s" in table.stdout


# -- one pricing basis, archive reads ---------------------------------------------------------------------------------


def test_snowflake_storage_and_credits_share_one_pricing_basis() -> None:
    """Storage was priced on the capacity rate while credits were on-demand; both are on-demand now, and there is no
    second storage rate to switch to."""
    prices = default_prices()
    snowflake_storage = [k for k in prices.prices if k.startswith("snowflake.storage")]
    assert snowflake_storage == ["snowflake.storage_tb_month"]
    assert "on-demand" in prices["snowflake.credit_usd"].assumed
    assert "on-demand" in prices["snowflake.storage_tb_month"].assumed
    assert "snowflake_storage_plan" not in yaml.safe_load((ROOT / "finsight/cost/volumes.yaml").read_text())["storage"]


def test_archive_retrieval_follows_the_read_pattern(prod: Environment) -> None:
    vol = default_volumes()

    def retrieval(months: float) -> float:
        archive = vol.archive.model_copy(update={"read_back_months": {**vol.archive.read_back_months, "prod": months}})
        v = vol.model_copy(update={"archive": archive})
        return sum(i.monthly_usd for i in estimate(prod, volumes=v, month=84).items if "retrieval" in i.item)

    assert retrieval(0) == 0.0
    assert retrieval(2) == pytest.approx(2.8103 + 314.0535, rel=1e-4)  # test_cost_bill.py derives both lines
    assert retrieval(4) == pytest.approx(2 * retrieval(2))
    assert retrieval(1000) == pytest.approx(421987.5 * (0.01 * 10890 + 0.03 * 405652.5) / 421987.5)  # all of it


# -- budgets: AWS Budgets limit and the Snowflake monitor share the allocation -----------------------------------------


@pytest.mark.parametrize("env_name", ["dev", "staging", "prod"])
def test_aws_budget_covers_the_aws_forecast_and_snowflake_keeps_the_rest(env_name: str) -> None:
    env = load_environment(env_name)
    budget = env.budget
    assert budget.aws_monthly_usd is not None
    reports = curve([env], 84).worst[env_name], *(estimate(env, month=m) for m in range(1, 85, 12))
    for report in reports:
        aws = sum(i.monthly_usd for i in report.items if i.service != "Snowflake")
        snowflake = sum(i.monthly_usd for i in report.items if i.service == "Snowflake")
        assert aws <= budget.aws_monthly_usd, (report.month, aws)
        assert snowflake <= budget.monthly_usd - budget.aws_monthly_usd, (report.month, snowflake)
    assert account_credit_quota(env) == int((budget.monthly_usd - budget.aws_monthly_usd) // 4)
