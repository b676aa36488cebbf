"""The retention graph: RAW rows pruned raw_table_days after their batch merged (never before, never unmerged),
CURATED rows unchanged for 7 years and MARTS partitions older than 7 years deleted, every deletion logged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from finsight import migrate, warehouse
from finsight.config import Environment, Table
from finsight.local.stack import LocalStack
from tasks.runner import run_retention
from tests.warehouse.helpers import sf

pytestmark = pytest.mark.stack
KEYS = (9_800_000_001, 9_800_000_002, 9_800_000_003, 9_800_000_004, 9_800_000_005)
MERCHANT = 9_800_000_999
SEQ_BATCH = "test-ret-sequence-cursor"


@pytest.fixture
def aged_rows(local_env: Environment, local_stack: LocalStack) -> Iterator[dict[str, str]]:
    migrate.deploy(local_env)
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
        # a table whose cursor is not a time (a report's batch number): its rows age by their read time
        seq = _sequence_cursor_table(local_env)
        for n, read_at in enumerate((eight, six)):
            keys = {
                c: (KEYS[n] if seq.columns[c].type in ("int", "bigint") else f"test-ret-{n}") for c in seq.primary_key
            }
            cur.execute(f"INSERT INTO CURATED.{seq.curated_name} ({', '.join(keys)}, _BATCH_ID, _EXTRACTED_AT, "
                        f"_ROW_NUMBER, _OP) VALUES ({', '.join(repr(v) for v in keys.values())}, '{SEQ_BATCH}', "
                        f"'{read_at}', 1, 'U')")  # fmt: skip
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
        cur.execute("DELETE FROM OPS.MERGED_BATCHES WHERE BATCH_ID LIKE 'test-ret-%'")
        cur.execute(
            f"DELETE FROM CURATED.{_sequence_cursor_table(local_env).curated_name} WHERE _BATCH_ID = '{SEQ_BATCH}'"
        )


def _sequence_cursor_table(env: Environment) -> Table:
    tables = [t for t in env.warehouse_tables() if t.columns[t.cursor].type not in ("timestamp", "date")]
    assert tables, "no catalog table with a non-time cursor"
    return tables[0]


def test_retention_graph_prunes_raw_after_merge_and_keeps_seven_years(
    local_env: Environment, aged_rows: dict[str, str]
) -> None:
    session = warehouse.snowpark_session(local_env)
    run_id = f"test-retention-{uuid.uuid4().hex[:8]}"
    try:
        run = run_retention(local_env, session, run_id)
    finally:
        session.close()
    assert [t.state for t in run.tasks] == ["SUCCEEDED", "SUCCEEDED"], run
    raw = {
        r[0]
        for r in sf(local_env, "SELECT _BATCH_ID FROM RAW.RISK__RISK_ASSESSMENTS WHERE _BATCH_ID LIKE 'test-ret-%'")
    }
    assert aged_rows["old"] not in raw  # merged raw_table_days + 1 ago: pruned
    assert {aged_rows["recent"], aged_rows["unmerged"]} <= raw  # too recent, or never merged: kept
    curated = {r[0] for r in sf(local_env, f"SELECT ASSESSMENT_ID FROM CURATED.RISK__RISK_ASSESSMENTS "
                                           f"WHERE ASSESSMENT_ID IN ({KEYS[3]}, {KEYS[4]})")}  # fmt: skip
    assert curated == {KEYS[4]}  # unchanged for 8 years: gone; 6 years: kept
    marts = sf(local_env, f"SELECT COUNT(*) FROM MARTS.DAILY_REVENUE WHERE MERCHANT_ID = {MERCHANT}")
    assert marts == [(1,)]
    log = dict(sf(local_env, f"SELECT TABLE_NAME, ROWS_DELETED FROM OPS.RETENTION_RUNS WHERE RUN_ID = '{run_id}' "
                             "AND TABLE_NAME IN ('RAW.RISK__RISK_ASSESSMENTS', 'CURATED.RISK__RISK_ASSESSMENTS', "
                             "'MARTS.DAILY_REVENUE')"))  # fmt: skip
    assert log == {"RAW.RISK__RISK_ASSESSMENTS": 1, "CURATED.RISK__RISK_ASSESSMENTS": 1, "MARTS.DAILY_REVENUE": 1}
    seq = _sequence_cursor_table(local_env)
    kept = sf(local_env, f"SELECT _EXTRACTED_AT FROM CURATED.{seq.curated_name} WHERE _BATCH_ID = '{SEQ_BATCH}'")
    assert [r[0].year for r in kept] == [(datetime.now(UTC) - timedelta(days=6 * 365)).year]  # read 8 years ago: gone
