"""Each Snowflake rule refuses what Snowflake refuses and passes what it accepts, through `Statement.check` (the
RULES the local server and `finsight sql check` run): removing a rule from RULES turns its tests red."""

from __future__ import annotations

import pytest

from finsight.conformance.model import Model
from finsight.conformance.rules import RULES, Statement, Violation


def rules_broken(sql: str, model: Model | None = None, following: list[str] | None = None) -> list[str]:
    return [v.rule for v in Statement(sql, model or Model(), following).check()]


def run(model: Model, *statements: str) -> Model:
    for sql in statements:
        assert not rules_broken(sql, model), sql
        model.observe(sql)
    return model


# -- correlated subqueries (docs: Working with subqueries) -------------------------------------------------------
@pytest.mark.parametrize(
    "sql",
    [
        # the old MERGE source: NOT EXISTS under OR
        "SELECT s.K FROM RAW.T AS s WHERE s._BATCH_ID IN ('b') AND (s._OP = 'D' OR NOT EXISTS "
        "(SELECT 1 FROM OPS.T__TOMBSTONES AS d WHERE d.K = s.K AND d._EXTRACTED_AT >= s._EXTRACTED_AT))",
        # the old RI check: EXISTS in a CASE of the select list
        "SELECT SUM(CASE WHEN EXISTS (SELECT 1 FROM RAW.P AS r WHERE r.ID = c.P_ID) THEN 0 ELSE 1 END) "
        "FROM CURATED.C AS c WHERE c.P_ID IS NOT NULL",
        # a correlated scalar subquery in the select list
        "SELECT (SELECT MAX(p.V) FROM CURATED.P AS p WHERE p.ID = c.P_ID) FROM CURATED.C AS c",
        # in a JOIN condition
        "SELECT 1 FROM A AS a JOIN B AS b ON a.K = b.K AND EXISTS (SELECT 1 FROM C AS c WHERE c.K = a.K)",
        # inside a MERGE's source and its WHEN condition
        "MERGE INTO CURATED.T AS tgt USING (SELECT s.K FROM RAW.T AS s WHERE s.X = 1 OR s.K IN "
        "(SELECT d.K FROM OPS.D AS d WHERE d.B = s.B)) AS src ON tgt.K = src.K WHEN MATCHED THEN DELETE",
    ],
)
def test_correlated_subquery_outside_where_or_under_or_is_refused(sql: str) -> None:
    found = Statement(sql, Model()).check()
    assert [v.rule for v in found] == ["correlated-subquery"]
    assert found[0].message.startswith("SQL compilation error: Unsupported subquery type cannot be evaluated")
    assert found[0].docs.endswith("/user-guide/querying-subqueries")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT c.K FROM CURATED.C AS c WHERE c.X > 1 AND NOT EXISTS (SELECT 1 FROM P AS p WHERE p.ID = c.P_ID)",
        "DELETE FROM CURATED.T AS h WHERE h.D < '2020-01-01' AND EXISTS (SELECT 1 FROM A AS a WHERE a.K = h.K)",
        "SELECT a.K FROM A AS a WHERE a.V > (SELECT MAX(b.V) FROM B AS b WHERE b.K = a.K)",
        # uncorrelated subqueries may stand anywhere, OR included
        "SELECT K FROM T WHERE X = 1 OR K IN (SELECT K FROM U WHERE F = 'y')",
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM U) THEN 1 END FROM T",
        # anti-join form of the MERGE source
        "SELECT s.K FROM RAW.T AS s LEFT JOIN (SELECT d.K, MAX(d.E) AS E FROM OPS.D AS d GROUP BY d.K) AS d "
        "ON d.K = s.K WHERE s._OP = 'D' OR d.K IS NULL OR d.E < s.E",
    ],
)
def test_what_snowflake_evaluates_passes(sql: str) -> None:
    assert rules_broken(sql) == []


# -- tasks of a started graph (docs: task graphs) ------------------------------------------------------------------
ROOT = "CREATE OR REPLACE TASK OPS.ROOT WAREHOUSE = WH SCHEDULE = '60 MINUTE' COMMENT = 'runs after MERGE' AS SELECT 1"
CHILD = "CREATE OR REPLACE TASK OPS.CHILD WAREHOUSE = WH AFTER OPS.ROOT AS CALL OPS.P()"
GRANDCHILD = "CREATE OR REPLACE TASK OPS.GRANDCHILD AFTER OPS.CHILD AS CALL OPS.P()"
FINALIZER = "CREATE OR REPLACE TASK OPS.FIN WAREHOUSE = WH FINALIZE = OPS.ROOT AS CALL OPS.F()"


def started_graph() -> Model:
    return run(Model(), ROOT, CHILD, GRANDCHILD, FINALIZER, "ALTER TASK OPS.CHILD RESUME", "ALTER TASK OPS.ROOT RESUME")


@pytest.mark.parametrize(
    "sql",
    [ROOT, CHILD, GRANDCHILD, FINALIZER, "ALTER TASK OPS.GRANDCHILD SET WAREHOUSE = WH2",
     "ALTER TASK OPS.CHILD MODIFY AS CALL OPS.Q()", "CREATE TASK OPS.NEW AFTER OPS.GRANDCHILD AS SELECT 1"],
)  # fmt: skip
def test_changing_a_task_of_a_started_graph_is_refused(sql: str) -> None:
    found = Statement(sql, started_graph()).check()
    assert [v.rule for v in found] == ["task-graph-started"]
    assert found[0].message == "Unable to update graph with root task ROOT since that root task is not suspended."


def test_a_suspended_root_lets_the_graph_change_and_dependents_enable_starts_it() -> None:
    model = run(
        started_graph(), "ALTER TASK IF EXISTS OPS.ROOT SUSPEND", CHILD, GRANDCHILD, "ALTER TASK OPS.CHILD RESUME"
    )
    assert rules_broken("ALTER TASK OPS.GRANDCHILD SUSPEND", model) == []  # state changes are not updates
    run(model, "SELECT SYSTEM$TASK_DEPENDENTS_ENABLE('OPS.ROOT')")
    assert rules_broken(GRANDCHILD, model) == ["task-graph-started"]


def test_an_unrelated_graph_is_not_held_by_another_started_root() -> None:
    model = run(started_graph(), "CREATE OR REPLACE TASK OPS.OTHER SCHEDULE = '1 MINUTE' AS SELECT 1")
    assert rules_broken("CREATE OR REPLACE TASK OPS.OTHER_CHILD AFTER OPS.OTHER AS SELECT 1", model) == []


# -- bodies that must track the code ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sql",
    ["CREATE VIEW IF NOT EXISTS MARTS.V AS SELECT 1 AS X", "CREATE SECURE VIEW IF NOT EXISTS H.V AS SELECT 1 AS X",
     "CREATE FUNCTION IF NOT EXISTS OPS.F() RETURNS INT AS '1'", "CREATE TASK IF NOT EXISTS OPS.T AS SELECT 1"],
)  # fmt: skip
def test_if_not_exists_on_a_body_is_refused(sql: str) -> None:
    assert rules_broken(sql) == ["body-tracks-code"]


POLICY = "CREATE ROW ACCESS POLICY IF NOT EXISTS G.ENTITLED AS (key NUMBER) RETURNS BOOLEAN -> TRUE"


def test_a_policy_created_if_not_exists_must_have_its_body_set_in_the_same_script() -> None:
    assert rules_broken(POLICY, following=["GRANT USAGE ON SCHEMA G TO ROLE R"]) == ["body-tracks-code"]
    assert rules_broken(POLICY, following=["ALTER ROW ACCESS POLICY G.ENTITLED SET BODY -> FALSE"]) == []
    # another policy's body does not count
    assert rules_broken(POLICY, following=["ALTER ROW ACCESS POLICY G.OTHER SET BODY -> FALSE"]) == ["body-tracks-code"]
    # a single statement from a session: the script is unknown, no verdict
    assert rules_broken(POLICY) == []


def test_tables_streams_and_pipes_may_be_created_if_not_exists() -> None:
    for sql in ["CREATE TABLE IF NOT EXISTS RAW.T (A NUMBER)", "CREATE STREAM IF NOT EXISTS OPS.S ON TABLE OPS.T",
                "CREATE PIPE IF NOT EXISTS RAW.P AS COPY INTO RAW.T FROM @RAW.LANDING/x/"]:  # fmt: skip
        assert rules_broken(sql, following=[]) == []


# -- column type changes (docs: ALTER TABLE … ALTER COLUMN) -----------------------------------------------------------
def typed_table() -> Model:
    return run(Model(), "CREATE TABLE IF NOT EXISTS FINSIGHT.CURATED.T (AMOUNT NUMBER(10,2), NAME VARCHAR(20), D DATE)")


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("ALTER TABLE FINSIGHT.CURATED.T ALTER COLUMN AMOUNT SET DATA TYPE NUMBER(12, 4)", "changing the scale"),
        ("ALTER TABLE CURATED.T ALTER COLUMN AMOUNT SET DATA TYPE NUMBER(8, 2)", "decreasing the precision"),
        ("ALTER TABLE CURATED.T MODIFY COLUMN D SET DATA TYPE TIMESTAMP_NTZ", "changing the type"),
    ],
)
def test_column_changes_snowflake_refuses(sql: str, why: str) -> None:
    found = Statement(sql, typed_table()).check()
    assert [v.rule for v in found] == ["column-type-change"]
    assert (why in found[0].message and "NUMBER(10,2)" in found[0].message) or "DATE" in found[0].message


def test_growing_a_precision_or_a_length_is_accepted_and_remembered() -> None:
    model = typed_table()
    run(model, "ALTER TABLE CURATED.T ALTER COLUMN AMOUNT SET DATA TYPE NUMBER(14, 2)")
    run(model, "ALTER TABLE CURATED.T ALTER COLUMN NAME SET DATA TYPE VARCHAR(200)")
    # the model now holds NUMBER(14,2): going back to 12 is a decrease
    assert rules_broken("ALTER TABLE CURATED.T ALTER COLUMN AMOUNT SET DATA TYPE NUMBER(12, 2)", model) == [
        "column-type-change"
    ]


def test_an_unknown_column_gets_no_verdict() -> None:
    assert rules_broken("ALTER TABLE CURATED.X ALTER COLUMN A SET DATA TYPE NUMBER(12, 4)") == []


def test_every_rule_is_run_and_reports_a_docs_page() -> None:
    names = {r.__name__ for r in RULES}
    assert {
        "correlated_subquery_placement",
        "task_of_started_graph",
        "body_tracks_code",
        "column_type_change",
        "dmf_argument_types",
        "dmf_grants",
    } <= names
    for rule in RULES:
        assert rule.__doc__ and "docs" in rule.__doc__, rule.__name__
    assert all(isinstance(v, Violation) for v in Statement(CHILD, started_graph()).check())


# -- data metric functions (docs: system DMFs, access control for data quality) ----------------------------------------
DMF_TABLE = (
    "CREATE TABLE IF NOT EXISTS DB.CURATED.CHARGES (PAID BOOLEAN, AT TIMESTAMP_NTZ, D DATE, AMOUNT NUMBER(18,2))"
)
GRANTS = ("GRANT DATABASE ROLE SNOWFLAKE.DATA_METRIC_USER TO ROLE PIPELINE",
          "GRANT EXECUTE DATA METRIC FUNCTION ON ACCOUNT TO ROLE PIPELINE")  # fmt: skip


def dmf_model(*grants: str) -> Model:
    return run(Model(owner_role="PIPELINE"), DMF_TABLE, *grants)


def attach(dmf: str, column: str) -> str:
    return (
        "EXECUTE IMMEDIATE $$\nBEGIN\n    ALTER TABLE DB.CURATED.CHARGES ADD DATA METRIC FUNCTION "
        f"{dmf} ON ({column});\nEXCEPTION\n    WHEN OTHER THEN RAISE;\nEND;\n$$"
    )


@pytest.mark.parametrize(
    ("dmf", "column"),
    [("SNOWFLAKE.CORE.FRESHNESS", "AT"), ("SNOWFLAKE.CORE.NULL_COUNT", "PAID"), ("SNOWFLAKE.CORE.FRESHNESS", "AMOUNT")],
)
def test_a_system_dmf_refuses_a_column_type_its_page_does_not_list(dmf: str, column: str) -> None:
    found = Statement(attach(dmf, column), dmf_model(*GRANTS)).check()
    assert [v.rule for v in found] == ["dmf-argument-type"]
    assert f"'{dmf}'" in found[0].message and column in found[0].message


@pytest.mark.parametrize(
    ("dmf", "column"),
    [("SNOWFLAKE.CORE.FRESHNESS", "D"), ("SNOWFLAKE.CORE.NULL_COUNT", "AT"), ("SNOWFLAKE.CORE.NULL_COUNT", "AMOUNT"),
     ("OPS.FRESHNESS_NTZ_V1", "AT")],  # a custom DMF declares its own argument type
)  # fmt: skip
def test_accepted_dmf_types_pass(dmf: str, column: str) -> None:
    assert rules_broken(attach(dmf, column), dmf_model(*GRANTS)) == []


def test_attaching_a_system_dmf_needs_both_owner_grants() -> None:
    sql = attach("SNOWFLAKE.CORE.NULL_COUNT", "AMOUNT")
    assert rules_broken(sql, dmf_model()) == ["dmf-grants"]
    (only_one,) = Statement(sql, dmf_model(GRANTS[0])).check()
    assert "EXECUTE DATA METRIC FUNCTION ON ACCOUNT" in only_one.message
    assert rules_broken(sql, dmf_model(*GRANTS)) == []
    # another role acting (USE ROLE) does not hold the owner's grants
    assert rules_broken(sql, run(dmf_model(*GRANTS), "USE ROLE GOVERNANCE")) == ["dmf-grants"]
