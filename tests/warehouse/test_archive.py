"""ARCHIVE_CURATED on the real stack: CURATED/MARTS rows older than hot_months move to the archive tables (Iceberg in
Snowflake, plain tables in fakesnow through the compat layer), HISTORY views still show every row exactly once, a
rerun changes nothing, and a crash between the copy and the delete step never duplicates nor loses a row.

The move runs on one CURATED table and one mart only (the procedure's spec, filtered): rows of private keys, removed
in `finally`, so the shared stack is left as found.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from finsight import archive_catalog, catalog, deploy_fingerprint, migrate, warehouse
from finsight.config import Environment
from finsight.local.stack import LocalStack
from snowpark import archive, schema_evolution
from tests.warehouse.helpers import sf

pytestmark = pytest.mark.stack

TABLE, MART = "CURATED.RISK__RISK_ASSESSMENTS", "MARTS.DAILY_REVENUE"
OLD_KEYS = (9_810_000_001, 9_810_000_002)
RECENT_KEYS = (9_810_000_003,)
DELETED_KEY = 9_810_000_004  # archived earlier, then deleted at the source (a newer tombstone)
KEYS = ", ".join(map(str, (*OLD_KEYS, *RECENT_KEYS, DELETED_KEY)))
MERCHANT = 9_810_000_999
COLUMNS = "ASSESSMENT_ID, SCORE, UPDATED_AT, _BATCH_ID, _EXTRACTED_AT, _ROW_NUMBER, _OP, _MERGED_AT"


def _spec(env: Environment) -> dict[str, Any]:
    spec = archive_catalog.archive_spec(env)
    assert spec is not None, "the local environment configures curated_archive"
    spec["tables"] = [t for t in spec["tables"] if t["hot"] in (TABLE, MART)]
    assert len(spec["tables"]) == 2
    return spec


def _rows(env: Environment, schema_table: str, where: str) -> list[tuple]:
    cols = COLUMNS if "RISK" in schema_table else "BUSINESS_DATE, MERCHANT_ID, CURRENCY, CARD_BRAND, PAYMENT_COUNT"
    return sorted(sf(env, f"SELECT {cols} FROM {schema_table} WHERE {where}"), key=repr)


def _state(env: Environment) -> dict[str, list[tuple]]:
    risk, mart = f"ASSESSMENT_ID IN ({KEYS})", f"MERCHANT_ID = {MERCHANT}"
    return {
        "hot": _rows(env, TABLE, risk),
        "archive": _rows(env, "ARCHIVE.RISK__RISK_ASSESSMENTS", risk),
        "history": _rows(env, "HISTORY.RISK__RISK_ASSESSMENTS", risk),
        "mart_hot": _rows(env, MART, mart),
        "mart_archive": _rows(env, "ARCHIVE.DAILY_REVENUE", mart),
        "mart_history": _rows(env, "HISTORY.DAILY_REVENUE", mart),
    }


@pytest.fixture
def seeded(local_env: Environment, local_stack: LocalStack) -> Iterator[dict[str, list[tuple]]]:
    """Old and recent rows in CURATED and MARTS; returns what they held before any move."""
    deploy_fingerprint.deploy_if_changed(local_env)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    old, recent = now - timedelta(days=200), now - timedelta(days=5)  # hot_months 3 (+ the month alignment)
    batch = f"test-arc-{uuid.uuid4().hex[:8]}"
    with warehouse.connect(local_env) as conn:
        cur = conn.cursor()
        for n, (key, at) in enumerate([(k, old) for k in OLD_KEYS] + [(k, recent) for k in RECENT_KEYS]):
            cur.execute(f"INSERT INTO {TABLE} ({COLUMNS}) VALUES ({key}, {n}, '{at}', '{batch}', '{at}', {n}, 'U', "
                        f"'{at}')")  # fmt: skip
        cur.execute(f"INSERT INTO ARCHIVE.RISK__RISK_ASSESSMENTS ({COLUMNS}) VALUES ({DELETED_KEY}, 9, '{old}', "
                    f"'{batch}', '{old}', 1, 'U', '{old}')")  # fmt: skip
        cur.execute(f"INSERT INTO OPS.RISK__RISK_ASSESSMENTS__TOMBSTONES (ASSESSMENT_ID, _BATCH_ID, _EXTRACTED_AT, "
                    f"_DELETED_AT) VALUES ({DELETED_KEY}, '{batch}-d', '{recent}', '{recent}')")  # fmt: skip
        for day, count in ((old.date(), 1), (old.date() - timedelta(days=1), 2), (recent.date(), 3)):
            cur.execute(f"INSERT INTO {MART} (BUSINESS_DATE, MERCHANT_ID, CURRENCY, CARD_BRAND, PAYMENT_COUNT, "
                        f"_RUN_ID, _BUILT_AT) VALUES ('{day}', {MERCHANT}, 'USD', 'visa', {count}, '{batch}', "
                        f"'{now}')")  # fmt: skip
    try:
        yield _state(local_env)
    finally:
        with warehouse.connect(local_env) as conn:
            cur = conn.cursor()
            for table in (TABLE, "ARCHIVE.RISK__RISK_ASSESSMENTS", "OPS.RISK__RISK_ASSESSMENTS__TOMBSTONES"):
                cur.execute(f"DELETE FROM {table} WHERE ASSESSMENT_ID IN ({KEYS})")
            for table in (MART, "ARCHIVE.DAILY_REVENUE"):
                cur.execute(f"DELETE FROM {table} WHERE MERCHANT_ID = {MERCHANT}")
            cur.execute("DELETE FROM OPS.RETENTION_RUNS WHERE RUN_ID LIKE 'test-arc-%'")


def _live(before: dict[str, list[tuple]]) -> list[tuple]:
    """What readers should see: everything CURATED held (the source-deleted key was never hot)."""
    return before["hot"]


def test_old_rows_move_recent_stay_history_unchanged_rerun_is_a_noop(
    local_env: Environment, seeded: dict[str, list[tuple]]
) -> None:
    spec = _spec(local_env)
    session = warehouse.snowpark_session(local_env)
    try:
        out = json.loads(archive.archive_curated(session, "test-arc-run", json.dumps(spec)))
        after = _state(local_env)
        rerun = json.loads(archive.archive_curated(session, "test-arc-rerun", json.dumps(spec)))
    finally:
        session.close()
    assert out["external_volume"] == catalog.archive_volume(local_env)
    assert out["tables"][TABLE] == {"copied": 2, "deleted_from_hot": 2, "dropped_deleted_at_source": 1}
    assert out["tables"][MART]["deleted_from_hot"] == 2  # the two old partitions
    assert [r[0] for r in after["hot"]] == list(RECENT_KEYS)  # recent rows stay hot
    assert sorted(r[0] for r in after["archive"]) == sorted(OLD_KEYS)  # old rows moved; the deleted key dropped
    assert after["history"] == _live(seeded)  # readers see exactly what CURATED held
    assert [r[4] for r in after["mart_hot"]] == [3] and sorted(r[4] for r in after["mart_archive"]) == [1, 2]
    assert after["mart_history"] == seeded["mart_hot"]
    assert all(v == {"copied": 0, "deleted_from_hot": 0, "dropped_deleted_at_source": 0}
               for v in rerun["tables"].values()), rerun  # fmt: skip
    assert _state(local_env) == after  # a rerun changes nothing
    policy = f"archive_hot_months={spec['hot_months']}"
    logged = sf(local_env, f"SELECT ROWS_DELETED FROM OPS.RETENTION_RUNS WHERE RUN_ID = 'test-arc-run' "
                           f"AND TABLE_NAME = '{TABLE}' AND POLICY = '{policy}'")  # fmt: skip
    assert logged == [(2,)]


def test_crash_between_copy_and_delete_then_rerun_leaves_no_duplicate(
    local_env: Environment, seeded: dict[str, list[tuple]]
) -> None:
    spec = _spec(local_env)
    cutoff = archive.cutoff_sql(spec["hot_months"])
    session = warehouse.snowpark_session(local_env)
    try:
        for t in spec["tables"]:  # move_table's steps up to the copy: the run dies before delete_archived
            archive.drop_deleted_at_source(session, t)
            archive.copy_to_archive(session, t, cutoff)
        crashed = _state(local_env)
        for t in spec["tables"]:
            archive.move_table(session, t, cutoff)  # the next day's run
    finally:
        session.close()
    # mid-crash: old rows are in both places, readers still see each row once (the hot copy wins)
    assert crashed["hot"] == seeded["hot"] and sorted(r[0] for r in crashed["archive"]) == sorted(OLD_KEYS)
    assert crashed["history"] == _live(seeded) and crashed["mart_history"] == seeded["mart_hot"]
    after = _state(local_env)
    assert sorted(r[0] for r in after["archive"]) == sorted(OLD_KEYS)  # once each, no duplicate
    assert [r[0] for r in after["hot"]] == list(RECENT_KEYS)
    assert after["history"] == _live(seeded)
    assert sorted(r[4] for r in after["mart_archive"]) == [1, 2] and after["mart_history"] == seeded["mart_hot"]


# two columns the source gained after deploy, added to CURATED by schema evolution; JSON is kept as text in Iceberg
EVOLVED = {"ARC_TEST_NOTE": "VARCHAR", "ARC_TEST_META": "VARIANT"}
NAME = TABLE.split(".")[1]


def _evolved(env: Environment, session: Any, schema: str) -> tuple[dict[str, str], list[tuple]]:
    """The evolved columns' types in SCHEMA.<NAME> and their values (none when the columns are missing there)."""
    types = schema_evolution.table_columns(session, schema, NAME)
    if not EVOLVED.keys() <= types.keys():
        return {c: types.get(c) for c in EVOLVED}, []
    meta = "ARC_TEST_META" if schema == "ARCHIVE" else "TO_JSON(ARC_TEST_META)"  # JSON text either way
    rows = sf(env, f"SELECT ASSESSMENT_ID, ARC_TEST_NOTE, {meta} FROM {schema}.{NAME} WHERE ASSESSMENT_ID IN ({KEYS})")
    values = sorted((k, note, json.loads(m) if m is not None else None) for k, note, m in rows)
    return {c: types[c] for c in EVOLVED}, values


def test_columns_added_by_schema_evolution_are_archived_with_their_values(
    local_env: Environment, seeded: dict[str, list[tuple]]
) -> None:
    spec = _spec(local_env)
    session = warehouse.snowpark_session(local_env)
    try:
        current = schema_evolution.table_columns(session, "CURATED", NAME)
        for _, _, ddl in schema_evolution.evolve_statements(TABLE, current, EVOLVED):  # as MERGE_TABLE evolves it
            session.sql(ddl).collect()
        for key in (*OLD_KEYS, *RECENT_KEYS):  # values on old rows (moved) and on a recent one (stays hot)
            meta = json.dumps({"k": key})
            session.sql(f"UPDATE {TABLE} SET ARC_TEST_NOTE = 'note {key}', ARC_TEST_META = PARSE_JSON('{meta}') "
                        f"WHERE ASSESSMENT_ID = {key}").collect()  # fmt: skip
        _, before = _evolved(local_env, session, "CURATED")
        out = json.loads(archive.archive_curated(session, "test-arc-evolved", json.dumps(spec)))
        arc_types, archived = _evolved(local_env, session, "ARCHIVE")
        _, hot = _evolved(local_env, session, "CURATED")
        migrate.deploy(local_env)  # the next deploy re-creates HISTORY with the live columns
        _, history = _evolved(local_env, session, "HISTORY")
    finally:
        for table in (TABLE, f"{archive.ARCHIVE_SCHEMA}.{NAME}"):
            for column in EVOLVED:
                session.sql(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column}").collect()
        session.close()
        migrate.deploy(local_env)  # HISTORY back to the catalog's columns: the shared stack as found
    assert arc_types == {"ARC_TEST_NOTE": "VARCHAR", "ARC_TEST_META": "VARCHAR"}  # Iceberg: no VARIANT
    assert out["tables"][TABLE]["deleted_from_hot"] == len(OLD_KEYS)
    assert [k for k, *_ in hot] == list(RECENT_KEYS)
    assert archived == [r for r in before if r[0] in OLD_KEYS]  # the evolved values moved, not dropped
    assert archived[0][1:] == (f"note {OLD_KEYS[0]}", {"k": OLD_KEYS[0]})
    assert history == before  # readers see every value, hot and archived, JSON as JSON again


# a NUMBER the source widened after the archive table was created (archive: the old type, CURATED: the widened one)
AMOUNT = "ARC_TEST_AMOUNT"
ARCHIVED = f"{archive.ARCHIVE_SCHEMA}.{NAME}"


def _move_with_widened_amount(
    env: Environment, spec: dict[str, Any], hot_type: str, archived_type: str, value: str
) -> tuple[Exception | None, dict[str, str], list[tuple], list[tuple]]:
    """The move with AMOUNT = `value` on the old rows; returns its error, AMOUNT's types, (key, hot, archived) values
    and the recorded schema changes."""
    session = warehouse.snowpark_session(env)
    error = None
    try:
        session.sql(f"ALTER TABLE {TABLE} ADD COLUMN {AMOUNT} {hot_type}").collect()
        session.sql(f"ALTER TABLE {ARCHIVED} ADD COLUMN {AMOUNT} {archived_type}").collect()
        session.sql(f"UPDATE {TABLE} SET {AMOUNT} = {value} WHERE ASSESSMENT_ID IN {OLD_KEYS}").collect()
        try:
            archive.archive_curated(session, "test-arc-widened", json.dumps(spec))
        except Exception as e:  # the caller asserts which
            error = e
        types = {s: schema_evolution.table_columns(session, s, NAME)[AMOUNT] for s in ("CURATED", "ARCHIVE")}
        values = sf(env, f"SELECT k.ASSESSMENT_ID, h.{AMOUNT}, a.{AMOUNT} FROM (SELECT ASSESSMENT_ID FROM {TABLE} "
                         f"UNION SELECT ASSESSMENT_ID FROM {ARCHIVED}) AS k LEFT JOIN {TABLE} AS h "
                         f"ON h.ASSESSMENT_ID = k.ASSESSMENT_ID LEFT JOIN {ARCHIVED} AS a "
                         f"ON a.ASSESSMENT_ID = k.ASSESSMENT_ID WHERE k.ASSESSMENT_ID IN {OLD_KEYS} "
                         "ORDER BY 1")  # fmt: skip
        changes = sf(env, f"SELECT TABLE_NAME, CHANGE FROM {schema_evolution.SCHEMA_VERSIONS} "
                          f"WHERE COLUMN_NAME = '{AMOUNT}'")  # fmt: skip
    finally:
        for table in (TABLE, ARCHIVED):
            session.sql(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {AMOUNT}").collect()
        session.sql(f"DELETE FROM {schema_evolution.SCHEMA_VERSIONS} WHERE COLUMN_NAME = '{AMOUNT}'").collect()
        session.close()
    return error, types, values, changes


def test_a_decimal_widened_in_precision_keeps_its_old_rows_hot_and_fails_naming_the_column(
    local_env: Environment, seeded: dict[str, list[tuple]]
) -> None:
    """Snowflake documents no in-place type change for a primitive Iceberg column (ALTER ICEBERG TABLE ... ALTER
    COLUMN ... SET DATA TYPE is for structured types: docs.snowflake.com/en/sql-reference/sql/
    alter-iceberg-table-alter-column-set-data-type): the move must not rely on it, nor copy digits the archive cannot
    hold. DuckDB would widen the column, so the local stack cannot show the refusal: the procedure must not ask."""
    spec = _spec(local_env)
    big = "123456789012.34"  # needs NUMBER(14, 2): out of range for the archive's NUMBER(10, 2)
    error, types, values, changes = _move_with_widened_amount(local_env, spec, "NUMBER(14, 2)", "NUMBER(10, 2)", big)
    assert isinstance(error, archive.ArchiveTypeError)
    assert f"{ARCHIVED}.{AMOUNT} is NUMBER(10, 2) but {TABLE}.{AMOUNT} is now NUMBER(14, 2)" in str(error)
    assert types == {"CURATED": "NUMBER(14, 2)", "ARCHIVE": "NUMBER(10, 2)"}  # no ALTER ICEBERG TABLE was sent
    assert values == [(k, Decimal(big), None) for k in OLD_KEYS]  # still hot, every digit kept
    assert changes == []
    after = _state(local_env)
    assert after["hot"] == seeded["hot"] and after["history"] == _live(seeded)
    assert sorted(r[4] for r in after["mart_archive"]) == [1, 2]  # the other table moved


def test_a_decimal_whose_scale_grew_keeps_its_old_rows_hot_and_fails_naming_the_column(
    local_env: Environment, seeded: dict[str, list[tuple]]
) -> None:
    spec = _spec(local_env)
    assert [t["hot"] for t in spec["tables"]] == [TABLE, MART]  # the blocked table comes first: the mart still moves
    error, types, values, changes = _move_with_widened_amount(
        local_env, spec, "NUMBER(12, 4)", "NUMBER(10, 2)", "1.2345"
    )
    assert isinstance(error, archive.ArchiveTypeError)
    assert f"{ARCHIVED}.{AMOUNT} is NUMBER(10, 2) but {TABLE}.{AMOUNT} is now NUMBER(12, 4)" in str(error)
    assert types == {"CURATED": "NUMBER(12, 4)", "ARCHIVE": "NUMBER(10, 2)"}
    assert values == [(k, Decimal("1.2345"), None) for k in OLD_KEYS]  # still hot, not rounded into the archive
    assert changes == []
    after = _state(local_env)
    assert after["hot"] == seeded["hot"] and after["history"] == _live(seeded)
    assert sorted(r[4] for r in after["mart_archive"]) == [1, 2]  # the other table moved
    logged = sf(local_env, "SELECT TABLE_NAME FROM OPS.RETENTION_RUNS WHERE RUN_ID = 'test-arc-widened'")
    assert logged == [(MART,)]
