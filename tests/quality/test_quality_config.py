"""The quality checks come from the config alone: defaults for every table, per-table overrides, clear errors,
one CHECK task per table in the graph with the marts waiting for their upstreams' checks, and Data Metric
Functions rendered for Snowflake only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from finsight import marts, migrate, quality
from finsight.config import ConfigError, Environment, load_environment, repo_root
from tasks.dag import build_dag


def _env_with(tmp: Path, quality_section: dict) -> Environment:
    shutil.copytree(repo_root() / "environments", tmp / "environments")
    local = tmp / "environments" / "local.yaml"
    overlay = yaml.safe_load(local.read_text())
    overlay["quality"] = quality_section
    local.write_text(yaml.safe_dump(overlay, sort_keys=False))
    return load_environment("local", tmp / "environments")


@pytest.mark.parametrize("name", ["local", "prod"])
def test_every_catalog_table_gets_every_check_and_a_check_task(name: str) -> None:
    env = load_environment(name)
    specs = quality.specs(env)
    assert set(specs) == {t.qualified for t in env.warehouse_tables()}
    nodes = {n.name: n for n in build_dag(env)}
    for table in env.warehouse_tables():
        spec = specs[table.qualified]
        assert all(spec["checks"][c]["enabled"] for c in ("freshness", "row_count", "null_spike", "unique"))
        check = nodes[f"CHECK_{table.raw_name}"]
        # after its own merge, waiting for the merges of the parents its referential check reads (siblings run at
        # once on Snowflake)
        own = f"MERGE_{table.raw_name}"
        parents = {f"MERGE_{env.table(r['parent_table']).raw_name}" for r in spec["references"]} - {own}
        assert check.after == (own,) and set(check.waits_for) == parents
    # references come from the catalog: payments -> merchants, ledger entries -> accounts
    refs = {(r["column"], r["parent_table"]) for r in specs["ledger.ledger_entries"]["references"]}
    assert ("ACCOUNT_ID", "ledger.accounts") in refs
    assert specs["payments.payments"]["status_columns"] == ["STATUS"]


def test_marts_wait_for_the_checks_of_every_upstream() -> None:
    env = load_environment("local")
    nodes = {n.name: n for n in build_dag(env)}
    for mart in marts.marts():
        after = nodes[f"MART_{mart.table_name}"].after
        for up in mart.upstreams:
            if up.table in {t.qualified for t in env.warehouse_tables()}:
                assert f"CHECK_{up.raw_name}" in after, (mart.name, up.table)


def test_a_per_table_override_changes_that_table_only(tmp_path: Path) -> None:
    env = _env_with(
        tmp_path, {"tables": {"refunds.refunds": {"referential": {"grace_minutes": 5, "severity": "warn"}}}}
    )
    refunds, payments = env.quality.for_table("refunds.refunds"), env.quality.for_table("payments.payments")
    assert (refunds.referential.grace_minutes, refunds.referential.severity) == (5, "warn")
    assert (payments.referential.grace_minutes, payments.referential.severity) == (60, "error")
    assert refunds.freshness.read_sla_minutes == 90  # untouched keys keep the defaults


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"tables": {"payments.paymnts": {"unique": {"severity": "error"}}}}, "quality.tables.payments.paymnts"),
        ({"tables": {"payments.payments": {"null_spike": {"column_severity": {"amout": "error"}}}}}, "amout"),
        ({"defaults": {"row_count": {"severity": "page"}}}, "quality.defaults"),
        ({"defaults": {"freshnes": {}}}, "freshnes"),
    ],
)
def test_bad_quality_config_is_a_clear_error(tmp_path: Path, section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _env_with(tmp_path, section)


def test_data_metric_functions_are_rendered_for_snowflake_only() -> None:
    prod = migrate.render_all(load_environment("prod"))["R__quality_metrics.sql"]
    assert "SET DATA_METRIC_SCHEDULE = 'TRIGGER_ON_CHANGES'" in prod
    for dmf in ("ROW_COUNT ON ()", "DUPLICATE_COUNT ON (PAYMENT_ID)", "NULL_COUNT ON (AMOUNT)"):
        assert f"PAYMENTS__PAYMENTS ADD DATA METRIC FUNCTION SNOWFLAKE.CORE.{dmf}" in prod, dmf
    # _EXTRACTED_AT is TIMESTAMP_NTZ, which SNOWFLAKE.CORE.FRESHNESS refuses: the platform's NTZ freshness DMF
    assert "PAYMENTS__PAYMENTS ADD DATA METRIC FUNCTION FINSIGHT_PROD.OPS.FRESHNESS_NTZ_V1 ON (_EXTRACTED_AT)" in prod
    local = migrate.render_all(load_environment("local"))["R__quality_metrics.sql"]
    statements = "\n".join(line for line in local.splitlines() if not line.lstrip().startswith("--"))
    assert "DATA METRIC" not in statements and "DATA_METRIC" not in statements


def test_referential_parents_are_read_through_history_where_the_archive_moves_them() -> None:
    """With the Iceberg archive, a parent older than hot_months is only in HISTORY: reading CURATED alone would turn
    every child of an archived parent into an orphan after hot_months."""
    env = load_environment("local")
    assert env.curated_archive is not None
    payments = env.table("payments.payments")
    refs = quality.references(env, payments)
    assert refs and {r["parent_relation"] for r in refs} == {f"HISTORY.{r['parent']}" for r in refs}
    plain = env.model_copy(update={"curated_archive": None})
    without_archive = quality.references(plain, payments)
    assert {r["parent_relation"] for r in without_archive} == {f"CURATED.{r['parent']}" for r in refs}
