"""What the stateful rules need to know about the account: column types, task graphs, role grants, policy bodies.

The model learns from the statements it is shown (`observe`, after a statement succeeded), so `finsight sql check`
builds it from the rendered files alone. The local server adds a `column_lookup` that reads the live warehouse,
since tables there also change outside the statements it sees (schema evolution run by a procedure is still SQL,
but the stack may have been started from an older state directory).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

# Snowflake type families, as the DMF argument rules name them
DATE, FLOAT, NUMBER, VARCHAR, BOOLEAN, VARIANT = "DATE", "FLOAT", "NUMBER", "VARCHAR", "BOOLEAN", "VARIANT"
TIMESTAMP_NTZ, TIMESTAMP_LTZ, TIMESTAMP_TZ = "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"

_T = exp.DataType.Type
_FAMILIES: dict[_T, str] = {
    _T.DATE: DATE,
    _T.TIMESTAMP: TIMESTAMP_NTZ,
    _T.TIMESTAMPNTZ: TIMESTAMP_NTZ,
    _T.DATETIME: TIMESTAMP_NTZ,
    _T.TIMESTAMPLTZ: TIMESTAMP_LTZ,
    _T.TIMESTAMPTZ: TIMESTAMP_TZ,
    _T.BOOLEAN: BOOLEAN,
    _T.VARIANT: VARIANT,
    _T.OBJECT: VARIANT,
    _T.ARRAY: VARIANT,
    _T.JSON: VARIANT,
    _T.FLOAT: FLOAT,
    _T.DOUBLE: FLOAT,
}
_NUMBERS = {_T.DECIMAL, _T.BIGDECIMAL, _T.INT, _T.BIGINT, _T.SMALLINT, _T.TINYINT, _T.UBIGINT, _T.INT128}
_TEXTS = {_T.VARCHAR, _T.CHAR, _T.TEXT, _T.NVARCHAR, _T.NCHAR}

# DuckDB's information_schema spellings (the local warehouse) of what is not plain SQL
_DUCK_TYPES = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMP_TZ", "TIMESTAMP": "TIMESTAMP_NTZ", "JSON": "VARIANT"}


def family_of(data_type: exp.DataType) -> str:
    """Snowflake type family of a parsed column type ('NUMBER', 'TIMESTAMP_NTZ', ...); the type's own name otherwise."""
    if data_type.this in _FAMILIES:
        return _FAMILIES[data_type.this]
    if data_type.this in _NUMBERS:
        return NUMBER
    if data_type.this in _TEXTS:
        return VARCHAR
    return data_type.this.name


def parse_type(type_text: str, dialect: str = "snowflake") -> exp.DataType:
    """A column type written as text, in Snowflake's spelling or (dialect='duckdb') DuckDB's information_schema's."""
    upper = type_text.strip().upper()
    if dialect == "duckdb" and upper in _DUCK_TYPES:
        return exp.DataType.build(_DUCK_TYPES[upper], dialect="snowflake")
    return exp.DataType.build(type_text, dialect=dialect)


def object_key(name: str) -> str:
    """`DB.SCHEMA.NAME`, `SCHEMA.NAME` or `NAME` -> the last two parts upper-cased: names are unique per schema,
    and the platform works in one database per environment."""
    parts = [p.strip('"').upper() for p in name.strip().split(".") if p]
    return ".".join(parts[-2:])


def bare_name(name: str) -> str:
    return object_key(name).rsplit(".", 1)[-1]


@dataclass
class Model:
    """The account as far as the rules need it. Empty by default: a rule with nothing known stays silent."""

    tables: dict[str, dict[str, exp.DataType]] = field(default_factory=dict)  # object_key -> column -> type
    column_lookup: Callable[[str, str], exp.DataType | None] | None = None  # (object_key, column) -> type, live
    task_parents: dict[str, list[str]] = field(default_factory=dict)  # bare task name -> predecessors (AFTER)
    finalizer_of: dict[str, str] = field(default_factory=dict)  # bare finalizer task -> its root
    started: set[str] = field(default_factory=set)  # bare names of resumed tasks
    role_grants: dict[str, set[str]] = field(default_factory=dict)  # role -> privileges / database roles held
    current_role: str | None = None  # USE ROLE; None: the session's default (the owner role)
    owner_role: str | None = None  # the role that owns the platform's tables (config: snowflake.role)

    # -- queries --------------------------------------------------------------------------------------------
    def column_type(self, table: str, column: str) -> exp.DataType | None:
        key, col = object_key(table), column.strip('"').upper()
        known = self.tables.get(key, {}).get(col)
        if known is None and self.column_lookup is not None:
            known = self.column_lookup(key, col)
        return known

    def column_family(self, table: str, column: str) -> str | None:
        known = self.column_type(table, column)
        return None if known is None else family_of(known)

    def root_of(self, task: str) -> str:
        """The root task of the graph a task belongs to (itself for a root or an unknown task)."""
        name, seen = bare_name(task), set()
        if name in self.finalizer_of:
            return self.finalizer_of[name]
        while self.task_parents.get(name) and name not in seen:
            seen.add(name)
            name = self.task_parents[name][0]
        return name

    def in_graph(self, task: str) -> bool:
        name = bare_name(task)
        return bool(
            self.task_parents.get(name)
            or name in self.finalizer_of
            or any(name in parents for parents in self.task_parents.values())
            or name in self.finalizer_of.values()
        )

    def acting_role(self) -> str | None:
        return self.current_role or self.owner_role

    def holds(self, role: str | None, grant: str) -> bool:
        return role is not None and grant in self.role_grants.get(role.upper(), set())

    # -- learning -------------------------------------------------------------------------------------------
    def grant(self, role: str, what: str) -> None:
        self.role_grants.setdefault(role.upper(), set()).add(_normalize_grant(what))

    def observe(self, statement: str) -> None:
        """Learn from a statement that succeeded (Snowflake would have run it)."""
        text = _strip_comments(statement)
        for learn in (_learn_table, _learn_task, _learn_grant, _learn_role):
            learn(self, text)


def _normalize_grant(what: str) -> str:
    return re.sub(r"\s+", " ", what.strip().upper())


_LEADING_COMMENTS = re.compile(r"(?s)^\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?\*/)\s*)*")


def _strip_comments(statement: str) -> str:
    return _LEADING_COMMENTS.sub("", statement).strip().rstrip(";").strip()


_CREATE_TABLE = re.compile(r"(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TRANSIENT\s+|TEMPORARY\s+|ICEBERG\s+)?TABLE\b")
_ALTER_COLUMN = re.compile(
    r"(?is)^ALTER\s+(?:ICEBERG\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?(?P<table>[\w.$\"]+)\s+(?:ALTER|MODIFY)\s+COLUMN\s+"
    r"(?P<column>[\w$\"]+)\s+SET\s+DATA\s+TYPE\s+(?P<type>.+)$"
)
_ADD_COLUMN = re.compile(
    r"(?is)^ALTER\s+(?:ICEBERG\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?(?P<table>[\w.$\"]+)\s+ADD\s+COLUMN\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?(?P<column>[\w$\"]+)\s+(?P<type>[^,]+?)$"
)


def _learn_table(model: Model, text: str) -> None:
    if _CREATE_TABLE.match(text):
        try:
            tree = sqlglot.parse_one(text, read="snowflake")
        except sqlglot.errors.ParseError:
            return
        schema = tree.this if isinstance(tree, exp.Create) else None
        if not isinstance(schema, exp.Schema) or not isinstance(schema.this, exp.Table):
            return
        key = object_key(schema.this.sql(dialect="snowflake"))
        columns = model.tables.setdefault(key, {})
        for col in schema.expressions:
            if isinstance(col, exp.ColumnDef) and isinstance(col.args.get("kind"), exp.DataType):
                columns.setdefault(col.name.upper(), col.args["kind"])
        return
    for pattern in (_ADD_COLUMN, _ALTER_COLUMN):
        if m := pattern.match(text):
            try:
                data_type = parse_type(m["type"])
            except (sqlglot.errors.ParseError, ValueError):
                return
            model.tables.setdefault(object_key(m["table"]), {})[m["column"].strip('"').upper()] = data_type
            return


_TASK_NAME = r"(?P<name>[\w.$\"]+)"
CREATE_TASK = re.compile(r"(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?TASK\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _TASK_NAME)
ALTER_TASK = re.compile(r"(?is)^ALTER\s+TASK\s+(?:IF\s+EXISTS\s+)?" + _TASK_NAME + r"\s+(?P<action>\w+)")
_DROP_TASK = re.compile(r"(?is)^DROP\s+TASK\s+(?:IF\s+EXISTS\s+)?" + _TASK_NAME)
_DEPENDENTS_ENABLE = re.compile(r"(?is)SYSTEM\$TASK_DEPENDENTS_ENABLE\s*\(\s*'(?P<name>[^']+)'\s*\)")
# the task body begins at AS followed by a statement: only the header before it holds AFTER / FINALIZE
_TASK_BODY = re.compile(r"(?is)\bAS\s+(?=CALL|SELECT|EXECUTE|BEGIN|DECLARE|INSERT|MERGE|DELETE|UPDATE|\$\$)")
AFTER = re.compile(r"(?is)\bAFTER\s+(?P<list>[\w.$\"]+(?:\s*,\s*[\w.$\"]+)*)")
FINALIZE = re.compile(r"(?is)\bFINALIZE\s*=\s*(?P<root>[\w.$\"]+)")


_QUOTED = re.compile(r"(?s)'(?:[^'\\]|\\.|'')*'|\$\$.*?\$\$")


def task_header(text: str) -> str:
    """The clauses before the body, string literals blanked (a COMMENT may say "after")."""
    return _QUOTED.sub("''", _TASK_BODY.split(text, maxsplit=1)[0])


def _learn_task(model: Model, text: str) -> None:
    if m := CREATE_TASK.match(text):
        name, header = bare_name(m["name"]), task_header(text)
        after = AFTER.search(header)
        model.task_parents[name] = [bare_name(p) for p in after["list"].split(",")] if after else []
        if fin := FINALIZE.search(header):
            model.finalizer_of[name] = bare_name(fin["root"])
        else:
            model.finalizer_of.pop(name, None)
        model.started.discard(name)  # a task is created suspended
    elif m := ALTER_TASK.match(text):
        name, action = bare_name(m["name"]), m["action"].upper()
        if action == "RESUME":
            model.started.add(name)
        elif action == "SUSPEND":
            model.started.discard(name)
    elif m := _DROP_TASK.match(text):
        name = bare_name(m["name"])
        model.task_parents.pop(name, None)
        model.finalizer_of.pop(name, None)
        model.started.discard(name)
    elif m := _DEPENDENTS_ENABLE.search(text):
        root = bare_name(m["name"])
        model.started.add(root)
        model.started.update(t for t in model.task_parents if model.root_of(t) == root)


_GRANT_TO_ROLE = re.compile(r"(?is)^GRANT\s+(?P<what>.+?)\s+TO\s+(?:ACCOUNT\s+)?ROLE\s+(?P<role>[\w$\"]+)\s*$")


def _learn_grant(model: Model, text: str) -> None:
    if m := _GRANT_TO_ROLE.match(text):
        model.grant(m["role"].strip('"'), m["what"])


_USE_ROLE = re.compile(r"(?is)^USE\s+ROLE\s+(?P<role>[\w$\"]+)\s*$")


def _learn_role(model: Model, text: str) -> None:
    if m := _USE_ROLE.match(text):
        model.current_role = m["role"].strip('"').upper()
