"""Data Metric Functions chosen by column type (migrations/R__quality_metrics.sql, finsight/snowflake_dmf.py).

fakesnow runs no DMF, so these rules are checked on the rendered SQL against the Snowflake docs' "Allowed data types"
of each system DMF (https://docs.snowflake.com/en/user-guide/data-quality-system-dmfs, and per function, e.g.
https://docs.snowflake.com/en/sql-reference/functions/dmf_freshness: DATE, TIMESTAMP_LTZ, TIMESTAMP_TZ;
https://docs.snowflake.com/en/sql-reference/functions/dmf_null_count: DATE, FLOAT, NUMBER, TIMESTAMP_*, VARCHAR).
Column types come from the migration's own CREATE TABLE variables (finsight.migration_vars), not from the DMF code.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from finsight import migration_vars, snowflake_dmf
from finsight.config import load_environment
from finsight.migrate import render_all

CLOUD = ("dev", "staging", "prod")
_ATTACH = re.compile(r"ALTER TABLE (\S+)\.(\w+) ADD DATA METRIC FUNCTION (\S+) ON \(([^)]*)\);")
_CREATE_DMF = re.compile(r"CREATE DATA METRIC FUNCTION IF NOT EXISTS (\S+)\(ARG_T TABLE\(ARG_C (\w+)\)\)")


def _rendered(env_name: str) -> tuple[dict, str]:
    env = load_environment(env_name)
    return migration_vars.migration_vars(env), render_all(env)["R__quality_metrics.sql"]


def _column_types(variables: dict) -> dict[str, dict[str, str]]:
    """CURATED table -> column -> Snowflake type, as R__curated_tables.sql creates them."""
    meta = {c["name"]: c["type"] for c in variables["meta_columns"]}
    return {t["curated"]: {**{c["name"]: c["type"] for c in t["columns"]}, **meta} for t in variables["tables"]}


@pytest.mark.parametrize("env_name", CLOUD)
def test_every_attached_dmf_accepts_its_column_type(env_name: str) -> None:
    variables, sql = _rendered(env_name)
    types = _column_types(variables)
    custom = {name: arg for name, arg in _CREATE_DMF.findall(sql)}
    attached = _ATTACH.findall(sql)
    assert attached
    for _, table, dmf, columns in attached:
        for column in filter(None, (c.strip() for c in columns.split(","))):
            column_type = types[table][column]
            if dmf.startswith(snowflake_dmf.SYSTEM_DMF_SCHEMA + "."):
                assert snowflake_dmf.accepts(dmf, column_type), f"{table}: {dmf} refuses {column}, a {column_type}"
            else:
                assert dmf in custom, f"{dmf} is attached but never created"
                assert snowflake_dmf.base_type(column_type) == custom[dmf], f"{table}.{column}: {dmf}"


@pytest.mark.parametrize("env_name", CLOUD)
def test_every_table_keeps_its_freshness_row_count_and_nulls(env_name: str) -> None:
    """Choosing by type drops no measure that Snowflake can take: freshness and row count on every table, NULL_COUNT on
    every nullable column of an accepted type (BOOLEANs stay with the CHECK_<TABLE> task's null-spike check)."""
    variables, sql = _rendered(env_name)
    by_table: dict[str, list[tuple[str, str]]] = {}
    for _, table, dmf, columns in _ATTACH.findall(sql):
        by_table.setdefault(table, []).append((dmf.rsplit(".", 1)[-1], columns))
    assert set(by_table) == {t["curated"] for t in variables["tables"]}
    for table, metrics in by_table.items():
        assert ("ROW_COUNT", "") in metrics, table
        assert (snowflake_dmf.FRESHNESS_NTZ.name, "_EXTRACTED_AT") in metrics, table
    stripe_nulls = {c for d, c in by_table["STRIPE__CHARGES"] if d == "NULL_COUNT"}
    assert "AMOUNT" in stripe_nulls and not {"PAID", "REFUNDED", "DISPUTED"} & stripe_nulls  # BOOLEAN columns


@pytest.mark.parametrize("env_name", CLOUD)
def test_custom_dmf_is_created_before_it_is_attached(env_name: str) -> None:
    variables, sql = _rendered(env_name)
    ops = f"{variables['database']}.{variables['schemas']['ops']}"
    name = f"{ops}.{snowflake_dmf.FRESHNESS_NTZ.name}"
    assert sql.index(f"CREATE DATA METRIC FUNCTION IF NOT EXISTS {name}(") < sql.index(f"FUNCTION {name} ON (")
    assert "RETURNS NUMBER" in sql  # the only return type a DMF may have (docs: CREATE DATA METRIC FUNCTION)


def test_custom_dmf_body_changes_come_with_a_new_name() -> None:
    """CREATE DATA METRIC FUNCTION IF NOT EXISTS never replaces a body, and CREATE OR ALTER changes only the COMMENT
    (docs: https://docs.snowflake.com/en/sql-reference/sql/create-data-metric-function). A new body must come with a
    new versioned name, or it would never deploy: bump the version and this digest together."""
    digest = hashlib.sha256(snowflake_dmf.FRESHNESS_NTZ.body.encode()).hexdigest()[:16]
    assert (snowflake_dmf.FRESHNESS_NTZ.name, digest) == ("FRESHNESS_NTZ_V1", "dcc005c64d551a50")


def test_freshness_ntz_measures_utc_against_the_scheduled_time() -> None:
    body = snowflake_dmf.FRESHNESS_NTZ.body
    assert "SNOWFLAKE.CORE.DATA_METRIC_SCHEDULED_TIME()" in body  # the scheduled time, as the system FRESHNESS uses
    assert "CONVERT_TIMEZONE('UTC'" in body and "TIMEDIFF(SECOND, MAX(ARG_C)" in body


@pytest.mark.parametrize(
    ("dmf", "column_type", "ok"),
    [
        ("FRESHNESS", "TIMESTAMP_NTZ", False),
        ("FRESHNESS", "TIMESTAMP_TZ", True),
        ("SNOWFLAKE.CORE.FRESHNESS", "DATE", True),
        ("NULL_COUNT", "BOOLEAN", False),
        ("NULL_COUNT", "VARIANT", False),
        ("NULL_COUNT", "NUMBER(38, 0)", True),
        ("NULL_COUNT", "TIMESTAMP_NTZ(6)", True),
        ("DUPLICATE_COUNT", "STRING", True),
        ("NULL_KEYWORD_COUNT", "NUMBER(10, 0)", False),
    ],
)
def test_system_dmf_argument_types(dmf: str, column_type: str, ok: bool) -> None:
    assert snowflake_dmf.accepts(dmf, column_type) is ok


def test_freshness_choice_by_type() -> None:
    assert snowflake_dmf.freshness_dmf("TIMESTAMP_TZ", "DB.OPS") == "SNOWFLAKE.CORE.FRESHNESS"
    assert snowflake_dmf.freshness_dmf("TIMESTAMP_NTZ", "DB.OPS") == "DB.OPS.FRESHNESS_NTZ_V1"
    assert snowflake_dmf.freshness_dmf("VARCHAR", "DB.OPS") is None
