"""Masking policies in the local Snowflake: every read of a policy-protected column sees what the session's role sees.

DuckDB has no column-level security, so fakesnow accepts the policy DDL and ignores it. This module learns what the
migrations render (CREATE / ALTER MASKING POLICY bodies, `ALTER TABLE|VIEW ... MODIFY COLUMN ... SET MASKING POLICY`)
and rewrites each statement before fakesnow runs it: a table or view with policies is read through a projection that
applies each policy's body to its column, with CURRENT_ROLE() / INVOKER_ROLE() / IS_ROLE_IN_SESSION() evaluated for
the session's role (the login's `role`, then `USE ROLE`) and the role grants the strict model knows.

What Snowflake documents and this copies:
- a masking policy is applied at query runtime wherever the column is read: projections, predicates, joins, and the
  reads of INSERT ... SELECT, CREATE TABLE ... AS SELECT and MERGE, whose targets so receive the masked value
  ("Understanding Column-level Security", https://docs.snowflake.com/en/user-guide/security-column-intro);
- the body is evaluated for the querying role: CURRENT_ROLE() is the session's primary role, and INVOKER_ROLE() is
  CURRENT_ROLE() outside views, UDFs, owner's-rights procedures and tasks
  (https://docs.snowflake.com/en/sql-reference/functions/invoker_role). The local player runs a procedure's handler
  in a session that has switched to the procedure's owner role, so both equal that role here;
- CREATE OR REPLACE of a table or view drops the policies set on it
  (https://docs.snowflake.com/en/sql-reference/sql/create-view, "CREATE OR REPLACE ... policies").

What it cannot emulate is refused (an error naming the statement), never run unmasked: a protected column of a
DML target read in a condition, a body using a context function it does not know, a row access policy, and a
statement that does not parse but reads a protected object.
"""

from __future__ import annotations

import contextvars
import functools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp

from finsight.conformance.model import Model, object_key

STATE_FILE = "column-policies.json"
DOCS = "https://docs.snowflake.com/en/user-guide/security-column-intro"

# the role a login asked for (the connector's `role`), handed from the HTTP request to the connection it opens
LOGIN_ROLE: contextvars.ContextVar[str | None] = contextvars.ContextVar("finsight_login_role", default=None)

_COMMENTS = re.compile(r"(?s)^\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?\*/)\s*)*")
_NAME = r"[\w.$\"]+"
_CREATE_POLICY = re.compile(
    rf"(?is)^CREATE\s+(?P<replace>OR\s+REPLACE\s+)?MASKING\s+POLICY\s+(?P<exists>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{_NAME})\s+AS\s*\(\s*(?P<arg>[\w$\"]+)\s+[^)]*\)\s*(?:--[^\n]*\n\s*)?RETURNS\s+\w+(?:\([^)]*\))?\s*->\s*(?P<body>.+)$"
)
_SET_BODY = re.compile(rf"(?is)^ALTER\s+MASKING\s+POLICY\s+(?:IF\s+EXISTS\s+)?(?P<name>{_NAME})\s+SET\s+BODY\s*->\s*"
                       r"(?P<body>.+)$")  # fmt: skip
_SET_POLICY = re.compile(
    rf"(?is)^ALTER\s+(?:ICEBERG\s+)?(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?(?P<object>{_NAME})\s+(?:MODIFY|ALTER)\s+"
    rf"COLUMN\s+(?P<column>[\w$\"]+)\s+SET\s+MASKING\s+POLICY\s+(?P<policy>{_NAME})(?:\s+FORCE)?$"
)
_UNSET_POLICY = re.compile(
    rf"(?is)^ALTER\s+(?:ICEBERG\s+)?(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?(?P<object>{_NAME})\s+(?:MODIFY|ALTER)\s+"
    rf"COLUMN\s+(?P<column>[\w$\"]+)\s+UNSET\s+MASKING\s+POLICY$"
)
_REPLACED = re.compile(
    rf"(?is)^CREATE\s+OR\s+REPLACE\s+(?:TRANSIENT\s+|TEMPORARY\s+|ICEBERG\s+|SECURE\s+)?(?:TABLE|VIEW)\s+"
    rf"(?P<object>{_NAME})"
)
_DROPPED = re.compile(rf"(?is)^DROP\s+(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?(?P<object>{_NAME})")
_USE_ROLE = re.compile(r"(?is)^USE\s+ROLE\s+(?P<role>[\w$\"]+)$")
_READS = (exp.Select, exp.Insert, exp.Merge, exp.Update, exp.Delete, exp.Create, exp.Union)
_UNKNOWN_CONTEXT = re.compile(r"(?i)\b(IS_GRANTED_TO_INVOKER_ROLE|CURRENT_USER|CURRENT_ACCOUNT|INVOKER_SHARE|"
                              r"CURRENT_SECONDARY_ROLES|SYSTEM\$GET_TAG_ON_CURRENT_COLUMN)\b")  # fmt: skip


class PolicyError(Exception):
    """A statement the local Snowflake cannot run with its column policies applied."""


def strip(sql: str) -> str:
    return _COMMENTS.sub("", sql).strip().rstrip(";").strip()


@dataclass
class Policies:
    """Masking policy bodies, where they are attached, and each session's role."""

    state_path: Path | None = None
    model: Model = field(default_factory=Model)
    bodies: dict[str, tuple[str, str]] = field(default_factory=dict)  # policy key -> (argument, body)
    attached: dict[str, dict[str, str]] = field(default_factory=dict)  # object key -> column -> policy key
    views: Callable[[], list[tuple[str, str]]] = list  # (SCHEMA.VIEW, its stored definition) of the warehouse
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.state_path is not None and self.state_path.is_file():
            state = json.loads(self.state_path.read_text())
            self.bodies = {k: (a, b) for k, (a, b) in state["bodies"].items()}
            self.attached = state["attached"]

    # -- learning: statements that succeeded ------------------------------------------------------------------
    def learn(self, sql: str) -> None:
        text = strip(sql)
        with self._lock:
            before = (dict(self.bodies), json.dumps(self.attached, sort_keys=True))
            if m := _CREATE_POLICY.match(text):
                key = object_key(m["name"])
                if m["replace"] or not (m["exists"] and key in self.bodies):
                    self.bodies[key] = (m["arg"].strip('"').upper(), m["body"])
            elif m := _SET_BODY.match(text):
                key = object_key(m["name"])
                if key in self.bodies:
                    self.bodies[key] = (self.bodies[key][0], m["body"])
            elif m := _SET_POLICY.match(text):
                column = m["column"].strip('"').upper()
                self.attached.setdefault(object_key(m["object"]), {})[column] = object_key(m["policy"])
            elif m := _UNSET_POLICY.match(text):
                self.attached.get(object_key(m["object"]), {}).pop(m["column"].strip('"').upper(), None)
            elif m := _REPLACED.match(text) or _DROPPED.match(text):
                self.attached.pop(object_key(m["object"]), None)  # Snowflake drops them with the object
            if (dict(self.bodies), json.dumps(self.attached, sort_keys=True)) != before:
                self._save()

    def _save(self) -> None:
        if self.state_path is not None:
            self.state_path.write_text(json.dumps({"bodies": self.bodies, "attached": self.attached}, indent=1))

    # -- roles ------------------------------------------------------------------------------------------------
    def roles_in_session(self, role: str) -> set[str]:
        """The role and every role granted to it, transitively (GRANT ROLE x TO ROLE y, as the model learned)."""
        seen, todo = set(), [role.upper()]
        while todo:
            r = todo.pop()
            if r in seen:
                continue
            seen.add(r)
            todo += [g.split(" ", 1)[1] for g in self.model.role_grants.get(r, set()) if g.startswith("ROLE ")]
        return seen

    # -- the rewrite ------------------------------------------------------------------------------------------
    def refuse(self, sql: str) -> None:
        """Policies this layer does not apply are refused when they are attached, not ignored."""
        text = strip(sql)
        adds = re.match(r"(?is)^ALTER\s+(?:TABLE|VIEW)\b.*\bADD\s+ROW\s+ACCESS\s+POLICY\b", text)
        if adds:
            raise PolicyError(f"row access policies are not applied by the local Snowflake: {text[:120]!r} ({DOCS})")

    def apply(self, sql: str, role: str, schema: str | None = None) -> str:
        """`sql` with every protected column it reads replaced by its policy's value for `role`; an unqualified name
        is the session's current `schema`'s object, as Snowflake resolves it."""
        if not self.attached or not any(self.attached.values()):
            return sql
        text = strip(sql)
        if not re.match(r"(?is)^(WITH|SELECT|INSERT|MERGE|UPDATE|DELETE|CREATE|\()", text):
            return sql  # DDL, USE, SHOW, DESCRIBE, COPY from a stage: no column is read
        if re.match(r"(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?(?:SECURE\s+)?VIEW\b", text):
            return sql  # a view stores its query; the read through it is rewritten when the view is queried
        if not _names_any(text, self._protected_names()):
            return sql
        try:
            tree = sqlglot.parse_one(text, read="snowflake")
        except sqlglot.errors.ParseError as e:
            raise PolicyError(f"cannot apply the masking policies to a statement that does not parse: {e}") from None
        if not isinstance(tree, _READS):
            return sql
        self._check_targets(tree)
        changed = False
        for table in list(tree.find_all(exp.Table)):
            if _is_write_target(table):
                continue
            columns = self._protected(table, schema)
            if columns:
                table.replace(self._masked_read(table, columns, role))
                changed = True
        return tree.sql(dialect="snowflake") if changed else sql

    def _protected_names(self) -> set[str]:
        """Bare names of the protected objects and of the views over them: a statement naming none is left alone."""
        tables = frozenset(k.rsplit(".", 1)[-1] for k, cols in self.attached.items() if cols)
        views = {key.rsplit(".", 1)[-1] for key, definition in self.views() if _view_reads_any(definition, tables)}
        return tables | views

    def _protected(self, table: exp.Table, schema: str | None = None) -> dict[str, str]:
        qualifier = table.db or schema
        key = object_key(".".join(p for p in (qualifier, table.name) if p))
        own = self.attached.get(key, {})
        if not own:
            tables = {k.rsplit(".", 1)[-1] for k, cols in self.attached.items() if cols}
            # unqualified in a session without a current schema: any schema's view of that name, refused if one reads
            definitions = [d for k, d in self.views() if k == key or ("." not in key and k.endswith(f".{key}"))]
            if any(_names_any(d, tables) for d in definitions):
                raise PolicyError(
                    f"{key} is a view over a table with masking policies but carries none itself: the local "
                    f"Snowflake cannot apply the table's policies through it; set them on the view's columns ({DOCS})"
                )
        return own

    def _check_targets(self, tree: exp.Expr) -> None:
        """A DML target's protected column read in a condition: Snowflake masks that read too, which a projection
        of the target cannot reproduce; refuse rather than compare clear values."""
        target = tree.this if isinstance(tree, (exp.Merge, exp.Update, exp.Delete)) else None
        if not isinstance(target, exp.Table):
            return
        protected = set(self.attached.get(object_key(".".join(p for p in (target.db, target.name) if p)), {}))
        if not protected:
            return
        alias = (target.alias or target.name).upper()
        for col in tree.find_all(exp.Column):
            if col.name.upper() in protected and (not col.table or col.table.upper() == alias) and _is_read(col):
                raise PolicyError(
                    f"{target.name}.{col.name} has a masking policy and is read by this {tree.key.upper()}'s "
                    f"condition: the local Snowflake cannot apply it there ({DOCS})"
                )

    def _masked_read(self, table: exp.Table, columns: dict[str, str], role: str) -> exp.Expr:
        replaced = [
            exp.alias_(self._policy_value(policy, column, role), exp.to_identifier(column))
            for column, policy in columns.items()
        ]
        star = exp.Star(replace=replaced)
        source = table.copy()
        source.set("alias", None)
        inner = exp.select(star).from_(source)
        return inner.subquery(alias=table.alias or table.name)

    def _policy_value(self, policy: str, column: str, role: str) -> exp.Expr:
        if policy not in self.bodies:
            raise PolicyError(f"masking policy {policy} on column {column} is not known to the local Snowflake")
        argument, body = self.bodies[policy]
        if m := _UNKNOWN_CONTEXT.search(body):
            raise PolicyError(f"masking policy {policy} uses {m[1]}, which the local Snowflake does not evaluate")
        session = self.roles_in_session(role)

        def evaluate(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column) and not node.table and node.name.upper() == argument:
                return exp.column(column)
            if isinstance(node, exp.CurrentRole) or (
                isinstance(node, exp.Anonymous) and node.name.upper() in ("CURRENT_ROLE", "INVOKER_ROLE")
            ):
                return exp.Literal.string(role.upper())
            if isinstance(node, exp.Anonymous) and node.name.upper() == "IS_ROLE_IN_SESSION":
                named = node.expressions[0].name.upper() if node.expressions else ""
                return exp.Boolean(this=named in session)
            return node

        return sqlglot.parse_one(body, read="snowflake").transform(evaluate)


def _is_write_target(table: exp.Table) -> bool:
    parent = table.parent
    if isinstance(parent, exp.Schema):  # INSERT INTO t (cols) / CREATE TABLE t (...)
        parent = parent.parent
    return isinstance(parent, (exp.Insert, exp.Create, exp.Merge, exp.Update, exp.Delete)) and (
        parent.this is table or parent.this is table.parent
    )


def _is_read(col: exp.Column) -> bool:
    """Not the assigned column of an UPDATE SET (also MERGE's), nor one of an INSERT's or a table's column list."""
    parent = col.parent
    if isinstance(parent, exp.EQ) and parent.this is col and isinstance(parent.parent, exp.Update):
        return False
    if isinstance(parent, exp.Tuple) and isinstance(parent.parent, exp.Insert) and parent.parent.this is parent:
        return False
    return not isinstance(parent, exp.Schema)


def _names_any(text: str, names: set[str] | frozenset[str]) -> bool:
    """Whether `text` names any of `names` as a whole word (one compiled alternation per set of names: this runs
    for every statement the local Snowflake is sent)."""
    pattern = _word_pattern(frozenset(names))
    return pattern is not None and pattern.search(text.upper()) is not None


@functools.lru_cache(maxsize=64)
def _word_pattern(names: frozenset[str]) -> re.Pattern[str] | None:
    if not names:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(n) for n in sorted(names)) + r")\b")


@functools.lru_cache(maxsize=4096)
def _view_reads_any(definition: str, tables: frozenset[str]) -> bool:
    """`_names_any` for a view's stored definition: the same few dozen views are asked about on every statement."""
    return _names_any(definition, tables)
