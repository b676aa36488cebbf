"""finsight/local/column_policies.py without a server: what it learns, how it rewrites reads, and what it refuses.

The stack tests (tests/warehouse/test_column_policies.py) run the same module inside the local Snowflake.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from finsight.conformance.model import Model
from finsight.local.column_policies import Policies, PolicyError

POLICY = (
    "CREATE MASKING POLICY IF NOT EXISTS DB.GOVERNANCE.PII_MASK AS (val VARCHAR) -- noqa: LT01\nRETURNS VARCHAR ->\n"
    "CASE WHEN CURRENT_ROLE() = 'PII' OR INVOKER_ROLE() = 'ARCHIVER' THEN val ELSE '***MASKED***' END"
)
ATTACH = "ALTER TABLE DB.CURATED.CUST MODIFY COLUMN EMAIL\nSET MASKING POLICY DB.GOVERNANCE.PII_MASK FORCE"


@pytest.fixture
def duck() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA CURATED")
    con.execute("CREATE TABLE CURATED.CUST (ID INT, EMAIL VARCHAR)")
    con.execute("INSERT INTO CURATED.CUST VALUES (1, 'a@example.com')")
    return con


def _policies(tmp_path: Path, model: Model | None = None) -> Policies:
    p = Policies(state_path=tmp_path / "state.json", model=model or Model())
    p.learn(POLICY)
    p.learn(ATTACH)
    return p


def _run(duck: duckdb.DuckDBPyConnection, p: Policies, sql: str, role: str) -> list[tuple]:
    return duck.execute(p.apply(sql, role).replace("DB.", "")).fetchall()


@pytest.mark.parametrize(
    ("role", "email"),
    [("PII", "a@example.com"), ("ARCHIVER", "a@example.com"), ("FINSIGHT_PIPELINE", "***MASKED***")],
)
def test_a_read_sees_what_its_role_sees(tmp_path: Path, duck: duckdb.DuckDBPyConnection, role: str, email: str) -> None:
    p = _policies(tmp_path)
    assert _run(duck, p, "SELECT c.EMAIL FROM CURATED.CUST AS c WHERE c.ID = 1", role) == [(email,)]
    # predicates read the masked value too, and so do INSERT ... SELECT and CTAS
    assert _run(duck, p, "SELECT COUNT(*) FROM CURATED.CUST WHERE EMAIL = 'a@example.com'", role) == [
        (int(email != "***MASKED***"),)
    ]
    duck.execute(p.apply("CREATE TABLE CURATED.COPY AS SELECT * FROM CURATED.CUST", role))
    assert duck.execute("SELECT EMAIL FROM CURATED.COPY").fetchall() == [(email,)]


def test_is_role_in_session_follows_the_granted_hierarchy(tmp_path: Path) -> None:
    model = Model()
    model.grant("ANALYST_PLUS", "ROLE PII")
    p = Policies(model=model)
    p.learn(POLICY.replace("CURRENT_ROLE() = 'PII'", "IS_ROLE_IN_SESSION('PII')"))
    p.learn(ATTACH)
    assert "TRUE" in p.apply("SELECT EMAIL FROM CURATED.CUST", "ANALYST_PLUS")
    assert "FALSE" in p.apply("SELECT EMAIL FROM CURATED.CUST", "ANALYST")


def test_state_survives_a_restart_and_replace_drops_the_policies(tmp_path: Path) -> None:
    _policies(tmp_path)
    again = Policies(state_path=tmp_path / "state.json")
    assert "***MASKED***" in again.apply("SELECT EMAIL FROM CURATED.CUST", "X")
    again.learn("CREATE OR REPLACE TABLE CURATED.CUST (ID INT, EMAIL VARCHAR)")  # Snowflake drops them with it
    assert again.apply("SELECT EMAIL FROM CURATED.CUST", "X") == "SELECT EMAIL FROM CURATED.CUST"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE CURATED.CUST SET EMAIL = 'x' WHERE EMAIL = 'y'",
        "MERGE INTO CURATED.CUST AS t USING S AS s ON t.ID = s.ID WHEN MATCHED AND t.EMAIL <> s.EMAIL "
        "THEN UPDATE SET EMAIL = s.EMAIL",
    ],
)
def test_a_protected_column_read_by_a_dml_condition_is_refused(tmp_path: Path, sql: str) -> None:
    with pytest.raises(PolicyError, match="EMAIL has a masking policy"):
        _policies(tmp_path).apply(sql, "X")


def test_what_it_cannot_apply_is_refused_not_run_unmasked(tmp_path: Path) -> None:
    p = _policies(tmp_path)
    p.learn("ALTER TABLE CURATED.CUST MODIFY COLUMN ID SET MASKING POLICY GOVERNANCE.UNKNOWN")
    with pytest.raises(PolicyError, match="not known"):
        p.apply("SELECT ID FROM CURATED.CUST", "X")
    with pytest.raises(PolicyError, match="row access"):
        p.refuse("ALTER TABLE CURATED.CUST ADD ROW ACCESS POLICY GOVERNANCE.R ON (ID)")
    views = Policies(model=Model(), views=lambda: [("HISTORY.CUST", "SELECT * FROM CURATED.CUST")])
    views.learn(POLICY)
    views.learn(ATTACH)
    with pytest.raises(PolicyError, match="view over a table with masking policies"):
        views.apply("SELECT EMAIL FROM HISTORY.CUST", "X")
    odd = Policies()
    odd.learn(POLICY.replace("CURRENT_ROLE() = 'PII'", "IS_GRANTED_TO_INVOKER_ROLE('PII')"))
    odd.learn(ATTACH)
    with pytest.raises(PolicyError, match="IS_GRANTED_TO_INVOKER_ROLE"):
        odd.apply("SELECT EMAIL FROM CURATED.CUST", "X")


def test_an_unqualified_name_is_the_session_schemas_object(tmp_path: Path, duck: duckdb.DuckDBPyConnection) -> None:
    """Snowflake resolves an unqualified name in the session's current schema: the protected CURATED.CUST is masked
    when CURATED is current, and a RAW.CUST of the same name is not mistaken for it (nor for a view over it)."""
    p = _policies(tmp_path)
    duck.execute("CREATE SCHEMA RAW")
    duck.execute("CREATE TABLE RAW.CUST (ID INT, EMAIL VARCHAR)")
    duck.execute("INSERT INTO RAW.CUST VALUES (1, 'raw@example.com')")
    duck.execute("SET schema = 'CURATED'")
    masked = p.apply("SELECT EMAIL FROM CUST", "FINSIGHT_PIPELINE", "CURATED")
    assert duck.execute(masked).fetchall() == [("***MASKED***",)]
    assert p.apply("SELECT EMAIL FROM CUST", "FINSIGHT_PIPELINE", "RAW") == "SELECT EMAIL FROM CUST"


def test_a_view_created_after_the_views_were_read_is_still_refused_unmasked(
    tmp_path: Path, duck: duckdb.DuckDBPyConnection
) -> None:
    """The server's layer reads the warehouse's views once per schema change, not per statement: a view over a
    protected table created (or dropped) through the server is seen by the next statement. Without `saw` on the
    DDL, the stale list lets a read through the new view run unmasked."""
    from finsight.local.snowflake_strict import StrictLayer

    layer = StrictLayer(tmp_path, owner_role=None, statement_log=None, duck=duck)
    for ddl in (POLICY, ATTACH):
        layer.learn(ddl, ok=True)
    layer.masked("SELECT ID FROM CURATED.CUST", "X")  # reads (and keeps) the views: none yet
    assert "CUST_V" not in layer.policies._protected_names()
    view = "CREATE VIEW CURATED.CUST_V AS SELECT * FROM CURATED.CUST"
    duck.execute(view)
    layer.learn(view, ok=True)
    with pytest.raises(Exception, match="view over a table with masking policies"):
        layer.masked("SELECT EMAIL FROM CURATED.CUST_V", "X")
    duck.execute("DROP VIEW CURATED.CUST_V")
    layer.learn("-- schemachange keeps comments\nDROP VIEW CURATED.CUST_V", ok=True)
    assert "CUST_V" not in layer.policies._protected_names()  # the dropped view no longer counts


def test_names_are_matched_as_whole_words() -> None:
    from finsight.local.column_policies import _names_any

    assert _names_any("select * from curated.cust c", {"CUST", "ORDERS"})
    assert not _names_any("SELECT * FROM CURATED.CUSTOMERS", {"CUST"})
    assert not _names_any("SELECT * FROM RAW.CUST__PKS", frozenset({"CUST"}))
    assert not _names_any("SELECT 1", set())


def test_a_view_list_read_while_a_ddl_ran_is_used_once_never_kept(duck: duckdb.DuckDBPyConnection) -> None:
    """The server runs sessions on several threads: a view created between the lister's read and its keeping the
    result must show on the next statement (kept stale, reads through the new view would never be masked)."""
    from finsight.local.snowflake_strict import _ViewLister

    view = "CREATE VIEW CURATED.LATE AS SELECT * FROM CURATED.CUST"

    class DdlDuringRead:
        """DuckDB, with another session's CREATE VIEW landing just after the lister's query read the views."""

        def cursor(self) -> DdlDuringRead:
            return self

        def execute(self, sql: str) -> DdlDuringRead:
            self.rows = duck.execute(sql).fetchall()
            return self

        def fetchall(self) -> list[tuple]:
            duck.execute(view)
            lister.saw(view)
            return self.rows

    lister = _ViewLister(DdlDuringRead())
    assert "CURATED.LATE" not in dict(lister())  # read before the DDL: used for the statement that asked
    lister._duck = duck  # no more DDL
    assert "CURATED.LATE" in dict(lister())
