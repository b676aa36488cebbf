"""The strict layer: the local Snowflake refuses what Snowflake refuses.

fakesnow_compat makes DuckDB act like Snowflake; this module makes it *refuse* like Snowflake. Every statement that
reaches the local server first goes through the rules of finsight.conformance.rules (each citing its docs page); a
violation is answered with Snowflake's error text, as a SQL error, and nothing runs. A statement that succeeds
teaches the model (tables, task graphs, grants), which is kept in the server's state folder across restarts.

Every statement is also appended to a statement log (JSON lines) that `finsight sql check --log` reads.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import fakesnow.cursor
import fakesnow.instance
import snowflake.connector.errors
from sqlglot import exp

from finsight.conformance.model import Model, parse_type
from finsight.conformance.rules import RULES, Statement, Violation
from finsight.local import column_policies

log = logging.getLogger("finsight.fakesnow.strict")

MAX_LOG_BYTES = 256 * 1024 * 1024  # a long test session stops logging rather than filling the disk
_MODEL_STATE = "strict-model.json"


class StrictLayer:
    """The rules, the model they share, and the statement log of one server process."""

    def __init__(
        self,
        state_dir: Path,
        owner_role: str | None,
        statement_log: Path | None,
        duck: Any = None,
        enforce: bool = True,
    ):
        self.enforce = enforce  # False: log and learn only (the server's --lenient)
        self.state_path = state_dir / _MODEL_STATE
        self.model = Model(owner_role=owner_role, column_lookup=_column_lookup(duck) if duck is not None else None)
        self._load_state()
        self._views = _ViewLister(duck) if duck is not None else None
        # masking policies applied for each session's role (column_policies); they share the model's role grants
        self.policies = column_policies.Policies(
            state_path=state_dir / column_policies.STATE_FILE,
            model=self.model,
            views=self._views or list,
        )
        self.statement_log = statement_log
        self._lock = threading.Lock()
        if statement_log is not None:
            statement_log.parent.mkdir(parents=True, exist_ok=True)
            statement_log.write_text("")  # one server run, one log

    # -- the two hooks ----------------------------------------------------------------------------------------
    def refuse(self, sql: str) -> None:
        """Raise Snowflake's error for the first rule the statement breaks."""
        if not self.enforce:
            return
        with self._lock:
            violations = Statement(sql, self.model).check(RULES)
        if violations:
            self._log(sql, ok=False)
            raise _as_error(violations[0])

    def masked(self, sql: str, role: str, schema: str | None = None) -> str:
        """`sql` as it runs for `role` in `schema`: protected columns read through their masking policies (or
        refused)."""
        try:
            self.policies.refuse(sql)
            return self.policies.apply(sql, role, schema)
        except column_policies.PolicyError as e:
            self._log(sql, ok=False)
            raise snowflake.connector.errors.ProgrammingError(
                msg=f"{e} (local strict layer: column policies)", errno=3001, sqlstate="42501"
            ) from None

    def learn(self, sql: str, ok: bool, ms: float | None = None) -> None:
        if self._views is not None:
            self._views.saw(sql)  # a failed DDL too: it may have changed something before failing
        if ok:
            self.policies.learn(sql)
        with self._lock:
            if ok:
                before = self._task_and_grant_state()
                self.model.observe(sql)
                if self._task_and_grant_state() != before:
                    self._save_state()
        self._log(sql, ok, ms)

    # -- state ------------------------------------------------------------------------------------------------
    def _task_and_grant_state(self) -> dict[str, Any]:
        m = self.model
        return {
            "task_parents": m.task_parents,
            "finalizer_of": m.finalizer_of,
            "started": sorted(m.started),
            "role_grants": {r: sorted(g) for r, g in m.role_grants.items()},
        }

    def _save_state(self) -> None:
        self.state_path.write_text(json.dumps(self._task_and_grant_state(), indent=1))

    def _load_state(self) -> None:
        if not self.state_path.is_file():
            return
        state = json.loads(self.state_path.read_text())
        self.model.task_parents = {k: list(v) for k, v in state["task_parents"].items()}
        self.model.finalizer_of = dict(state["finalizer_of"])
        self.model.started = set(state["started"])
        self.model.role_grants = {r: set(g) for r, g in state["role_grants"].items()}

    def _log(self, sql: str, ok: bool, ms: float | None = None) -> None:
        path = self.statement_log
        if path is None:
            return
        with self._lock:
            if path.stat().st_size > MAX_LOG_BYTES:
                return
            with path.open("a") as out:
                # ms: DuckDB's execution of the statement, for finding where a local cycle spends its time
                record = {"sql": sql, "ok": ok} | ({} if ms is None else {"ms": round(ms, 1)})
                out.write(json.dumps(record) + "\n")


def _as_error(v: Violation) -> snowflake.connector.errors.ProgrammingError:
    return snowflake.connector.errors.ProgrammingError(
        msg=f"{v.message} (local strict layer, rule {v.rule}: {v.docs})", errno=v.errno, sqlstate=v.sqlstate
    )


def _column_lookup(duck: Any) -> Callable[[str, str], exp.DataType | None]:
    """(SCHEMA.TABLE, COLUMN) -> its type as the local warehouse holds it (DuckDB's spelling, read as Snowflake's)."""

    def lookup(key: str, column: str) -> exp.DataType | None:
        schema, _, table = key.rpartition(".")
        try:
            rows = (
                duck.cursor()
                .execute(
                    "SELECT data_type FROM information_schema.columns WHERE upper(table_name) = ? "
                    "AND upper(column_name) = ? AND (? = '' OR upper(table_schema) = ?)",
                    [table, column, schema, schema],
                )
                .fetchall()
            )
        except duckdb.Error:
            return None
        if len(rows) != 1:
            return None  # unknown, or ambiguous across databases: no verdict
        try:
            return parse_type(rows[0][0], dialect="duckdb")
        except ValueError:
            return None

    return lookup


class _ViewLister:
    """(SCHEMA.VIEW, stored definition) of the warehouse's views, read from DuckDB once per change of the schema.

    The column policies ask before every statement; reading `duckdb_views()` each time cost ~3 ms a statement. Only
    DDL sent through this server changes our views (and a COMMIT or ROLLBACK shows or undoes it to other sessions),
    and `learn` hands every statement to `saw`.
    """

    _DDL = re.compile(r"(?i)^(CREATE|ALTER|DROP|UNDROP|COMMIT|ROLLBACK)\b")

    def __init__(self, duck: Any):
        self._duck = duck
        self._views: list[tuple[str, str]] | None = None
        self._changes = 0  # DDL seen so far: a read that raced a DDL is used once, never kept
        self._lock = threading.Lock()

    def saw(self, sql: str) -> None:
        if self._DDL.match(column_policies.strip(sql)):
            with self._lock:
                self._changes += 1
                self._views = None

    def __call__(self) -> list[tuple[str, str]]:
        with self._lock:
            views, changes = self._views, self._changes
        if views is not None:
            return views
        try:
            rows = (
                self._duck.cursor()
                .execute("SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal")
                .fetchall()
            )
        except duckdb.Error:
            return []
        views = [(f"{schema}.{name}".upper(), str(sql or "")) for schema, name, sql in rows]
        with self._lock:
            if self._changes == changes:
                self._views = views
        return views


_USE_ROLE = re.compile(r"(?is)^\s*(?:--[^\n]*\n\s*)*USE\s+ROLE\s+(?P<role>[\w$\"]+)\s*;?\s*$")


def session_role(conn: Any, layer: StrictLayer) -> str:
    """The role a session acts as: its last USE ROLE, else the role it logged in with, else the owner role."""
    return (
        getattr(conn, "_finsight_role", None)
        or getattr(conn, "_finsight_login_role", None)
        or layer.model.owner_role
        or "PUBLIC"
    ).upper()


_installed: StrictLayer | None = None


def install(layer: StrictLayer) -> None:
    """Every statement of this process's fakesnow cursors goes through the layer (once per process)."""
    global _installed
    if _installed is not None:
        _installed = layer
        return
    _installed = layer
    original = fakesnow.cursor.FakeSnowflakeCursor.execute

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        current = _installed
        if current is None or not isinstance(command, str):
            return original(self, command, *args, **kwargs)
        current.refuse(command)
        if m := _USE_ROLE.match(command):
            self._conn._finsight_role = m["role"].strip('"').upper()
        runs = current.masked(command, session_role(self._conn, current), getattr(self._conn, "schema", None))
        started = time.perf_counter()
        try:
            result = original(self, runs, *args, **kwargs)
        except Exception:
            current.learn(command, ok=False, ms=(time.perf_counter() - started) * 1000)
            raise
        current.learn(command, ok=True, ms=(time.perf_counter() - started) * 1000)
        return result

    fakesnow.cursor.FakeSnowflakeCursor.execute = execute
    connect = fakesnow.instance.FakeSnow.connect

    def connect_as_login_role(self: Any, *args: Any, **kwargs: Any) -> Any:
        conn = connect(self, *args, **kwargs)
        conn._finsight_login_role = column_policies.LOGIN_ROLE.get()
        return conn

    fakesnow.instance.FakeSnow.connect = connect_as_login_role


def with_login_role(app: Any) -> Any:
    """The ASGI app, handing each login's `roleName` (the connector's `role`) to the connection it opens."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("path", "").endswith("/login-request"):
            query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode()))
            column_policies.LOGIN_ROLE.set(query.get("roleName"))
        await app(scope, receive, send)

    return asgi
