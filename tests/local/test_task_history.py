"""The local emulation of Snowflake's task record: the SQL that reads INFORMATION_SCHEMA.TASK_HISTORY(...) and
SNOWFLAKE.ACCOUNT_USAGE.TASK_HISTORY on Snowflake reads the graph player's rows locally, arguments applied as
https://docs.snowflake.com/en/sql-reference/functions/task_history documents them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlglot

from finsight import warehouse
from finsight.config import Environment
from finsight.local import task_history as emulation
from finsight.local.stack import LocalStack


def test_the_table_function_becomes_a_subquery_over_the_emulation() -> None:
    sql = emulation.rewrite_sql(
        "SELECT NAME FROM TABLE(FINSIGHT.INFORMATION_SCHEMA.TASK_HISTORY(RESULT_LIMIT => 5, TASK_NAME => 'm', "
        "ERROR_ONLY => TRUE, SCHEDULED_TIME_RANGE_START => DATEADD('day', -1, CURRENT_TIMESTAMP()))) AS h"
    )
    tree = sqlglot.parse_one(sql, read="snowflake")
    (table,) = list(tree.find_all(sqlglot.exp.Table))
    assert (table.catalog, table.db, table.name) == ("FINSIGHT", emulation.SCHEMA, emulation.TABLE)
    assert "LIMIT 5" in sql and "UPPER(NAME) = UPPER('m')" in sql and "SCHEDULED_TIME >= DATEADD" in sql
    assert "STATE IN ('FAILED', 'CANCELLED', 'FAILED_AND_AUTO_SUSPENDED')" in sql and ") AS h" in sql
    assert "LIMIT 100" in emulation.rewrite_sql("SELECT * FROM TABLE(INFORMATION_SCHEMA.TASK_HISTORY())")  # default


def test_the_account_usage_view_holds_completed_runs_only() -> None:
    sql = emulation.rewrite_sql("SELECT NAME FROM SNOWFLAKE.ACCOUNT_USAGE.TASK_HISTORY WHERE STATE = 'FAILED'")
    assert f"FROM {emulation.SCHEMA}.{emulation.TABLE} WHERE STATE IN ('SUCCEEDED'," in sql
    assert "'EXECUTING'" not in sql and "'SCHEDULED'" not in sql


@pytest.mark.parametrize(
    ("call", "error"),
    [("TASK_HISTORY(NO_SUCH => 1)", "no argument NO_SUCH"), ("TASK_HISTORY(RESULT_LIMIT => 10001)", "1 to 10000"),
     ("TASK_HISTORY(5)", "named arguments")],
)  # fmt: skip
def test_arguments_snowflake_refuses_are_refused(call: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        emulation.rewrite_sql(f"SELECT * FROM TABLE(INFORMATION_SCHEMA.{call})")


def test_other_task_history_names_are_left_alone() -> None:
    sql = "SELECT NAME FROM OPS.TASK_HISTORY"
    assert emulation.rewrite_sql(sql) == sql


@pytest.mark.stack
def test_the_same_sql_reads_the_player_rows_on_the_local_warehouse(
    local_env: Environment, local_stack: LocalStack
) -> None:
    database = local_env.snowflake.database
    group = f"test-emulation-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).replace(tzinfo=None)
    old = now - timedelta(days=9)  # older than the function's 7 days: outside any range we ask for
    with warehouse.connect(local_env) as conn:
        cur = conn.cursor()
        for sql in emulation.create_statements(database, local_env.snowflake.schemas["ops"]):
            cur.execute(sql)
        for name, state, at in (("T_A", "SUCCEEDED", now), ("T_B", "FAILED", now), ("T_A", "FAILED", old)):
            row = {"name": name, "state": state, "scheduled_time": at, "attempt_number": 1, "run_id": 1,
                   "graph_run_group_id": group}  # fmt: skip
            cur.execute(emulation.insert_statement(database, row))
        function = (f"TABLE({database}.INFORMATION_SCHEMA.TASK_HISTORY(SCHEDULED_TIME_RANGE_START => "
                    "DATEADD('day', -6, CURRENT_TIMESTAMP()), {extra}))")  # fmt: skip
        where = f"WHERE GRAPH_RUN_GROUP_ID = '{group}' ORDER BY NAME"
        rows = cur.execute(f"SELECT NAME, STATE FROM {function.format(extra='RESULT_LIMIT => 10000')} {where}")
        assert rows.fetchall() == [("T_A", "SUCCEEDED"), ("T_B", "FAILED")]
        errors = function.format(extra="ERROR_ONLY => TRUE, TASK_NAME => 't_b'")
        assert cur.execute(f"SELECT NAME FROM {errors} {where}").fetchall() == [("T_B",)]
        view = f"SELECT COUNT(*) FROM SNOWFLAKE.ACCOUNT_USAGE.TASK_HISTORY WHERE GRAPH_RUN_GROUP_ID = '{group}'"
        assert cur.execute(view).fetchone()[0] == 3  # 365 days: the old run too
