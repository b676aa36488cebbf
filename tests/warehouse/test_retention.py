"""The retention graph: RAW rows pruned raw_table_days after their batch merged (never before, never unmerged),
CURATED rows unchanged for 7 years and MARTS partitions older than 7 years deleted, every deletion logged; rows
younger than 7 but older than curated_archive.hot_months move to the archive and stay readable in HISTORY."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from finsight import deploy_fingerprint, warehouse
from finsight.catalog import archive_age_column
from finsight.config import Environment, Table
from finsight.local.stack import LocalStack
from tasks.dag import build_retention_dag
from tasks.runner import run_retention
from tests.warehouse.helpers import sf

pytestmark = pytest.mark.stack
KEYS = (9_800_000_001, 9_800_000_002, 9_800_000_003, 9_800_000_004, 9_800_000_005, 9_800_000_006)
MERCHANT = 9_800_000_999
_LITERALS = {"string": "'test-ret-{n}'", "int": "{n}", "bigint": "{n}", "bool": "TRUE", "timestamp": "'{at}'",
             "date": "'{day}'"}  # fmt: skip


def _undated(env: Environment) -> Table:
    """A table whose cursor is not a date/time (an integer batch number): its rows age by their read time."""
    return next(t for t in env.warehouse_tables() if archive_age_column(t) is None)


def _undated_row(table: Table, n: int, read_at: datetime) -> str:
    """INSERT of a CURATED row of `table` read at `read_at`: every required column set, the key made of `n`."""
    required = {c: col for c, col in table.landed_columns().items() if not col.nullable or c in table.primary_key}
    values = [_LITERALS.get(col.type, "0").format(n=n, at=read_at, day=read_at.date()) for col in required.values()]
    columns = [*map(str.upper, required), "_BATCH_ID", "_EXTRACTED_AT", "_ROW_NUMBER", "_OP"]
    values += ["'test-ret'", f"'{read_at}'", "1", "'U'"]
    return f"INSERT INTO CURATED.{table.curated_name} ({', '.join(columns)}) VALUES ({', '.join(values)})"


@pytest.fixture
def aged_rows(local_env: Environment, local_stack: LocalStack) -> Iterator[dict[str, str]]:
    deploy_fingerprint.deploy_if_changed(local_env)
    now = datetime.now(UTC).replace(tzinfo=None)
    tag = uuid.uuid4().hex[:8]
    batches = {"old": f"test-ret-old-{tag}", "recent": f"test-ret-recent-{tag}", "unmerged": f"test-ret-unmerged-{tag}"}
    days = local_env.retention.raw_table_days
    eight, six = now - timedelta(days=8 * 365), now - timedelta(days=6 * 365)
    k = KEYS
    with warehouse.connect(local_env) as conn:
        cur = conn.cursor()
        for key, (kind, batch) in zip(k, batches.items(), strict=False):
            cur.execute(f"INSERT INTO RAW.RISK__RISK_ASSESSMENTS (ASSESSMENT_ID, SCORE, _BATCH_ID, _EXTRACTED_AT, "
                        f"_ROW_NUMBER, _OP) VALUES ({key}, 1, '{batch}', '{now}', 1, 'U')")  # fmt: skip
            merged_at = {"old": now - timedelta(days=days + 1), "recent": now - timedelta(days=days - 1)}.get(kind)
            if merged_at:
                cur.execute(f"INSERT INTO OPS.MERGED_BATCHES VALUES ('{batch}', 'RISK__RISK_ASSESSMENTS', 1, 0, "
                            f"'{merged_at}', 'test')")  # fmt: skip
        for key, updated in ((k[3], eight), (k[4], six)):
            columns = "ASSESSMENT_ID, SCORE, UPDATED_AT, _BATCH_ID, _EXTRACTED_AT, _ROW_NUMBER, _OP"
            values = f"{key}, 1, '{updated}', 'test', '{updated}', 1, 'U'"
            cur.execute(f"INSERT INTO CURATED.RISK__RISK_ASSESSMENTS ({columns}) VALUES ({values})")
        # archived earlier, now 8 years old: the 7-year retention prunes the Iceberg archive too
        cur.execute(f"INSERT INTO ARCHIVE.RISK__RISK_ASSESSMENTS ({columns}) VALUES "
                    f"({k[5]}, 1, '{eight}', 'test', '{eight}', 1, 'U')")  # fmt: skip
        cur.execute(f"INSERT INTO ARCHIVE.DAILY_REVENUE (BUSINESS_DATE, MERCHANT_ID, CURRENCY, CARD_BRAND) VALUES "
                    f"('{eight.date()}', {MERCHANT}, 'EUR', 'visa')")  # fmt: skip
        for key, read_at in ((k[3], eight), (k[4], six)):
            cur.execute(_undated_row(_undated(local_env), key, read_at))
        for day in (eight.date(), six.date()):
            cur.execute(f"INSERT INTO MARTS.DAILY_REVENUE (BUSINESS_DATE, MERCHANT_ID, CURRENCY, CARD_BRAND) VALUES "
                        f"('{day}', {MERCHANT}, 'USD', 'visa')")  # fmt: skip
    yield batches
    keys = ", ".join(map(str, KEYS))
    with warehouse.connect(local_env) as conn:
        cur = conn.cursor()
        cur.execute(f"DELETE FROM RAW.RISK__RISK_ASSESSMENTS WHERE ASSESSMENT_ID IN ({keys})")
        cur.execute(f"DELETE FROM CURATED.RISK__RISK_ASSESSMENTS WHERE ASSESSMENT_ID IN ({keys})")
        cur.execute(f"DELETE FROM MARTS.DAILY_REVENUE WHERE MERCHANT_ID = {MERCHANT}")
        cur.execute(f"DELETE FROM CURATED.{_undated(local_env).curated_name} WHERE _BATCH_ID = 'test-ret'")
        cur.execute(f"DELETE FROM ARCHIVE.RISK__RISK_ASSESSMENTS WHERE ASSESSMENT_ID IN ({keys})")
        cur.execute(f"DELETE FROM ARCHIVE.DAILY_REVENUE WHERE MERCHANT_ID = {MERCHANT}")
        cur.execute("DELETE FROM OPS.MERGED_BATCHES WHERE BATCH_ID LIKE 'test-ret-%'")


def test_retention_graph_prunes_raw_after_merge_and_keeps_seven_years(
    local_env: Environment, aged_rows: dict[str, str]
) -> None:
    session = warehouse.snowpark_session(local_env)
    run_id = f"test-retention-{uuid.uuid4().hex[:8]}"
    try:
        run = run_retention(local_env, session, run_id)
    finally:
        session.close()
    assert [(t.name, t.state) for t in run.tasks] == [(n.name, "SUCCEEDED") for n in build_retention_dag(local_env)]
    raw = {
        r[0]
        for r in sf(local_env, "SELECT _BATCH_ID FROM RAW.RISK__RISK_ASSESSMENTS WHERE _BATCH_ID LIKE 'test-ret-%'")
    }
    assert aged_rows["old"] not in raw  # merged raw_table_days + 1 ago: pruned
    assert {aged_rows["recent"], aged_rows["unmerged"]} <= raw  # too recent, or never merged: kept
    # read through HISTORY (hot + archive): the 6-year-old rows are older than hot_months, so they are archived
    kept = {r[0] for r in sf(local_env, f"SELECT ASSESSMENT_ID FROM HISTORY.RISK__RISK_ASSESSMENTS "
                                        f"WHERE ASSESSMENT_ID IN ({KEYS[3]}, {KEYS[4]})")}  # fmt: skip
    assert kept == {KEYS[4]}  # unchanged for 8 years: gone; 6 years: kept
    marts = sf(local_env, f"SELECT COUNT(*) FROM HISTORY.DAILY_REVENUE WHERE MERCHANT_ID = {MERCHANT}")
    assert marts == [(1,)]
    archived = sf(local_env, f"SELECT ASSESSMENT_ID FROM ARCHIVE.RISK__RISK_ASSESSMENTS WHERE ASSESSMENT_ID IN "
                             f"({KEYS[3]}, {KEYS[4]}, {KEYS[5]})")  # fmt: skip
    assert archived == [(KEYS[4],)]  # KEYS[5], archived 8 years ago, pruned from the archive
    assert sf(local_env, f"SELECT CURRENCY FROM ARCHIVE.DAILY_REVENUE WHERE MERCHANT_ID = {MERCHANT}") == [("USD",)]
    # an integer-cursor table is not archived, but its rows still leave after 7 years (by read time)
    undated = _undated(local_env)
    read = sf(local_env, f"SELECT _EXTRACTED_AT FROM CURATED.{undated.curated_name} WHERE _BATCH_ID = 'test-ret'")
    seven_years_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=7 * 365)
    assert len(read) == 1 and read[0][0] > seven_years_ago, (undated.qualified, read)  # the 8-year-old row is gone
    log = dict(sf(local_env, f"SELECT TABLE_NAME, ROWS_DELETED FROM OPS.RETENTION_RUNS WHERE RUN_ID = '{run_id}' "
                             "AND TABLE_NAME IN ('RAW.RISK__RISK_ASSESSMENTS', 'CURATED.RISK__RISK_ASSESSMENTS', "
                             "'MARTS.DAILY_REVENUE') AND POLICY NOT LIKE 'archive%'"))  # fmt: skip
    assert log == {"RAW.RISK__RISK_ASSESSMENTS": 1, "CURATED.RISK__RISK_ASSESSMENTS": 1, "MARTS.DAILY_REVENUE": 1}
