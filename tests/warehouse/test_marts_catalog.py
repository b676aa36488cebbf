"""The marts catalog (snowpark/marts/<mart>/): metadata is validated, queries read only declared upstreams, and the
DDL, the DAG, the MERGE change feed and docs/marts.md are all generated from it (pure: no stack)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from finsight import marts, migrate
from finsight.config import ConfigError, Environment, load_environment, repo_root

FINSIGHT = str(Path(sys.executable).with_name("finsight"))


@pytest.fixture(scope="module")
def env() -> Environment:
    return load_environment("prod")


def test_docs_are_generated_from_the_metadata(env: Environment) -> None:
    assert (repo_root() / "docs" / "marts.md").read_text() == marts.render_docs(env), (
        "run `finsight marts docs --write`"
    )


def test_every_mart_has_the_metadata_a_platform_needs(env: Environment) -> None:
    names = {m.name for m in marts.marts()}
    assert {"daily_revenue", "settlement_reconciliation", "refund_dispute_rates", "ledger_balance"} <= names
    marts.check_upstreams(env)
    for m in marts.marts():
        assert m.owner.startswith("@finsight/") and m.freshness_sla_minutes <= env.schedule.sla_minutes * 2
        assert {c.kind for c in m.checks} >= {"unique_keys", "not_null_keys", "freshness"}, m.name


def test_ddl_and_merge_change_feed_come_from_the_metadata(env: Environment) -> None:
    sql = "\n".join(migrate.render_all(env).values())
    for m in marts.marts():
        assert f"CREATE TABLE IF NOT EXISTS {env.snowflake.database}.MARTS.{m.table_name} (" in sql
        for c in m.columns:
            assert f"    {c.name.upper()} {c.type}," in sql, (m.name, c.name)
    spec = marts.merge_spec(env, env.table("payments.payments"))
    assert spec["date_columns"] == ["CREATED_AT"]
    assert marts.merge_spec(env, env.table("merchants.merchants"))["date_columns"] == []


def test_optional_upstreams_switch_their_query_on(env: Environment) -> None:
    revenue = next(m for m in marts.marts() if m.name == "daily_revenue")
    variants = marts.variants(revenue, env)
    assert set(variants) == {"", "FXRATES__DAILY_RATES"}
    # read through HISTORY (hot + Iceberg archive) where the environment archives CURATED, else CURATED itself
    schema = "HISTORY" if env.curated_archive else "CURATED"
    assert (
        "FXRATES__DAILY_RATES" not in variants[""]
        and f"{schema}.FXRATES__DAILY_RATES" in variants["FXRATES__DAILY_RATES"]
    )
    bare = marts.variants(revenue, env.model_copy(update={"curated_archive": None}))
    assert "CURATED.FXRATES__DAILY_RATES" in bare["FXRATES__DAILY_RATES"]
    assert "HISTORY." not in bare["FXRATES__DAILY_RATES"]


def _mart_folder(tmp_path: Path, metadata: str, query: str) -> Path:
    folder = tmp_path / "bad_mart"
    folder.mkdir(parents=True)
    (folder / "metadata.yaml").write_text(metadata)
    (folder / "query.sql").write_text(query)
    return tmp_path


METADATA = """friendly_name: Bad
description: test
owner: "@finsight/data-engineering"
grain: one row per day
keys: [day]
partition_column: day
freshness_sla_minutes: 30
upstreams: [{table: payments.payments, date_columns: [created_at]}]
columns: [{name: day, type: DATE}]
"""


def test_a_query_reading_an_undeclared_table_is_refused(tmp_path: Path, env: Environment) -> None:
    (mart,) = marts._load(_mart_folder(tmp_path, METADATA, "SELECT 1 AS day FROM {{ curated('refunds.refunds') }}"))
    with pytest.raises(ConfigError, match=r"refunds\.refunds.*does not list as upstream"):
        marts.render_query(mart, env)


def test_metadata_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bad_mart/metadata.yaml.*\['nope'\]"):
        marts._load(_mart_folder(tmp_path, METADATA.replace("keys: [day]", "keys: [nope]"), "SELECT 1"))
    with pytest.raises(ConfigError, match=r"bad_mart/metadata\.yaml"):
        marts._load(_mart_folder(tmp_path / "x", METADATA.replace("owner:", "ownr:"), "SELECT 1"))


def test_dag_config_must_be_a_json_object() -> None:
    out = subprocess.run(
        [FINSIGHT, "dag", "run", "--env", "local", "--config", "{not json"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "--config is not valid JSON" in out.stderr
    bad = '{"backfill": {"table": "payments.payments"}}'
    out = subprocess.run([FINSIGHT, "dag", "run", "--env", "local", "--config", bad], capture_output=True, text=True)
    assert out.returncode == 2 and "lacks start, end" in out.stderr
