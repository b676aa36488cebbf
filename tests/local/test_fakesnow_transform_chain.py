"""fakesnow's per-statement rewrite chain copies the statement once (finsight.local.fakesnow_compat), same SQL out.

In-process fakesnow (no server): what is measured is the rewrite of one statement, which the server does the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fakesnow
import fakesnow.cursor
import fakesnow.instance
import pytest
import snowflake.connector
import sqlglot
from sqlglot.expressions.core import Expression

from finsight.local import fakesnow_chain_cache, fakesnow_compat

STATEMENTS = (
    # the shape of the CURATED MERGE (finsight.warehouse): dedup window over RAW, deletes, updates, inserts
    """MERGE INTO CURATED.PAYMENTS t USING (
         SELECT * FROM RAW.PAYMENTS QUALIFY ROW_NUMBER() OVER (PARTITION BY ID ORDER BY _READ_AT DESC) = 1
       ) s ON t.ID = s.ID AND t.CREATED_AT >= '2026-01-01'::DATE
       WHEN MATCHED AND s._DELETED THEN DELETE
       WHEN MATCHED THEN UPDATE SET t.AMOUNT = s.AMOUNT, t._RAW = PARSE_JSON(s.PAYLOAD):card::VARCHAR
       WHEN NOT MATCHED AND NOT s._DELETED THEN INSERT (ID, AMOUNT) VALUES (s.ID, s.AMOUNT)""",
    "SELECT OBJECT_CONSTRUCT('a', 1), TO_DATE('2026-01-02'), DATEADD(day, 1, '2026-01-01') FROM RAW.PAYMENTS",
    "CREATE TABLE IF NOT EXISTS OPS.RUNS (ID NUMBER(38, 0), AT TIMESTAMP_NTZ, PAYLOAD VARIANT)",
    # answered by fakesnow's shared SUCCESS_NOP tree, early and late in the chain
    "USE WAREHOUSE FINSIGHT_WH",
    "ALTER TABLE CURATED.PAYMENTS CLUSTER BY (CREATED_AT)",
    "SHOW TABLES IN SCHEMA RAW",
)


@pytest.fixture(scope="module")
def cursor() -> Iterator[Any]:
    fakesnow_compat.apply()
    with fakesnow.patch(), snowflake.connector.connect(database="FINSIGHT", schema="RAW") as conn:
        cur = conn.cursor()
        cur.execute("CREATE SCHEMA IF NOT EXISTS CURATED")
        cur.execute("CREATE SCHEMA IF NOT EXISTS OPS")
        yield cur


def _root_copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts deep copies of whole statement trees (a copy of a subtree inside a rewrite is not counted)."""
    counted: list[int] = []
    original = Expression.copy

    def copy(self: Expression) -> Expression:
        if self.parent is None:
            counted.append(1)
        return original(self)

    monkeypatch.setattr(Expression, "copy", copy)
    return counted


@pytest.mark.parametrize("sql", STATEMENTS, ids=lambda s: s.split()[0])
def test_the_chain_copies_each_statement_a_bounded_number_of_times(cursor: Any, sql: str, monkeypatch) -> None:
    counted = _root_copies(monkeypatch)
    cursor._transform(sqlglot.parse_one(sql, read="snowflake"), None)
    # fakesnow's own chain makes one copy per link (~75); the compat makes one for the whole chain
    assert 1 <= len(counted) <= 5, f"{len(counted)} whole-tree copies for one statement"


@pytest.mark.parametrize("sql", STATEMENTS, ids=lambda s: s.split()[0])
def test_the_chain_rewrites_to_the_same_sql_and_leaves_its_input_alone(cursor: Any, sql: str) -> None:
    patched = fakesnow.cursor.FakeSnowflakeCursor._transform
    original = patched.__wrapped__  # fakesnow's own chain, one copy per link
    statement = sqlglot.parse_one(sql, read="snowflake")
    before = statement.sql(dialect="snowflake")
    fast = patched(cursor, statement, None).sql(dialect="duckdb")
    assert statement.sql(dialect="snowflake") == before, "the chain rewrote its caller's tree"
    assert fast == original(cursor, sqlglot.parse_one(sql, read="snowflake"), None).sql(dialect="duckdb")


def test_success_nop_is_never_rewritten_in_place(cursor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link after the one answering the shared SUCCESS_NOP tree rewrites what it is given in place."""
    shared = fakesnow.transforms.SUCCESS_NOP.sql()

    def renames_aliases(node: Expression) -> Expression:
        if isinstance(node, sqlglot.exp.Alias):
            node.set("alias", sqlglot.exp.to_identifier("REWRITTEN"))
        return node

    monkeypatch.setattr(fakesnow.transforms, "tag", renames_aliases)  # a link well after `update_variables`
    out = cursor._transform(sqlglot.parse_one("SET BATCH_ID = 1", read="snowflake"), None)
    assert "REWRITTEN" in out.sql(), "the link did not run on the SUCCESS_NOP answer"
    assert fakesnow.transforms.SUCCESS_NOP.sql() == shared


def test_a_transform_outside_the_chain_still_copies() -> None:
    fakesnow_compat.apply()
    tree = sqlglot.parse_one("SELECT a FROM t")
    out = tree.transform(lambda n: sqlglot.exp.column("b") if isinstance(n, sqlglot.exp.Column) else n)
    assert tree.sql() == "SELECT a FROM t" and out.sql() == "SELECT b FROM t"


RESULT_TYPED = (
    "CREATE OR REPLACE TABLE OPS.TYPED (ID NUMBER(38, 0), AMOUNT NUMBER(18, 2), NAME VARCHAR, TS TIMESTAMP_NTZ, "
    "TZ TIMESTAMP_TZ, D DATE, OK BOOLEAN, F FLOAT, V VARIANT)",
    "INSERT INTO OPS.TYPED (ID, AMOUNT, NAME, TS, D, OK, F) VALUES (1, 2.5, 'a', '2026-01-01', '2026-01-01', TRUE, 1)",
    "SELECT *, COUNT(*) OVER () AS N, NULL AS NOTHING, OBJECT_CONSTRUCT('k', ID) AS O FROM OPS.TYPED",
    "UPDATE OPS.TYPED SET NAME = 'b' WHERE ID = 1",
    "MERGE INTO OPS.TYPED t USING (SELECT 2 AS ID) s ON t.ID = s.ID WHEN NOT MATCHED THEN INSERT (ID) VALUES (s.ID)",
    "DELETE FROM OPS.TYPED WHERE ID = 2",
    "SHOW TABLES IN SCHEMA OPS",
    "DESCRIBE TABLE OPS.TYPED",
)


@pytest.mark.parametrize("statement", RESULT_TYPED)
def test_a_result_is_typed_from_the_statement_run_not_from_a_second_describe(cursor: Any, statement: str) -> None:
    """The server types each result (rowtype) from DuckDB's description of the statement it just ran; fakesnow's own
    way, DESCRIBE of the last SQL, parses and binds it again (~3 ms a statement). Both must give the same rows."""
    cursor.execute(RESULT_TYPED[0])
    cursor.execute(statement)
    kept = cursor._finsight_result_columns
    assert kept is not None, "the result's columns were not kept: every statement is described a second time"
    cursor._finsight_result_columns = None  # fakesnow's DESCRIBE of the last SQL
    assert cursor._describe_last_sql() == kept


def test_the_local_snowflake_parses_with_compiled_sqlglot() -> None:
    """Every statement the local Snowflake answers is parsed, rewritten and generated by sqlglot three times over
    (fakesnow's server, its cursor, our strict layer): about two thirds of its CPU in a steady hour. The compiled
    build (sqlglotc, pinned in pyproject.toml) does that about 3x faster than the pure-Python one, which is what keeps
    the steady hourly cycle inside its target on one machine. Red when the pin is dropped from the lock."""
    from sqlglot import parser, tokens

    assert tokens.SQLGLOTC_INSTALLED, "sqlglot's tokenizer is the pure-Python one: sqlglotc is not installed"
    assert not parser.__file__.endswith(".py"), f"sqlglot's parser is not the compiled one: {parser.__file__}"


def test_the_server_keeps_only_the_newest_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """fakesnow stores every statement's result for RESULT_SCAN, for ever; the compat keeps the newest
    RESULTS_KEPT. A recent result still scans back; one past the bound is gone as Snowflake reports an expired one.
    Red without the bound: the store holds every statement run."""
    fakesnow_compat.apply()
    monkeypatch.setattr(fakesnow_compat, "RESULTS_KEPT", 5)
    instance = fakesnow.instance.FakeSnow()
    assert isinstance(instance.results_cache, fakesnow_compat.RecentResults)
    conn = instance.connect("FINSIGHT", "RAW")
    cur = conn.cursor()
    ids = []
    for i in range(12):
        cur.execute(f"SELECT {i} AS N")
        ids.append(cur.sfqid)
    assert len(instance.results_cache) == 5 and list(instance.results_cache) == ids[-5:]
    assert cur.execute(f"SELECT * FROM TABLE(RESULT_SCAN('{ids[-1]}'))").fetchall() == [(11,)]
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="not found"):
        cur.execute(f"SELECT * FROM TABLE(RESULT_SCAN('{ids[0]}'))")


def test_a_temporary_table_leaves_no_row_in_the_shared_table_comment_store(cursor: Any) -> None:
    """fakesnow records every CREATE TABLE's comment, NULL included, in one store all sessions share: two sessions
    creating a temporary table of the same name collided at commit (a duplicate key; fakesnow's own MERGE did so with
    its MERGE_CANDIDATES). A comment on a real table is still recorded. Red without the compat: the store holds
    (FINSIGHT, RAW, SCRATCH_T)."""
    cursor.execute("CREATE OR REPLACE TEMPORARY TABLE SCRATCH_T (ID NUMBER)")
    cursor.execute("CREATE OR REPLACE TABLE SOURCE_T (ID NUMBER, V VARCHAR) COMMENT = 'the source'")
    stored = cursor._duck_conn.execute(
        "SELECT ext_table_name, comment FROM _fs_global._fs_information_schema._fs_tables_ext "
        "WHERE ext_table_name IN ('SCRATCH_T', 'SOURCE_T')"
    ).fetchall()
    assert stored == [("SOURCE_T", "the source")]


MERGE_ALL_THREE = (
    "MERGE INTO TARGET_M AS t USING (SELECT * FROM SOURCE_M) AS s ON t.ID = s.ID AND t.ID BETWEEN 1 AND 9 "
    "WHEN MATCHED AND s.GONE THEN DELETE "
    "WHEN MATCHED AND s.V > t.V THEN UPDATE SET t.V = s.V "
    "WHEN NOT MATCHED AND NOT s.GONE THEN INSERT (ID, V) VALUES (s.ID, s.V)"
)


def test_a_merge_runs_as_one_duckdb_merge_and_answers_snowflakes_counts(cursor: Any) -> None:
    """fakesnow_compat.merge_in_one_statement: DuckDB's MERGE INTO, not fakesnow's temporary MERGE_CANDIDATES and
    four statements joined to it (red without: the candidates table exists afterwards). The answer is Snowflake's:
    one row, a count per operation the WHEN clauses perform, inserted/updated/deleted in that order, rows affected
    their total; a qualified `SET t.V` (valid Snowflake) runs too."""
    cursor.execute("CREATE OR REPLACE TABLE TARGET_M (ID NUMBER, V NUMBER)")
    cursor.execute("CREATE OR REPLACE TABLE SOURCE_M (ID NUMBER, V NUMBER, GONE BOOLEAN)")
    cursor.execute("INSERT INTO TARGET_M VALUES (1, 10), (2, 20), (3, 30), (12, 1)")
    # 1: newer -> update; 2: older -> untouched; 3: gone -> delete; 4, 5: new -> insert; 6: new but gone -> nothing;
    # 12: matches by key but lies outside the pruning range -> not matched, inserted a second time (as in Snowflake)
    cursor.execute(
        "INSERT INTO SOURCE_M VALUES (1, 11, FALSE), (2, 19, FALSE), (3, 0, TRUE), (4, 40, FALSE), (5, 50, FALSE), "
        "(6, 60, TRUE), (12, 2, FALSE)"
    )
    cursor.execute(MERGE_ALL_THREE)
    assert [d.name for d in cursor.description] == [
        "number of rows inserted",
        "number of rows updated",
        "number of rows deleted",
    ]
    assert cursor.fetchall() == [(3, 1, 1)]
    assert cursor.rowcount == 5
    assert cursor.execute("SELECT ID, V FROM TARGET_M ORDER BY ID, V").fetchall() == [
        (1, 11), (2, 20), (4, 40), (5, 50), (12, 1), (12, 2),
    ]  # fmt: skip
    leftovers = cursor._duck_conn.execute(
        "SELECT COUNT(*) FROM duckdb_tables() WHERE table_name ILIKE 'merge_candidates'"
    ).fetchall()
    assert leftovers == [(0,)], "fakesnow's MERGE_CANDIDATES: the MERGE was played as five statements"
    cursor.execute(  # only the operations its WHEN clauses perform
        "MERGE INTO TARGET_M AS t USING SOURCE_M AS s ON t.ID = s.ID "
        "WHEN NOT MATCHED THEN INSERT (ID, V) VALUES (s.ID, s.V)"
    )
    assert [d.name for d in cursor.description] == ["number of rows inserted"]
    assert cursor.fetchall() == [(2,)]  # 3 and 6


def test_a_statement_shape_is_rewritten_once_and_each_statement_keeps_its_values(cursor: Any) -> None:
    """fakesnow_chain_cache: statements differing only in their data values (VALUES rows, comparisons with a column,
    IN lists, BETWEEN bounds, CAST literals) reuse one rewrite of their shape from its third statement on (the first
    is rewritten alone, the second checks the shape), each with its own values. Red without the cache: nothing is
    reused; red when a value leaks from one statement into another: the rows read back are wrong."""
    shapes = fakesnow_chain_cache.SHAPES
    cursor.execute("CREATE OR REPLACE TABLE OPS.SHAPED (ID NUMBER, NAME VARCHAR, SEEN TIMESTAMP_NTZ)")
    before = shapes.reused
    for i, name in enumerate(["a", "it's", "c", "d"]):
        quoted = name.replace("'", "''")
        seen = f"CAST('2026-01-0{i + 1} 10:00:00' AS TIMESTAMP_NTZ)"
        cursor.execute(f"INSERT INTO OPS.SHAPED (ID, NAME, SEEN) VALUES ({i}, '{quoted}', {seen})")
    assert shapes.reused - before == 2, "the third and fourth INSERT did not reuse the shape's rewrite"
    read = "SELECT ID, NAME FROM OPS.SHAPED WHERE {} ORDER BY ID"
    expected = {
        "ID = 0": [(0, "a")], "ID = 1": [(1, "it's")], "ID = 3": [(3, "d")],
        "ID IN (0, 2)": [(0, "a"), (2, "c")], "ID IN (1, 2)": [(1, "it's"), (2, "c")],
        "ID IN (0, 3)": [(0, "a"), (3, "d")],
        "ID BETWEEN 1 AND 2": [(1, "it's"), (2, "c")], "ID BETWEEN 0 AND 0": [(0, "a")],
        "ID BETWEEN 3 AND 9": [(3, "d")],
        "SEEN <= CAST('2026-01-01 10:00:00' AS TIMESTAMP_NTZ)": [(0, "a")],
        "SEEN <= CAST('2026-01-02 10:00:00' AS TIMESTAMP_NTZ)": [(0, "a"), (1, "it's")],
        "SEEN >= CAST('2026-01-04 10:00:00' AS TIMESTAMP_NTZ)": [(3, "d")],
    }  # fmt: skip
    for where, rows in expected.items():
        assert cursor.execute(read.format(where)).fetchall() == rows, where
    for i, name in enumerate(["x", "y", "z"]):
        cursor.execute(f"UPDATE OPS.SHAPED SET NAME = '{name}' WHERE ID = {i}")
    assert cursor.execute("SELECT NAME FROM OPS.SHAPED ORDER BY ID").fetchall() == [("x",), ("y",), ("z",), ("d",)]
    assert shapes.reused - before == 2 + 3 + 1  # the third of each read shape (=, IN, BETWEEN), the third UPDATE


def test_a_shape_whose_rewrite_depends_on_its_values_is_never_reused(
    cursor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first statement of a shape checks that its shape's rewrite, filled with its values, is its own rewrite;
    a link that rewrites a value (here: 'a' -> 'A') makes the shape rewrite every statement on its own. Red without
    the check: the second statement is answered with the value the link never rewrote."""
    tag = fakesnow.transforms.tag

    def upper_a(node: Expression) -> Expression:
        node = tag(node)
        if isinstance(node, sqlglot.exp.Literal) and node.is_string and node.this == "a":
            return sqlglot.exp.Literal.string("A")
        return node

    monkeypatch.setattr(fakesnow.transforms, "tag", upper_a)
    sql = "SELECT ID FROM OPS.VALUE_DEPENDENT WHERE NAME = 'a'"
    for _ in range(3):  # the third would be answered from the shape's rewrite
        out = cursor._transform(sqlglot.parse_one(sql, read="snowflake"), None).sql(dialect="duckdb")
        assert "'A'" in out and "'a'" not in out, out


def test_a_reused_shape_copies_one_tree(cursor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A statement answered from its shape's rewrite costs one whole-tree copy (of the stored rewrite, filled with
    its values): the shape itself is made in place and undone (a copy of every statement to shape it was ~6 % of the
    local Snowflake's CPU in a steady hour). Red when shaping copies the statement; the statement is left as given."""
    sql = "SELECT ID FROM OPS.SHAPED_COPIES WHERE NAME = '{}' AND ID IN ({}, 7)"
    for i in range(3):  # first, check, stored
        cursor._transform(sqlglot.parse_one(sql.format(f"n{i}", i), read="snowflake"), None)
    statement = sqlglot.parse_one(sql.format("it''s", 42), read="snowflake")
    before = statement.sql(dialect="snowflake")
    counted = _root_copies(monkeypatch)
    out = cursor._transform(statement, None).sql(dialect="duckdb")
    assert len(counted) == 1, f"{len(counted)} whole-tree copies for a statement of a stored shape"
    assert "'it''s'" in out and "42" in out and "n2" not in out, out
    assert statement.sql(dialect="snowflake") == before, "shaping left the statement changed"
