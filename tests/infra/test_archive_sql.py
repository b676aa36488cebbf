"""The CURATED archive as rendered for Snowflake: Iceberg tables on the external volume cdktf synthesizes (one name,
derived once from the config), the task of the retention graph that moves the rows, and the access control of the
archive and of the HISTORY views readers query."""

from __future__ import annotations

import json
import re

import pytest

from finsight import archive_catalog, catalog
from finsight.config import Environment, load_environment
from finsight.migrate import GOVERNANCE_FOLDER, render_all
from snowpark.procedures import ARCHIVE_CURATED
from tasks.dag import RETENTION_7Y, build_retention_dag, render_sql
from tests.infra.conftest import Synth

SCRIPT = "R__warehouse_views_archive.sql"
ATTACH = "A__attach_policies.sql"  # migrations-governance/: the policies, attached as the governance deploy user
ENVS = ("dev", "staging", "prod")


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [" ".join(s.split()) for s in body.split(";") if s.strip()]


def test_iceberg_tables_and_the_task_name_the_volume_cdktf_creates(stack: Synth) -> None:
    env = stack.env
    (volume,) = stack.resources("snowflake", "snowflake_external_volume").values()
    stmts = _statements(render_all(env)[SCRIPT])
    creates = [s for s in stmts if s.startswith("CREATE ICEBERG TABLE")]
    archived = archive_catalog.archived_tables(env)
    assert len(creates) == len(archived) > 0
    assert {re.search(r"EXTERNAL_VOLUME = '(\w+)'", s).group(1) for s in creates} == {volume["name"]}  # type: ignore[union-attr]
    assert all("CATALOG = 'SNOWFLAKE'" in s for s in creates)
    locations = [re.search(r"BASE_LOCATION = '([^']+)'", s).group(1) for s in creates]  # type: ignore[union-attr]
    assert len(set(locations)) == len(locations)  # one folder per table below the volume's base URL
    # the task of the retention graph moves the rows monthly, with the config's hot window and the same volume
    task = re.search(r"CREATE OR REPLACE TASK \S+\.ARCHIVE_CURATED\n(.*?);\n", render_sql(env), re.S)
    assert task and f"AFTER {env.snowflake.schemas['ops']}.{RETENTION_7Y}" in task.group(1)
    spec = json.loads(re.search(r"'(\{.*\})'", task.group(1)).group(1))  # type: ignore[union-attr]
    assert spec["external_volume"] == volume["name"]
    assert spec["hot_months"] == env.curated_archive.hot_months  # type: ignore[union-attr]
    assert [t["archive"] for t in spec["tables"]] == [f"{catalog.ARCHIVE_SCHEMA}.{t['name']}" for t in archived]


@pytest.mark.parametrize("env_name", ENVS)
def test_every_dated_curated_table_and_every_mart_is_archived(env_name: str) -> None:
    env = load_environment(env_name)
    tables = {t["name"]: t for t in archive_catalog.archived_tables(env)}
    dated = {
        t.curated_name for t in env.warehouse_tables() if t.landed_columns()[t.cursor].type in ("timestamp", "date")
    }
    from finsight import marts

    assert set(tables) == dated | {m.table_name for m in marts.marts()}
    assert "ADYEN__SETTLEMENT_DETAILS" not in tables  # an integer cursor: no age, stays in native storage
    iceberg_types = {c["iceberg_type"] for t in tables.values() for c in t["columns"]}
    assert "TIMESTAMP_NTZ" not in iceberg_types and "VARIANT" not in iceberg_types  # Iceberg: microseconds, no VARIANT


@pytest.mark.parametrize("env_name", ENVS)
def test_archive_is_pipeline_only_and_history_views_carry_the_curated_policies(env_name: str) -> None:
    env = load_environment(env_name)
    roles, db = catalog.access_roles(env), env.snowflake.database
    grants = _statements(render_all(env)[SCRIPT])
    attached = _statements(render_all(env, GOVERNANCE_FOLDER)[ATTACH])
    stmts = grants + attached
    history, gov = catalog.HISTORY_SCHEMA, f"{db}.{catalog.GOVERNANCE_SCHEMA}"
    archived = {t["name"] for t in archive_catalog.archived_tables(env)}
    for reader in (roles["analyst"], roles["pii_reader"]):
        assert f"REVOKE ALL PRIVILEGES ON SCHEMA {db}.{catalog.ARCHIVE_SCHEMA} FROM ROLE {reader}" in stmts
        assert f"GRANT SELECT ON FUTURE VIEWS IN SCHEMA {db}.{history} TO ROLE {reader}" in stmts
    # the Iceberg tables: no reader; the governance role (policies) and the archive move's owner role only
    archive_grants = {
        s.split("TO ROLE ")[1] for s in stmts if s.startswith("GRANT") and f".{catalog.ARCHIVE_SCHEMA} " in s
    }
    assert archive_grants == {roles["governance"], roles["archiver"]}
    # ... which carry CURATED's masking too (the JSON text of `_RAW` masked to NULL, which PARSE_JSON keeps)
    payload = catalog.governance_vars(env)["raw_payload"]
    table_pattern = (
        rf"ALTER TABLE {db}\.{catalog.ARCHIVE_SCHEMA}\.(\w+) MODIFY COLUMN (\w+) SET MASKING POLICY {gov}\.(\w+) FORCE"
    )
    on_tables = {(m.group(1), m.group(2), m.group(3)) for s in stmts if (m := re.match(table_pattern, s))}
    assert on_tables == {
        (t.curated_name, c.upper(), "PAYLOAD_TEXT_MASK" if c.upper() == payload else "PII_MASK")
        for t in env.warehouse_tables()
        for c, col in t.landed_columns().items()
        if t.curated_name in archived and (col.pci.value == "pii" or c.upper() == payload)
    }
    pattern = rf"ALTER VIEW {db}\.{history}\.(\w+) MODIFY COLUMN (\w+) SET MASKING POLICY {gov}\.PII_MASK FORCE"
    masked = {(m.group(1), m.group(2)) for s in stmts if (m := re.match(pattern, s))}
    expected = {
        (t.curated_name, c.upper())
        for t in env.warehouse_tables()
        for c, col in t.columns.items()
        if col.pci.value == "pii" and t.curated_name in archived
    }
    assert expected and masked == expected
    row_access = {m.group(1) for s in stmts if (m := re.match(rf"ALTER VIEW {db}\.{history}\.(\w+) ADD ROW ACCESS", s))}
    assert row_access == set(catalog.governance_vars(env)["row_access_tables"]) & archived
    # the pipeline's script grants and never touches a policy, nor switches role; the governance run attaches them
    assert not [s for s in grants if "POLICY" in s or s.startswith("USE ROLE")]
    assert not [s for s in attached if s.startswith("USE ROLE")]


def test_procedures_name_the_archive_schema_of_the_catalog() -> None:
    from snowpark import archive

    assert archive.ARCHIVE_SCHEMA == catalog.ARCHIVE_SCHEMA  # procedures ship without finsight/: one copy, checked


@pytest.mark.parametrize("env_name", ENVS)
def test_evolved_columns_get_the_iceberg_types_of_the_catalog(env_name: str) -> None:
    from snowpark import archive

    # the move types a column schema evolution added as the migration types the catalog's (procedures: own copy)
    columns = [c for t in archive_catalog.archived_tables(load_environment(env_name)) for c in t["columns"]]
    assert {c["type"]: archive.iceberg_type(c["type"]) for c in columns} == {
        c["type"]: c["iceberg_type"] for c in columns
    }
    assert {archive.iceberg_type(t) for t in ("VARIANT", "OBJECT", "ARRAY")} == {"VARCHAR"}  # stored via TO_JSON
    assert archive.iceberg_type("TIMESTAMP_TZ") == "TIMESTAMP_LTZ(6)"  # Iceberg keeps no offset: the instant stays


def test_the_archive_refuses_a_widened_decimal_naming_the_column() -> None:
    """No in-place type change of an Iceberg archive column: Snowflake documents ALTER ICEBERG TABLE ... ALTER COLUMN
    ... SET DATA TYPE for structured types only (docs.snowflake.com/en/sql-reference/sql/
    alter-iceberg-table-alter-column-set-data-type), and Iceberg never promotes a scale."""
    from snowpark import archive

    hot, arc = "CURATED.S__T", "ARCHIVE.S__T"

    def live(hot_type: str, archived_type: str) -> dict[str, dict[str, str]]:
        return {hot: {"ID": "NUMBER(38, 0)", "AMOUNT": hot_type}, arc: {"ID": "NUMBER(38, 0)", "AMOUNT": archived_type}}

    archive.check_archive_types(hot, arc, live("NUMBER(10, 2)", "NUMBER(10, 2)"))
    archive.check_archive_types(hot, arc, live("NUMBER(8, 2)", "NUMBER(10, 2)"))  # the archive holds it
    no_amount = {hot: live("NUMBER(14, 2)", "-")[hot], arc: {"ID": "NUMBER(38, 0)"}}
    archive.check_archive_types(hot, arc, no_amount)  # a column the archive lacks is added, not widened
    with pytest.raises(archive.ArchiveTypeError, match=r"ARCHIVE\.S__T\.AMOUNT is NUMBER\(10, 2\) but "
                       r"CURATED\.S__T\.AMOUNT is now NUMBER\(14, 2\) \(grown precision\)"):  # fmt: skip
        archive.check_archive_types(hot, arc, live("NUMBER(14, 2)", "NUMBER(10, 2)"))
    with pytest.raises(archive.ArchiveTypeError, match=r"ARCHIVE\.S__T\.AMOUNT is NUMBER\(10, 2\) but "
                       r"CURATED\.S__T\.AMOUNT is now NUMBER\(12, 4\) \(grown scale\)"):  # fmt: skip
        archive.check_archive_types(hot, arc, live("NUMBER(12, 4)", "NUMBER(10, 2)"))


def test_without_curated_archive_nothing_is_archived() -> None:
    env: Environment = load_environment("local")
    assert env.curated_archive is not None  # the local stack runs the move too (fakesnow: plain tables)
    bare = env.model_copy(update={"curated_archive": None})
    assert archive_catalog.archive_spec(bare) is None and archive_catalog.archived_tables(bare) == []
    assert ARCHIVE_CURATED not in [n.procedure for n in build_retention_dag(bare)]
    assert ARCHIVE_CURATED in [n.procedure for n in build_retention_dag(env)]
    assert _statements(render_all(bare)[SCRIPT]) == [
        "SELECT 'no curated_archive in this environment: CURATED keeps all its history' AS CURATED_ARCHIVE"
    ]
    local = _statements(render_all(env)[SCRIPT])
    assert not [s for s in local if s.startswith(("USE ROLE", "GRANT", "REVOKE"))]  # Snowflake only
    # the masking policies are applied locally too (finsight/local/column_policies.py); row access is Snowflake's
    altered = [
        s
        for s in _statements(render_all(env, GOVERNANCE_FOLDER)[ATTACH])
        if s.startswith(("ALTER VIEW", "ALTER TABLE")) and f".{catalog.HISTORY_SCHEMA}." in s
    ]
    assert altered and all("SET MASKING POLICY" in s for s in altered)
