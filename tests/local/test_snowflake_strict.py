"""The local Snowflake refuses what Snowflake refuses: statements sent through the connector to the real fakesnow
server of the stack, answered with Snowflake's error text; the statement log `finsight sql check --log` reads."""

from __future__ import annotations

import json

import pytest
from snowflake.connector.errors import ProgrammingError

from finsight import warehouse
from finsight.config import Environment
from finsight.local.stack import LocalStack

pytestmark = pytest.mark.stack


@pytest.fixture
def cursor(local_env: Environment, local_stack: LocalStack):
    with warehouse.connect(local_env) as conn:
        cur = conn.cursor()
        cur.execute("CREATE SCHEMA IF NOT EXISTS STRICT_TEST")
        cur.execute("USE SCHEMA STRICT_TEST")
        cur.execute("CREATE OR REPLACE TABLE C (K NUMBER, P NUMBER, AMOUNT NUMBER(10,2))")
        cur.execute("CREATE OR REPLACE TABLE P (ID NUMBER)")
        cur.execute("INSERT INTO C VALUES (1, 10, 1.5), (2, 20, 2.5)")
        cur.execute("INSERT INTO P VALUES (10)")
        yield cur


def refused(cursor, sql: str) -> ProgrammingError:
    with pytest.raises(ProgrammingError) as err:
        cursor.execute(sql)
    return err.value


def test_correlated_subquery_under_or_is_refused_with_snowflakes_error(cursor) -> None:
    sql = "SELECT c.K FROM C AS c WHERE c.K = 2 OR NOT EXISTS (SELECT 1 FROM P AS p WHERE p.ID = c.P)"
    err = refused(cursor, sql)
    assert err.errno == 2031 and err.sqlstate == "42601"
    assert "Unsupported subquery type cannot be evaluated" in err.msg and "querying-subqueries" in err.msg
    # the anti-join Snowflake evaluates gives the answer DuckDB gave to the refused form
    cursor.execute("SELECT c.K FROM C AS c LEFT JOIN P AS p ON p.ID = c.P WHERE c.K = 2 OR p.ID IS NULL ORDER BY c.K")
    assert [r[0] for r in cursor.fetchall()] == [2]


def test_correlated_exists_in_a_select_list_is_refused(cursor) -> None:
    err = refused(cursor, "SELECT SUM(CASE WHEN EXISTS (SELECT 1 FROM P AS p WHERE p.ID = c.P) THEN 1 END) FROM C AS c")
    assert "Unsupported subquery type" in err.msg


def test_correlated_exists_alone_in_where_runs(cursor) -> None:
    cursor.execute("SELECT c.K FROM C AS c WHERE EXISTS (SELECT 1 FROM P AS p WHERE p.ID = c.P)")
    assert cursor.fetchall() == [(1,)]


def test_changing_a_numbers_scale_is_refused_and_a_precision_grows(cursor) -> None:
    err = refused(cursor, "ALTER TABLE C ALTER COLUMN AMOUNT SET DATA TYPE NUMBER(12, 4)")
    assert "changing the scale of a number is not supported" in err.msg
    cursor.execute("ALTER TABLE C ALTER COLUMN AMOUNT SET DATA TYPE NUMBER(14, 2)")
    cursor.execute("SELECT SUM(AMOUNT) FROM C")
    assert float(cursor.fetchone()[0]) == 4.0


def test_a_task_of_a_resumed_graph_cannot_be_replaced_until_its_root_is_suspended(cursor) -> None:
    cursor.execute("CREATE OR REPLACE TASK STRICT_ROOT SCHEDULE = '60 MINUTE' AS SELECT 1")
    cursor.execute("CREATE OR REPLACE TASK STRICT_CHILD AFTER STRICT_ROOT AS SELECT 1")
    cursor.execute("ALTER TASK STRICT_CHILD RESUME")
    cursor.execute("ALTER TASK STRICT_ROOT RESUME")
    try:
        err = refused(cursor, "CREATE OR REPLACE TASK STRICT_CHILD AFTER STRICT_ROOT AS SELECT 2")
        assert "Unable to update graph with root task STRICT_ROOT since that root task is not suspended." in err.msg
    finally:
        cursor.execute("ALTER TASK STRICT_ROOT SUSPEND")
    cursor.execute("CREATE OR REPLACE TASK STRICT_CHILD AFTER STRICT_ROOT AS SELECT 2")


def test_every_statement_reaches_the_log_with_its_outcome(cursor, local_stack: LocalStack) -> None:
    marker = "SELECT 'strict-layer-log-marker' AS M"
    cursor.execute(marker)
    refused(cursor, "SELECT c.K FROM C AS c WHERE c.K = 1 OR c.P IN (SELECT p.ID FROM P AS p WHERE p.ID = c.P)")
    entries = [json.loads(line) for line in local_stack.statement_log.read_text().splitlines()]
    ran = [e for e in entries if e["sql"] == marker]
    assert ran and ran[-1]["ok"] is True
    assert isinstance(ran[-1]["ms"], float) and ran[-1]["ms"] >= 0  # where a local cycle spends its time
    assert entries[-1]["ok"] is False and "c.P IN (SELECT" in entries[-1]["sql"]
