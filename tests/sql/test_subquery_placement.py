"""Correlated subqueries only where Snowflake evaluates them: in a WHERE clause, AND-ed, never under OR.

Snowflake docs, "Subquery operators" (https://docs.snowflake.com/en/sql-reference/operators-subquery): "Correlated
EXISTS subqueries are currently supported only in a WHERE clause" and "cannot appear as an argument to an OR
operator"; ANY / ALL (and so IN, their shorthand) likewise. "Working with Subqueries"
(https://docs.snowflake.com/en/user-guide/querying-subqueries) lists correlated scalar subqueries in WHERE clauses
only. Elsewhere (select list, CASE, JOIN ON, HAVING, MERGE WHEN) Snowflake answers "Unsupported subquery type cannot
be evaluated" at run time; DuckDB (the local fakesnow) accepts every one of them, so the local stack cannot catch it.

The statements are rendered by the procedures' own SQL builders from every catalog table's spec (finsight.catalog /
finsight.quality), then parsed with sqlglot's Snowflake dialect. Pure: no stack.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlglot
from sqlglot import exp

from finsight import marts, quality
from finsight.config import load_environment
from snowpark import merge
from snowpark.quality.checks import referential_sql
from snowpark.sql_text import literal_list

ENVS = ["local", "prod"]
# what may stand between a correlated subquery and its WHERE: the predicate holding it, then only AND / NOT / ( )
PREDICATES = (exp.Exists, exp.In, exp.Any, exp.All, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
CONNECTIVES = (exp.And, exp.Not, exp.Paren)


def _own_names(select: exp.Select) -> set[str]:
    """Relation names and aliases a SELECT (with everything nested in it) defines."""
    names = {t.alias_or_name.upper() for t in select.find_all(exp.Table)}
    names |= {s.alias.upper() for s in select.find_all(exp.Subquery) if s.alias}
    names |= {c.alias.upper() for c in select.find_all(exp.CTE)}
    return names


def _correlated(select: exp.Select) -> bool:
    """A qualified column names a relation from outside the SELECT (our SQL qualifies every outer reference)."""
    own = _own_names(select)
    return any(c.table and c.table.upper() not in own for c in select.find_all(exp.Column))


def _misplaced(select: exp.Select) -> str | None:
    """None when the correlated SELECT sits in a WHERE as Snowflake allows; else the construct holding it."""
    node = select.parent
    if isinstance(node, exp.Subquery):
        node = node.parent
    if not isinstance(node, PREDICATES):
        return type(node).__name__
    node = node.parent
    if isinstance(node, (exp.Any, exp.All)):  # x = ANY (subquery): the comparison holds the ANY
        node = node.parent
    while isinstance(node, CONNECTIVES):
        node = node.parent
    return None if isinstance(node, exp.Where) else type(node).__name__


def violations(sql: str) -> list[str]:
    """Each correlated subquery of `sql` that Snowflake cannot evaluate where it stands, with what holds it."""
    tree = sqlglot.parse_one(sql, read="snowflake")
    out = []
    for select in tree.find_all(exp.Select):
        if select is tree or not _correlated(select):
            continue
        where = _misplaced(select)
        if where is not None:
            out.append(f"correlated subquery under {where}: {select.sql(dialect='snowflake')[:120]}")
    return out


# --- the checker itself: it must see the patterns Snowflake refuses and let pass the ones it evaluates ---------------

REFUSED = [
    # the old MERGE source: NOT EXISTS as an argument of OR
    "SELECT s.ID FROM RAW.T AS s WHERE s._BATCH_ID IN ('b') AND (s._OP = 'D' OR NOT EXISTS "
    "(SELECT 1 FROM OPS.T__TOMBSTONES AS d WHERE d.ID = s.ID AND d._EXTRACTED_AT >= s._EXTRACTED_AT))",
    # the old referential check: EXISTS inside CASE in the select list
    "SELECT SUM(CASE WHEN EXISTS (SELECT 1 FROM RAW.P AS r WHERE r.ID = c.P_ID) THEN 0 ELSE 1 END) FROM CURATED.C AS c",
    "SELECT c.ID FROM CURATED.C AS c JOIN CURATED.P AS p ON EXISTS (SELECT 1 FROM RAW.X AS x WHERE x.ID = c.ID)",
    "SELECT c.ID, COUNT(*) FROM CURATED.C AS c GROUP BY c.ID "
    "HAVING EXISTS (SELECT 1 FROM RAW.X AS x WHERE x.ID = c.ID)",
    "MERGE INTO CURATED.C AS tgt USING RAW.C AS src ON tgt.ID = src.ID "
    "WHEN MATCHED AND EXISTS (SELECT 1 FROM OPS.X AS x WHERE x.ID = src.ID) THEN DELETE",
    "SELECT c.ID FROM CURATED.C AS c WHERE c.V = 1 OR c.P_ID IN (SELECT p.ID FROM CURATED.P AS p WHERE p.R = c.R)",
]
EVALUATED = [
    "SELECT c.ID FROM CURATED.C AS c WHERE c.V = 1 AND NOT EXISTS (SELECT 1 FROM CURATED.P AS p WHERE p.ID = c.P_ID)",
    "DELETE FROM CURATED.C AS c "
    "WHERE EXISTS (SELECT 1 FROM ARCHIVE.C AS a WHERE a.ID = c.ID AND (a.V > c.V OR a.W = 1))",
    "SELECT ID FROM OPS.M WHERE ID NOT IN (SELECT ID FROM OPS.N) OR ID IS NULL",  # uncorrelated: anywhere
    "SELECT SUM(CASE WHEN p.K IS NULL THEN 1 ELSE 0 END) FROM CURATED.C AS c "
    "LEFT JOIN (SELECT DISTINCT ID AS K FROM CURATED.P) AS p ON p.K = c.P_ID",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_the_checker_finds_what_snowflake_refuses(sql: str) -> None:
    assert violations(sql)


@pytest.mark.parametrize("sql", EVALUATED)
def test_the_checker_passes_what_snowflake_evaluates(sql: str) -> None:
    assert violations(sql) == []


# --- the procedures' statements, rendered for every catalog table ---------------------------------------------------

BATCHES = literal_list(["batch-1", "batch-2"])


def _merge_statements() -> list[tuple[str, str]]:
    out = []
    for name in ENVS:
        env = load_environment(name)
        for table in env.warehouse_tables():
            spec = marts.merge_spec(env, table)
            out.append((f"{name}:{table.qualified}:merge", merge._merge_sql(spec, BATCHES)))
            out.append((f"{name}:{table.qualified}:skipped", merge._skipped_deleted_sql(spec, BATCHES)))
    return out


def _referential_statements() -> list[tuple[str, str]]:
    out = []
    for name in ENVS:
        env = load_environment(name)
        for table, spec in quality.specs(env).items():
            for ref in spec["references"]:
                counts, orphans = referential_sql(f"CURATED.{spec['curated']}", ref, datetime(2026, 12, 1))
                out.append((f"{name}:{table}:{ref['column']}:counts", counts))
                out.append((f"{name}:{table}:{ref['column']}:sample", f"SELECT c.ID {orphans} LIMIT 10"))
    return out


MERGE_STATEMENTS = _merge_statements()
REFERENTIAL_STATEMENTS = _referential_statements()


def test_every_table_and_reference_is_rendered() -> None:
    assert len(MERGE_STATEMENTS) >= 2 * len(ENVS) * 10  # every warehouse table of each environment
    assert REFERENTIAL_STATEMENTS  # the catalog declares references: the RI check has statements to check


@pytest.mark.parametrize(("where", "sql"), MERGE_STATEMENTS, ids=[w for w, _ in MERGE_STATEMENTS])
def test_merge_statements_keep_correlated_subqueries_in_where(where: str, sql: str) -> None:
    assert violations(sql) == []


@pytest.mark.parametrize(("where", "sql"), REFERENTIAL_STATEMENTS, ids=[w for w, _ in REFERENTIAL_STATEMENTS])
def test_referential_check_keeps_correlated_subqueries_in_where(where: str, sql: str) -> None:
    assert violations(sql) == []
