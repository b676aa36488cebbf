"""Every fakesnow compatibility fix the local stack needs, in one place.

They reach into fakesnow 0.11.18 internals, hence the exact pin; each has a test in
tests/local/test_fakesnow_compat.py (the in-process ones: test_fakesnow_transform_chain.py) that fails
without it. Real Snowflake needs none of them.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import duckdb
import fakesnow.arrow
import fakesnow.copy_into
import fakesnow.cursor
import fakesnow.instance
import fakesnow.transforms
import pyarrow as pa
import pyarrow.compute as pc
import snowflake.connector.errors
import sqlglot.expressions.core
from sqlglot import exp

from finsight.local import fakesnow_chain_cache, task_history

# schemachange keeps a script's leading comments on its first statement
_COMMENTS = r"(?s)^\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*"

# Statements Snowflake accepts that fakesnow does not emulate and that change nothing we rely on locally.
NOP_REGEXES = [
    _COMMENTS + r"ALTER\s+SESSION\s+SET\s+QUERY_TAG\b.*",  # schemachange tags every session
    # Pipes, tasks and procedures are services in Snowflake; locally our runner plays them from the same definitions
    _COMMENTS + r"(CREATE|ALTER|DROP)\s+(OR\s+REPLACE\s+)?(WAREHOUSE|TASK|PIPE|PROCEDURE|STREAM)\b.*",
    _COMMENTS + r"EXECUTE\s+TASK\b.*",
    _COMMENTS + r"SELECT\s+SYSTEM\$CANCEL_ALL_QUERIES\b.*",  # Snowpark's Session.close()
    # DuckDB has no column-level security: the policy DDL is learned and applied by column_policies instead
    _COMMENTS + r"(CREATE|ALTER)\s+(OR\s+REPLACE\s+)?MASKING\s+POLICY\b.*",
    _COMMENTS + r"ALTER\s+(TABLE|VIEW)\s+.*\b(UN)?SET\s+MASKING\s+POLICY\b.*",
]

# After executing, the server DESCRIBEs the statement to build its result type; DuckDB cannot describe these.
_UNDESCRIBABLE = re.compile(
    r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|ROLLBACK|CREATE\s+(OR\s+REPLACE\s+)?SECRET|LOAD)\b", re.I
)

_applied = False


def _describe_last_sql_tolerant(original: Callable[[Any], list]) -> Callable[[Any], list]:
    def describe(self: Any) -> list:
        if self._last_sql and _UNDESCRIBABLE.match(str(self._last_sql)):
            return []
        if (columns := getattr(self, "_finsight_result_columns", None)) is not None:
            return columns  # the executed statement's own result columns (_result_columns_kept)
        return original(self)

    return describe


def _result_columns_kept(original: Callable[..., None]) -> Callable[..., None]:
    """Keep the result's columns as DuckDB reports them for the statement just run, in DESCRIBE's row shape.

    Why: after every statement the server DESCRIBEs it again to type its result: a second parse of the whole SQL
    and a second DuckDB bind, ~3 ms a statement (3 s of a steady hourly cycle). DuckDB already has that answer for
    the query it just ran. Kept only when it names exactly the columns of the result returned; else the DESCRIBE.
    """

    @functools.wraps(original)
    def execute(self: Any, transformed: exp.Expr, *args: Any, **kwargs: Any) -> None:
        self._finsight_result_columns = None
        original(self, transformed, *args, **kwargs)
        description, table = self._duck_conn.description, self._arrow_table
        if description and table is not None and [d[0] for d in description] == table.column_names:
            # DESCRIBE of a query: (column_name, column_type, null, key, default, extra), null always 'YES'
            self._finsight_result_columns = [(d[0], str(d[1]), "YES", None, None, None) for d in description]

    return execute


def _errors_as_sql_errors(original: Callable[..., Any]) -> Callable[..., Any]:
    """A DuckDB error the statement caused (a corrupt Parquet file, say) becomes a SQL error, as in Snowflake.

    fakesnow answers such errors with HTTP 500, which the Snowflake client retries for many minutes: a hang.
    """

    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except duckdb.Error as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise snowflake.connector.errors.ProgrammingError(
                msg=f"{type(exc).__name__}: {first_line}", errno=100000, sqlstate="22000"
            ) from None

    return execute


def information_schema_schemata(expression: exp.Expr) -> exp.Expr:
    """`<db>.INFORMATION_SCHEMA.SCHEMATA` -> DuckDB's catalog-wide view filtered to that database.

    schemachange checks that the change-history schema exists this way.
    """
    if (
        isinstance(expression, exp.Table)
        and expression.name.upper() == "SCHEMATA"
        and expression.db.upper() == "INFORMATION_SCHEMA"
        and expression.catalog
    ):
        catalog = expression.catalog.upper()
        subquery = exp.select("*").from_("system.information_schema.schemata").where(f"catalog_name = '{catalog}'")
        return subquery.subquery(alias=expression.alias or "SCHEMATA")
    return expression


def _with_schemata(original: Callable[[exp.Expr], exp.Expr]) -> Callable[[exp.Expr], exp.Expr]:
    def transform(expression: exp.Expr) -> exp.Expr:
        return original(information_schema_schemata(expression))

    return transform


# Iceberg table properties that only mean something to Snowflake's storage (where the files go, who catalogs them)
ICEBERG_PROPERTIES = {"EXTERNAL_VOLUME", "CATALOG", "BASE_LOCATION", "STORAGE_SERIALIZATION_POLICY", "CATALOG_SYNC"}


def iceberg_as_plain_table(expression: exp.Expr) -> exp.Expr:
    """`CREATE ICEBERG TABLE ... EXTERNAL_VOLUME = ... CATALOG = ... BASE_LOCATION = ...` -> `CREATE TABLE ...`, and
    `ALTER ICEBERG TABLE` -> `ALTER TABLE`: DuckDB stores the archive as a plain table, the columns and every
    statement that reads or writes it stay as Snowflake runs them (migrations/R__warehouse_views_archive.sql).

    Without it the storage properties reach sqlglot's DuckDB generator, which drops them only with an
    "Unsupported property" warning: an accident of the generator, not a decision.
    """
    if isinstance(expression, exp.Create) and isinstance(props := expression.args.get("properties"), exp.Properties):
        kept = [
            p
            for p in props.expressions
            if not isinstance(p, exp.IcebergProperty)
            and not (isinstance(p, exp.Property) and p.name.upper() in ICEBERG_PROPERTIES)
        ]
        if len(kept) != len(props.expressions):
            expression = expression.copy()
            expression.set("properties", exp.Properties(expressions=kept) if kept else None)
    elif isinstance(expression, exp.Alter) and expression.args.get("iceberg"):
        expression = expression.copy()
        expression.set("iceberg", None)
    return expression


def _with_iceberg_as_table(original: Callable[[exp.Expr], exp.Expr]) -> Callable[[exp.Expr], exp.Expr]:
    def transform(expression: exp.Expr) -> exp.Expr:
        return original(iceberg_as_plain_table(expression))

    return transform


def _stage_with_path(original: Callable[..., str]) -> Callable[..., str]:
    """`@RAW.LANDING/<source>/<table>/` -> the stage URL plus that folder (fakesnow only knows bare stages).

    fakesnow upper-cases the whole reference; our folders are lower-case by config rule (identifiers are
    `[a-z][a-z0-9_]*`), so the path part is lower-cased back.
    """

    def resolve(var: str, *args: Any) -> str:
        name, slash, path = var.partition("/")
        url = original(name, *args)
        return f"{url.rstrip('/')}/{path.lower()}" if slash else url

    return resolve


def _null_timestamps_stay_null(original: Callable[[Any], pa.Array]) -> Callable[[Any], pa.Array]:
    """A NULL TIMESTAMP_* reads back as NULL, not 1970-01-01.

    fakesnow builds Snowflake's timestamp struct (epoch, fraction) without a validity mask, so the connector sees a
    present struct whose epoch is 0. Marking the struct itself null where the timestamp is null is what the
    connector checks.
    """

    def convert(ts: Any) -> pa.Array:
        out = original(ts)
        values = ts.combine_chunks() if isinstance(ts, pa.ChunkedArray) else ts
        if values.null_count == 0:
            return out
        children = [pc.fill_null(out.field(i), 0) for i in range(out.type.num_fields)]
        return pa.StructArray.from_arrays(children, fields=list(out.type), mask=values.is_null())

    return convert


# DuckDB's MERGE reports what it did to each row in this pseudo-column (INSERT, UPDATE, DELETE)
_MERGE_ACTIONS = {"inserted": "INSERT", "updated": "UPDATE", "deleted": "DELETE"}


def merge_in_one_statement(original: Callable[[Any, exp.Expr], list[exp.Expr]]) -> Callable[..., list[exp.Expr]]:
    """A MERGE runs as DuckDB's own MERGE INTO (one statement, one pass over the source), not as fakesnow's five.

    Why: fakesnow plays MERGE as a temporary MERGE_CANDIDATES table joining target and source, then a DELETE, an
    UPDATE and an INSERT that each join the target to it again, then a count: on a steady hour 21 MERGEs took 3.9 s
    in-process where DuckDB's MERGE takes 0.26 s (the same statements, the same database). DuckDB >= 1.4 runs
    Snowflake's WHEN MATCHED [AND ...] THEN UPDATE | DELETE / WHEN NOT MATCHED [AND ...] THEN INSERT as written;
    `RETURNING merge_action` gives the per-operation counts Snowflake returns (`_merge_counts`)."""

    @functools.wraps(original)
    def explode(self: Any, expression: exp.Expr) -> list[exp.Expr]:
        if not isinstance(expression, exp.Merge):
            return original(self, expression)
        performed = [op for op, whens in fakesnow.cursor.merge_operations(expression).items() if whens]
        for update in expression.find_all(exp.Update):
            for assignment in update.expressions:  # Snowflake takes `SET tgt.c = ...`; DuckDB only `SET c = ...`
                if isinstance(assignment.this, exp.Column):
                    assignment.set("this", exp.column(assignment.this.name, quoted=assignment.this.this.quoted))
        expression.set("returning", exp.Returning(expressions=[exp.column("merge_action")]))
        expression.set("finsight_merge_counts", performed)
        return [expression]

    return explode


def _merge_counts(original: Callable[..., None]) -> Callable[..., None]:
    """The result of a MERGE run by `merge_in_one_statement`: one row, a count per operation its WHEN clauses
    perform ("number of rows inserted", "... updated", "... deleted", in that order), as Snowflake answers
    (https://docs.snowflake.com/en/sql-reference/sql/merge#output); rows affected is their total."""

    @functools.wraps(original)
    def execute(self: Any, transformed: exp.Expr, *args: Any, **kwargs: Any) -> None:
        original(self, transformed, *args, **kwargs)
        performed = transformed.args.get("finsight_merge_counts")
        if performed is None or self._arrow_table is None:
            return
        actions = self._arrow_table.column(0)
        names = [f"number of rows {op}" for op in performed]
        counts = [pc.sum(pc.equal(actions, _MERGE_ACTIONS[op])).as_py() or 0 for op in performed]
        result = pa.table({n: pa.array([c], pa.int64()) for n, c in zip(names, counts, strict=True)})
        self._arrow_table, self._rowcount = result, sum(counts)
        self._finsight_result_columns = [(n, "BIGINT", "YES", None, None, None) for n in names]
        # what fakesnow DESCRIBEs to type a result when asked again: the counts' shape, not the MERGE
        self._last_sql = "SELECT " + ", ".join(f'{c}::BIGINT AS "{n}"' for n, c in zip(names, counts, strict=True))
        self._last_params = None
        if self._sfqid in self._conn.results_cache:  # RESULT_SCAN answers the counts too
            cached = (result, self._rowcount, self._last_sql, None, self._last_transformed)
            self._conn.results_cache[self._sfqid] = cached

    return execute


def _temporary_tables_unrecorded(original: Callable[[exp.Expr], exp.Expr]) -> Callable[[exp.Expr], exp.Expr]:
    """A TEMPORARY table created without a comment leaves no row in fakesnow's shared table-comment store.

    Why: fakesnow records every CREATE TABLE's comment (NULL included) in one global table keyed by database, schema
    and table name, upserting at commit. Two sessions creating a temporary table of the same name upsert the same key
    and the later commit fails: "PRIMARY KEY or UNIQUE constraint violation: duplicate key FINSIGHT_LOCAL, OPS,
    MERGE_CANDIDATES" (`make bench`, scale 10, when fakesnow's own MERGE still created that table for every MERGE
    task running side by side). A temporary table is the session's own; a NULL comment adds nothing to what
    INFORMATION_SCHEMA.TABLES shows (the comment is LEFT JOINed), so there is nothing to record."""

    @functools.wraps(original)
    def extract(expression: exp.Expr) -> exp.Expr:
        out = original(expression)
        recorded = out.args.get("table_comment")
        if recorded and recorded[1] is None and isinstance(out, exp.Create) and out.find(exp.TemporaryProperty):
            out.set("table_comment", None)
        return out

    return extract


# DuckDB's row-group size: a COPY loading at least this many rows writes them straight to blocks, outside the WAL
BULK_LOAD_ROWS = 122_880


def _bulk_copy_checkpointed(original: Callable[..., None]) -> Callable[..., None]:
    """A COPY INTO that loaded a bulk of rows is checkpointed right after it commits.

    Why: DuckDB writes a bulk insert's row groups optimistically and compresses them only at the next checkpoint,
    which runs inside whatever later statement's commit takes the WAL past its threshold. A MERGE after a 10 M-row
    load paid ~7 s storing that load (bench: 12 s against 4 s at 1 M). Snowflake writes compressed micro-partitions
    during the COPY itself, so that is where the local double puts the cost. Best effort: a checkpoint DuckDB cannot
    take now (another transaction is open) is left to DuckDB's own trigger.
    """

    @functools.wraps(original)
    def execute(self: Any, transformed: exp.Expr, *args: Any, **kwargs: Any) -> None:
        original(self, transformed, *args, **kwargs)
        if not isinstance(transformed, exp.Copy) or self._conn._in_transaction or self._arrow_table is None:
            return
        if "rows_loaded" not in self._arrow_table.column_names:
            return
        if (pc.sum(self._arrow_table["rows_loaded"]).as_py() or 0) < BULK_LOAD_ROWS:
            return
        with contextlib.suppress(duckdb.Error):
            self._duck_conn.execute(f"CHECKPOINT {self._conn.database}")

    return execute


# True while fakesnow's per-statement chain of ~75 tree rewrites runs (see _transform_copying_once)
_IN_CHAIN: ContextVar[bool] = ContextVar("finsight_fakesnow_transform_chain", default=False)


def _transform_copying_once(original: Callable[..., exp.Expr]) -> Callable[..., exp.Expr]:
    """fakesnow's `_transform`: the statement's tree copied once, not once per rewrite in the chain.

    Each `Expression.transform` deep-copies the tree by default, and fakesnow chains ~75 of them per statement:
    for a MERGE that is ~3 s of copying against 41 ms of DuckDB work. The chain owns its one copy, so every link may
    rewrite it in place; a transform nested inside a link (a rewrite calling `.transform` on a subtree) still copies.
    """

    @functools.wraps(original)
    def transform(self: Any, expression: exp.Expr, params: Any) -> exp.Expr:
        token = _IN_CHAIN.set(True)
        try:
            # the copy keeps the caller's tree intact: MERGE's split statements share subtrees
            return original(self, expression.copy(), params)
        finally:
            _IN_CHAIN.reset(token)

    return transform


def _in_place_within_chain(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def transform(self: Any, fun: Callable[..., Any], *args: Any, copy: bool = True, **kwargs: Any) -> Any:
        if not _IN_CHAIN.get():
            return original(self, fun, *args, copy=copy, **kwargs)
        token = _IN_CHAIN.set(False)  # rewrites nested inside this link copy as they ask
        try:
            # a link may answer fakesnow's shared SUCCESS_NOP tree: that one is never rewritten in place
            return original(self, fun, *args, copy=self is fakesnow.transforms.SUCCESS_NOP, **kwargs)
        finally:
            _IN_CHAIN.reset(token)

    return transform


# How many statements' results the server keeps for RESULT_SCAN and async fetches (the newest).
RESULTS_KEPT = 100


class RecentResults(dict[str, tuple]):
    """fakesnow's per-server store of every statement's result (its Arrow table and rewritten tree), keyed by query
    id, bounded to the newest `keep`.

    Why: fakesnow keeps each result for the life of the server and never frees one, about a thousand an hour. A
    server up for an hour of tests held ~6 GB; after five hourly cycles it held 800,000 objects, mostly sqlglot nodes
    of kept results, and each full garbage collection (stopping every statement) took 0.7 s and grew with the store.
    Statements stalled for 7-8 s at a time in the long-running server. Snowflake keeps a result for 24 hours
    ("Using persisted query results", https://docs.snowflake.com/en/user-guide/querying-persisted-results); the
    platform reads none back (no RESULT_SCAN, no async queries), so the newest hundred are plenty locally, and each
    one kept is a rewritten tree of up to thousands of nodes the collector walks.
    """

    def __init__(self, keep: int) -> None:
        super().__init__()
        self._keep = keep
        self._lock = threading.Lock()

    def __setitem__(self, key: str, value: tuple) -> None:
        with self._lock:
            super().pop(key, None)  # a re-stored id becomes the newest
            super().__setitem__(key, value)
            while len(self) > self._keep:
                super().__delitem__(next(iter(self)))  # dicts iterate oldest first


def _results_bounded(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.results_cache = RecentResults(RESULTS_KEPT)  # before any connection takes a reference to it

    return init


def apply() -> None:
    """Patch fakesnow once per process (idempotent)."""
    global _applied
    if _applied:
        return
    cursor_cls = fakesnow.cursor.FakeSnowflakeCursor
    cursor_cls._describe_last_sql = _describe_last_sql_tolerant(cursor_cls._describe_last_sql)
    cursor_cls.execute = _errors_as_sql_errors(cursor_cls.execute)
    # the chain runs once per statement shape (fakesnow_chain_cache), and then on one copy of the tree
    cursor_cls._transform = fakesnow_chain_cache.reused_per_shape(_transform_copying_once(cursor_cls._transform))
    # inner first: the result's columns are read before the checkpoint runs another statement on the connection
    cursor_cls._execute = _bulk_copy_checkpointed(_merge_counts(_result_columns_kept(cursor_cls._execute)))
    tree_cls = sqlglot.expressions.core.Expression
    tree_cls.transform = _in_place_within_chain(tree_cls.transform)
    # cursor.py calls `transforms.information_schema_fs` through the package attribute, so rebinding it works
    fakesnow.transforms.information_schema_fs = _with_schemata(fakesnow.transforms.information_schema_fs)
    # cursor.py calls `transforms.tag` through the package attribute too; it runs on every statement
    fakesnow.transforms.tag = _with_iceberg_as_table(fakesnow.transforms.tag)
    # Snowflake's task record (INFORMATION_SCHEMA.TASK_HISTORY(...), ACCOUNT_USAGE) -> the local player's rows
    fakesnow.transforms.tag = task_history.before(fakesnow.transforms.tag)
    # cursor.py calls `transforms.extract_comment_on_table` through the package attribute as well
    fakesnow.transforms.extract_comment_on_table = _temporary_tables_unrecorded(
        fakesnow.transforms.extract_comment_on_table
    )
    cursor_cls._transform_explode = merge_in_one_statement(cursor_cls._transform_explode)
    fakesnow.copy_into.stage_url_from_var = _stage_with_path(fakesnow.copy_into.stage_url_from_var)
    # fakesnow.arrow.to_sf looks this name up in its module at call time
    fakesnow.arrow.timestamp_to_sf_struct = _null_timestamps_stay_null(fakesnow.arrow.timestamp_to_sf_struct)
    fakesnow.instance.FakeSnow.__init__ = _results_bounded(fakesnow.instance.FakeSnow.__init__)
    _applied = True
