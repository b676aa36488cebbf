"""The Snowflake rules DuckDB does not enforce: one function per rule, each citing the docs page it enforces.

A rule takes a `Statement` (its text, its sqlglot tree when sqlglot could parse it, the model of the account and,
when known, the statements that follow it in the same script) and returns the violations it finds. The messages are
Snowflake's own error text where Snowflake raises an error, so a local failure reads like the production one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from finsight import snowflake_dmf
from finsight.conformance.model import (
    AFTER,
    ALTER_TASK,
    CREATE_TASK,
    FINALIZE,
    Model,
    bare_name,
    family_of,
    task_header,
)

DOCS = "https://docs.snowflake.com/en"


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str  # Snowflake's error text (or, for a silent Snowflake behaviour, what goes wrong)
    docs: str
    errno: int = 2031
    sqlstate: str = "42601"


def _parse(text: str) -> exp.Expr:
    return sqlglot.parse_one(text, read="snowflake")


# How Statement.tree parses; the local server's strict layer reads the parse its server already made
# (finsight.local.parse_handoff). The tree is only read.
parse_statement: Callable[[str], exp.Expr] = _parse


@dataclass
class Statement:
    text: str
    model: Model = field(default_factory=Model)
    following: list[str] | None = None  # the rest of the script, when the caller knows it
    _tree: exp.Expr | None = None
    _parsed: bool = False

    @property
    def tree(self) -> exp.Expr | None:
        """The sqlglot tree of a statement holding a subquery; None without one, or when sqlglot cannot parse it or
        knows it only as a command (the rules that read trees are about subqueries: the rest is not parsed)."""
        if not self._parsed:
            self._parsed = True
            tree = None
            if _SUBQUERY.search(self.text):
                try:
                    tree = parse_statement(self.text)
                except sqlglot.errors.SqlglotError:
                    tree = None
            self._tree = None if isinstance(tree, exp.Command) else tree
        return self._tree

    def check(self, rules: tuple[Rule, ...] | None = None) -> list[Violation]:
        return [v for rule in (RULES if rules is None else rules) for v in rule(self)]

    @property
    def plain(self) -> str:
        """The text without leading comments and the trailing semicolon (regex rules match on this)."""
        return _LEADING_COMMENTS.sub("", self.text).strip().rstrip(";").strip()


_LEADING_COMMENTS = re.compile(r"(?s)^\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?\*/)\s*)*")
_SUBQUERY = re.compile(r"(?i)\(\s*(?:SELECT|WITH)\b")
# sqlglot logs a warning for every statement it falls back to parsing as a command (tasks, policies, grants)
logging.getLogger("sqlglot").setLevel(logging.ERROR)

Rule = Callable[[Statement], list[Violation]]


# -- 1. correlated subqueries -----------------------------------------------------------------------------------
SUBQUERY_DOCS = f"{DOCS}/user-guide/querying-subqueries"
# between a correlated subquery and its WHERE only these may stand: the predicate itself, NOT, AND, parentheses
_PREDICATES = (exp.Exists, exp.In, exp.Any, exp.All, exp.Subquery, exp.Not, exp.And, exp.Paren, exp.Predicate)


def _outer_aliases(scope: Scope) -> set[str]:
    names: set[str] = set()
    parent = scope.parent
    while parent is not None:
        names.update(a.upper() for a in parent.sources)
        parent = parent.parent
    return names


def _correlated(scope: Scope) -> bool:
    """A subquery naming a column of an outer query through that query's table alias.

    Unqualified columns are taken as the subquery's own (no schema here to say otherwise): the platform qualifies
    every correlated column, and a false alarm would block a correct statement.
    """
    if not scope.is_subquery:
        return False
    own = {a.upper() for a in scope.sources}
    outer = _outer_aliases(scope)
    return any(c.table and c.table.upper() not in own and c.table.upper() in outer for c in scope.external_columns)


def _placement_problem(node: exp.Expr) -> str | None:
    """None when the subquery stands in a WHERE clause reached only through AND / NOT / its own predicate."""
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.Where):
            return None
        if isinstance(parent, exp.Or):
            return "as an argument of OR"
        if not isinstance(parent, _PREDICATES):
            return f"outside a WHERE clause (in {parent.key.upper()})"
        parent = parent.parent
    return "outside a WHERE clause"


def correlated_subquery_placement(stmt: Statement) -> list[Violation]:
    """Snowflake evaluates correlated EXISTS / NOT EXISTS / IN / ANY / ALL and correlated scalar subqueries only in a
    WHERE clause, and never as an argument of OR (docs: "Working with subqueries", types supported; "Subquery
    operators"). Elsewhere: "Unsupported subquery type cannot be evaluated". Policy bodies are not statements the
    rule reads (sqlglot parses them as commands): their documented form is `... OR EXISTS (...)` on the policy's
    argument, not on an outer query."""
    if stmt.tree is None:
        return []
    out = []
    for scope in traverse_scope(stmt.tree):
        if not _correlated(scope):
            continue
        problem = _placement_problem(scope.expression)
        if problem:
            sample = scope.expression.sql(dialect="snowflake")[:120]
            out.append(
                Violation(
                    "correlated-subquery",
                    f"SQL compilation error: Unsupported subquery type cannot be evaluated "
                    f"(a correlated subquery {problem}: {sample})",
                    SUBQUERY_DOCS,
                    errno=2031,
                    sqlstate="42601",
                )
            )
    return out


# -- 2. tasks of a started graph ---------------------------------------------------------------------------------
TASK_GRAPH_DOCS = f"{DOCS}/user-guide/tasks-graphs"
# changing what a task is or where it hangs; SUSPEND / RESUME change only its state
_CHANGES = {"SET", "UNSET", "MODIFY", "ADD", "REMOVE"}


def _graph_refusal(root: str) -> Violation:
    return Violation(
        "task-graph-started",
        f"Unable to update graph with root task {root} since that root task is not suspended.",
        TASK_GRAPH_DOCS,
        errno=91089,
        sqlstate="0A000",
    )


def task_of_started_graph(stmt: Statement) -> list[Violation]:
    """To recreate or modify any task of a task graph, or to add a child to it, its root task must be suspended
    first (docs: "Create a sequence of tasks with a task graph" → "Modify a task graph"; CREATE TASK / ALTER TASK
    usage notes). DuckDB knows no tasks; the model tracks CREATE … AFTER / FINALIZE and RESUME / SUSPEND."""
    model, text = stmt.model, stmt.plain
    touched: list[str] = []
    if m := CREATE_TASK.match(text):
        name, header = bare_name(m["name"]), task_header(text)
        if model.in_graph(name):
            touched.append(model.root_of(name))
        if after := AFTER.search(header):
            touched += [model.root_of(p) for p in after["list"].split(",")]
        if fin := FINALIZE.search(header):
            touched.append(bare_name(fin["root"]))
    elif (m := ALTER_TASK.match(text)) and m["action"].upper() in _CHANGES:
        name = bare_name(m["name"])
        if model.in_graph(name):
            touched.append(model.root_of(name))
    started = [r for r in dict.fromkeys(touched) if r in model.started]
    return [_graph_refusal(started[0])] if started else []


# -- 3. bodies that must track the code ---------------------------------------------------------------------------
IF_NOT_EXISTS_DOCS = f"{DOCS}/sql-reference/sql/create-row-access-policy"
_IF_NOT_EXISTS = re.compile(
    r"(?is)^CREATE\s+(?:SECURE\s+|MATERIALIZED\s+)*(?P<kind>VIEW|FUNCTION|PROCEDURE|TASK|DATA\s+METRIC\s+FUNCTION|"
    r"MASKING\s+POLICY|ROW\s+ACCESS\s+POLICY|AGGREGATION\s+POLICY|PROJECTION\s+POLICY)\s+IF\s+NOT\s+EXISTS\s+"
    r"(?P<name>[\w.$\"]+)"
)
_POLICY = re.compile(r"(?i)POLICY$")


def body_tracks_code(stmt: Statement) -> list[Violation]:
    """`CREATE <object> IF NOT EXISTS` leaves an existing object as it is: when the object carries a body (a view's
    query, a function, a task, a policy's expression) a changed body never deploys, silently (docs: CREATE … "IF NOT
    EXISTS" in CREATE VIEW / CREATE ROW ACCESS POLICY). Views, functions, procedures and tasks use CREATE OR REPLACE.
    A policy cannot be replaced while it is attached, so it may use IF NOT EXISTS only when the same script then sets
    the body (`ALTER … POLICY <name> SET BODY ->`); that is checked where the script is known (`sql check`)."""
    m = _IF_NOT_EXISTS.match(stmt.plain)
    if not m:
        return []
    kind = re.sub(r"\s+", " ", m["kind"].upper())
    name = m["name"]
    if _POLICY.search(kind):
        if stmt.following is None:
            return []  # a single statement from a session: the script is not known here
        kind_words = r"\s+".join(kind.split())
        body_set = re.compile(rf"(?is)^ALTER\s+{kind_words}\s+(?:IF\s+EXISTS\s+)?{re.escape(name)}\s+SET\s+BODY\b")
        if any(body_set.match(_LEADING_COMMENTS.sub("", s).strip()) for s in stmt.following):
            return []
        fix = f"follow it with ALTER {kind} {name} SET BODY -> … in the same script"
    else:
        fix = f"use CREATE OR REPLACE {kind}"
    return [
        Violation(
            "body-tracks-code",
            f"CREATE {kind} IF NOT EXISTS {name} keeps the deployed body when the code changes it: {fix}",
            IF_NOT_EXISTS_DOCS,
            errno=2000,
            sqlstate="42000",
        )
    ]


# -- 4. column type changes --------------------------------------------------------------------------------------
ALTER_COLUMN_DOCS = f"{DOCS}/sql-reference/sql/alter-table-column"
_SET_TYPE = re.compile(
    r"(?is)^ALTER\s+(?P<iceberg>ICEBERG\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?(?P<table>[\w.$\"]+)\s+(?:ALTER|MODIFY)\s+"
    r"COLUMN\s+(?P<column>[\w$\"]+)\s+SET\s+DATA\s+TYPE\s+(?P<type>.+)$"
)


def _precision_scale(data_type: exp.DataType) -> tuple[int, int]:
    params = [int(p.name) for p in data_type.expressions if p.name.isdigit()]
    return [*params, 38][0], [*params[1:], 0][0]


def _type_text(data_type: exp.DataType) -> str:
    return re.sub(r"^DECIMAL\b", "NUMBER", data_type.sql(dialect="snowflake")).replace(", ", ",")


def column_type_change(stmt: Statement) -> list[Violation]:
    """ALTER TABLE … ALTER COLUMN … SET DATA TYPE may only increase a NUMBER's precision or a VARCHAR's length: it
    may not change the scale of a number, decrease a precision or length, or change the type (docs: "ALTER TABLE …
    ALTER COLUMN", unsupported changes). DuckDB changes any of them in place."""
    m = _SET_TYPE.match(stmt.plain)
    if not m:
        return []
    old = stmt.model.column_type(m["table"], m["column"])
    if old is None:
        return []
    try:
        new = exp.DataType.build(m["type"].strip(), dialect="snowflake")
    except (sqlglot.errors.SqlglotError, ValueError):
        return []
    column, old_sql, new_sql = m["column"].upper(), _type_text(old), _type_text(new)
    problem = None
    if family_of(old) != family_of(new):
        problem = "changing the type of a column is not supported"
    elif family_of(old) == "NUMBER":
        (p0, s0), (p1, s1) = _precision_scale(old), _precision_scale(new)
        if s0 != s1:
            problem = "changing the scale of a number is not supported"
        elif p1 < p0:
            problem = "decreasing the precision of a number is not supported"
    if problem is None:
        return []
    return [
        Violation(
            "column-type-change",
            f"SQL compilation error: cannot change column {column} from type {old_sql} to {new_sql} because {problem}.",
            ALTER_COLUMN_DOCS,
            errno=2263,
            sqlstate="0A000",
        )
    ]


# -- 5. data metric functions -----------------------------------------------------------------------------------
DMF_DOCS = f"{DOCS}/user-guide/data-quality-system-dmfs"
DMF_ACCESS_DOCS = f"{DOCS}/user-guide/data-quality-access-control"
_ADD_DMF = re.compile(
    r"(?is)ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<table>[\w.$\"]+)\s+ADD\s+DATA\s+METRIC\s+FUNCTION\s+"
    r"(?P<attachments>[\w.$\"]+\s+ON\s*\([^)]*\)(?:\s*,\s*[\w.$\"]+\s+ON\s*\([^)]*\))*)"
)
_ATTACHMENT = re.compile(r"(?is)(?P<dmf>[\w.$\"]+)\s+ON\s*\((?P<columns>[^)]*)\)")


def _attachments(stmt: Statement) -> list[tuple[str, str, list[str]]]:
    """(table, DMF, columns) of every ADD DATA METRIC FUNCTION in the text, EXECUTE IMMEDIATE blocks included."""
    return [
        (m["table"], a["dmf"].upper(), [c.strip() for c in a["columns"].split(",") if c.strip()])
        for m in _ADD_DMF.finditer(stmt.text)
        for a in _ATTACHMENT.finditer(m["attachments"])
    ]


def _system_dmf(name: str) -> str | None:
    bare = name.removeprefix(snowflake_dmf.SYSTEM_DMF_SCHEMA + ".")
    return bare if bare != name and bare in snowflake_dmf.SYSTEM_DMF_ARGUMENT_TYPES else None


def dmf_argument_types(stmt: Statement) -> list[Violation]:
    """A system DMF accepts only the column types its reference page lists (docs: "System data metric functions";
    e.g. FRESHNESS: DATE, TIMESTAMP_LTZ, TIMESTAMP_TZ; NULL_COUNT: no BOOLEAN). DuckDB has no DMFs at all."""
    out = []
    for table, dmf, columns in _attachments(stmt):
        bare = _system_dmf(dmf)
        for column in columns if bare else []:
            known = stmt.model.column_type(table, column)
            if known is None:
                continue
            type_text = family_of(known)
            if not snowflake_dmf.accepts(bare, type_text):
                out.append(
                    Violation(
                        "dmf-argument-type",
                        f"SQL compilation error: Invalid argument types for function '{dmf}': ({type_text}) "
                        f"on column {column.upper()} of {table}",
                        DMF_DOCS,
                        errno=1044,
                        sqlstate="42P13",
                    )
                )
    return out


def _grant_key(grant: snowflake_dmf.OwnerRoleGrant) -> str:
    return re.sub(r"\s+", " ", grant.sql("R").removeprefix("GRANT ").rsplit(" TO ROLE ", 1)[0]).upper()


def dmf_grants(stmt: Statement) -> list[Violation]:
    """Attaching a system DMF needs, for the role owning the table, the database role SNOWFLAKE.DATA_METRIC_USER and
    EXECUTE DATA METRIC FUNCTION ON ACCOUNT (docs: "Access control for data quality"). The grants are account-level
    (cdktf's Snowflake stack, from finsight.snowflake_dmf.OWNER_ROLE_GRANTS); the model learns them as GRANTs."""
    if not any(_system_dmf(dmf) for _, dmf, _ in _attachments(stmt)):
        return []
    role = stmt.model.acting_role()
    missing = [g for g in snowflake_dmf.OWNER_ROLE_GRANTS if not stmt.model.holds(role, _grant_key(g))]
    if not missing:
        return []
    return [
        Violation(
            "dmf-grants",
            f"SQL access control error: Insufficient privileges to operate on data metric function; role {role} "
            f"lacks {', '.join(_grant_key(g) for g in missing)}",
            DMF_ACCESS_DOCS,
            errno=3001,
            sqlstate="42501",
        )
    ]


RULES: tuple[Rule, ...] = (
    correlated_subquery_placement,
    task_of_started_graph,
    body_tracks_code,
    column_type_change,
    dmf_argument_types,
    dmf_grants,
)
