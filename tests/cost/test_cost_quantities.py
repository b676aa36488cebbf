"""Workload quantities at their edges, numbers by hand from environments/prod.yaml and finsight/cost/volumes.yaml.

prod: Parquet/day P = 1,200 GB x 0.25 x 1.1 = 330 GB; loaded L = 330 / 1,024 TB/day; curated growth G = L / 2;
retention 7 years = 7 x 12 x 30 = 2,520 days; hot = (6 + 0.5) x 30 = 195 days; archive GB/day = G x 1.1 x 1,024 =
181.5; raw: Standard 30 d, Standard-IA to day 180, noncurrent 30 d more.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finsight.config import load_environment
from finsight.config.loader import ConfigError
from finsight.config.models import Environment
from finsight.cost import quantities as q
from finsight.cost.tables import Volumes, default_volumes


@pytest.fixture(scope="module")
def prod() -> Environment:
    return load_environment("prod")


@pytest.fixture(scope="module")
def vol() -> Volumes:
    return default_volumes()


@pytest.fixture(autouse=True)
def _no_bench_results(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(q.BENCH_RESULTS_VARIABLE, "")


def _volumes(vol: Volumes, section: str, **changes: object) -> Volumes:
    return vol.model_copy(update={section: getattr(vol, section).model_copy(update=changes)})


def test_prod_workload_counts(prod: Environment, vol: Volumes) -> None:
    w = q.workload(prod, vol)
    assert (w.sources, w.streams) == (16, 22)  # 12 databases + 4 APIs; 14 tables + 8 API streams
    assert w.files_per_day == pytest.approx(4400 + 2 * 22 * 24)  # 8e9 x 1.1 / 2e6 full files + a part + a manifest


def test_retention_hot_days_without_an_archive(prod: Environment, vol: Volumes) -> None:
    assert q.retention_days(prod, vol) == 2520
    assert q.hot_days(prod, vol) == 195
    no_archive = prod.model_copy(update={"curated_archive": None})
    assert q.hot_days(no_archive, vol) == 2520  # everything stays in native storage
    assert q.archive_storage(no_archive, vol, 84) == q.ArchiveStorage(0.0, 0.0, 0.0)


def test_archive_tiers_as_history_ages(prod: Environment, vol: Volumes) -> None:
    assert q.archive_storage(prod, vol, 6) == q.ArchiveStorage(0.0, 0.0, 0.0)  # 180 days < 195 hot: nothing moved
    seven = q.archive_storage(prod, vol, 7)  # 210 - 195 = 15 days archived, all younger than 30: Standard
    assert (seven.standard_gb, seven.ia_gb, seven.glacier_ir_gb) == pytest.approx((15 * 181.5, 0.0, 0.0))
    ten = q.archive_storage(prod, vol, 10)  # 300 - 195 = 105 days: 30 Standard, 60 IA, 15 Glacier IR
    assert (ten.standard_gb, ten.ia_gb, ten.glacier_ir_gb) == pytest.approx((30 * 181.5, 60 * 181.5, 15 * 181.5))


def test_iceberg_and_snowflake_size_ratios_scale_storage(prod: Environment, vol: Volumes) -> None:
    doubled = _volumes(vol, "storage", snowflake_vs_parquet=2.0)
    assert q.loaded_tb_per_day(prod, doubled) == pytest.approx(2 * 330 / 1024)
    halved = _volumes(vol, "storage", iceberg_vs_snowflake=0.5)
    assert q.archive_storage(prod, halved, 7).standard_gb == pytest.approx(15 * 181.5 / 2)


def test_the_month_curated_reaches_its_hot_window_has_no_archive_churn(prod: Environment, vol: Volumes) -> None:
    """6.5 months = 195 days = exactly the hot window: nothing has been moved out yet, so only MERGE's churn."""
    at_edge = q.snowflake_storage(prod, vol, 6.5)
    assert at_edge.churn_tb == pytest.approx(8 * 330 / 1024)  # 8 days x L; the archive's share starts after
    later = q.snowflake_storage(prod, vol, 7)
    assert later.churn_tb == pytest.approx(8 * 330 / 1024 * 1.5)  # + 8 days x G of archived-away partitions


def test_raw_s3_steady_state_and_a_short_retention(prod: Environment, vol: Volumes) -> None:
    steady = q.s3_raw_gb(prod, vol)  # months=None: every tier full
    assert (steady.standard_gb, steady.ia_gb, steady.noncurrent_gb) == (9900.0, 49500.0, 9900.0)
    short = prod.model_copy(update={"retention": prod.retention.model_copy(update={"raw_days": 20})})
    s = q.s3_raw_gb(short, vol, 12)  # files expire at day 20, before the 30-day move to IA
    assert (s.standard_gb, s.ia_gb, s.noncurrent_gb) == pytest.approx((20 * 330, 0.0, 30 * 330))


def test_a_missing_per_environment_value_names_the_field(prod: Environment, vol: Volumes) -> None:
    for field in ("raw_gb_per_day", "rows_per_day", "api_gb_per_day"):
        values = {k: v for k, v in getattr(vol.workload, field).items() if k != "prod"}
        broken = _volumes(vol, "workload", **{field: values})
        with pytest.raises(ConfigError, match=rf"'workload\.{field}' has no value for environment 'prod'"):
            q.workload(prod, broken)
    rows = {k: v for k, v in vol.workload.rows_per_day.items() if k != "prod"}
    with pytest.raises(ConfigError, match=r"'workload\.rows_per_day' has no value for environment 'prod'"):
        q.connector_minutes_per_run(prod, _volumes(vol, "workload", rows_per_day=rows), 300000.0)


def test_a_measured_rate_splits_the_rows_over_the_databases(prod: Environment, vol: Volumes) -> None:
    one_db = prod.model_copy(update={"postgres_sources": dict(list(prod.postgres_sources.items())[:1])})
    # 8e9 rows / 24 h / 1 database = 333.3 M rows per run / 1 M rows/s = 333.3 s + 1 min start-up
    assert q.connector_minutes_per_run(one_db, vol, 1e6) == pytest.approx(8e9 / 24 / 1e6 / 60 + 1)
    no_db = prod.model_copy(update={"postgres_sources": {}})
    assert q.connector_minutes_per_run(no_db, vol, 1e6) == pytest.approx(8e9 / 24 / 1e6 / 60 + 1)  # no divide by 0


@pytest.mark.parametrize(
    ("results", "rate"),
    [
        ({"extract": {"ours_rows_per_s": 0.5}}, 0.5),  # any positive rate counts
        ({"extract": {"ours_rows_per_s": 0}}, None),  # a zero is no measurement
        ({"extract": {"ours_rows_per_s": "fast"}}, None),  # nor is text
        ({"extract": 5}, None),  # a number where the section should be
    ],
)
def test_bench_results_are_read_only_when_they_hold_a_positive_rate(
    tmp_path: Path, results: dict, rate: float | None
) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    assert q.measured_extract_rows_per_second(path) == rate


def test_a_blank_results_variable_means_config_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(q.BENCH_RESULTS_VARIABLE, "   ")
    assert q.bench_results_path() is None
    monkeypatch.setenv(q.BENCH_RESULTS_VARIABLE, str(tmp_path / "r.json"))
    assert q.bench_results_path() == tmp_path / "r.json"
    monkeypatch.delenv(q.BENCH_RESULTS_VARIABLE)
    assert q.bench_results_path() == q.BENCH_RESULTS
