"""fakesnow's rewrite chain run once per statement *shape*, not once per statement.

Why: fakesnow rewrites every statement with a chain of ~75 tree passes before DuckDB runs it; in a steady hourly cycle
that is ~22 % of the local Snowflake's CPU (py-spy), more than any other part but DuckDB itself. The platform sends
the same few shapes over and over with other values: the run log's and the task record's INSERTs (~180 an hour),
each quality check's reads, each table's MERGE with the batch ids of the hour.

A statement's shape is its tree with the data values replaced by sentinels: literals (or literals CAST to a type)
in a VALUES row, in a SELECT list, compared with a column (=, <>, <, <=, >, >=), in an IN list or as the bounds of a
BETWEEN. No link of fakesnow's chain derives SQL from such a value (they rewrite functions, types, identifiers, SHOW
and DDL). The first statement of a shape is rewritten as without the cache, and what that gave is kept (a shape that
never comes back, say a MERGE whose key ranges differ every hour, costs nothing more). The second statement runs the
chain on the shape instead: filled with the first statement's values, the shape's rewrite must give exactly the SQL
the first one's own rewrite gave, else the shape is never reused. Later statements of the shape copy the stored
rewrite and fill in their values: one chain per shape, whatever the number of statements.
Only SELECT, INSERT, UPDATE, DELETE and MERGE without bind parameters are reused, per current database and schema
(links resolve names against them).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

SHAPES_KEPT = 4096  # distinct shapes remembered (a steady hour sends a few hundred)
_REUSED_KINDS = (exp.Select, exp.SetOperation, exp.Insert, exp.Update, exp.Delete, exp.Merge)
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_STRING_SENTINEL = "__finsight_value_{}__"
_NUMBER_SENTINEL = 8_675_309_000_000_000  # + the value's position; a statement holding one is not reused
_NOT_REUSABLE = object()


def _is_data_value(literal: exp.Literal) -> bool:
    node: exp.Expr = literal
    if isinstance(node.parent, exp.Cast) and node.parent.this is node:  # CAST('2026-01-01 10:00' AS TIMESTAMP_NTZ)
        node = node.parent
    parent = node.parent
    if isinstance(parent, exp.Alias):  # SELECT 'run-1' AS RUN_ID
        node, parent = parent, parent.parent
    if isinstance(parent, exp.Select):
        return any(e is node for e in parent.expressions)
    if isinstance(parent, exp.Tuple):
        return isinstance(parent.parent, exp.Values)
    if isinstance(parent, _COMPARISONS):
        other = parent.expression if parent.this is node else parent.this
        return isinstance(other, exp.Column)
    if isinstance(parent, exp.In):
        return isinstance(parent.this, exp.Column) and any(e is node for e in parent.expressions)
    if isinstance(parent, exp.Between):
        return isinstance(parent.this, exp.Column) and parent.this is not node
    return False


def data_values(statement: exp.Expr) -> list[exp.Literal] | None:
    """The statement's data-value literals, in tree order; None when it already holds a literal that looks like a
    sentinel (it is then rewritten on its own)."""
    literals = list(statement.find_all(exp.Literal))
    if any(_looks_like_sentinel(n) for n in literals):
        return None
    return [n for n in literals if _is_data_value(n)]


@contextmanager
def as_shape(values: list[exp.Literal]) -> Iterator[list[str]]:
    """The statement holding sentinels in place of `values` (set in place, no copy of the tree), restored on exit;
    yields the values' own texts, what `fill` puts back.

    Why in place: a copy of the whole statement for every statement was ~6 % of the local Snowflake's CPU; the shape
    is needed only as text (the cache key) and, once per shape, as the input of the chain, which copies it anyway."""
    kept = [v.this for v in values]
    for position, literal in enumerate(values):
        sentinel = _STRING_SENTINEL.format(position) if literal.is_string else str(_NUMBER_SENTINEL + position)
        literal.set("this", sentinel)
    try:
        yield kept
    finally:
        for literal, this in zip(values, kept, strict=True):
            literal.set("this", this)


def _looks_like_sentinel(literal: exp.Literal) -> bool:
    if literal.is_string:
        return literal.this.startswith(_STRING_SENTINEL.split("{")[0])
    return literal.this.startswith(str(_NUMBER_SENTINEL)[:7])


def fill(rewritten: exp.Expr, values: list[str]) -> exp.Expr:
    """The shape's rewrite (modified in place) with each sentinel replaced by the value (literal text) it stands for."""
    strings = {_STRING_SENTINEL.format(i): v for i, v in enumerate(values)}
    numbers = {str(_NUMBER_SENTINEL + i): v for i, v in enumerate(values)}
    for literal in list(rewritten.find_all(exp.Literal)):
        value = (strings if literal.is_string else numbers).get(literal.this)
        if value is not None:
            literal.set("this", value)
    return rewritten


class ShapeCache:
    """Rewrites by (shape's SQL, current database, current schema), newest SHAPES_KEPT, shared by every session."""

    def __init__(self) -> None:
        self._rewrites: OrderedDict[tuple[str, str | None, str | None], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.reused = 0  # statements answered from a stored rewrite (tests and profiling read it)

    def get(self, key: tuple[str, str | None, str | None]) -> Any:
        with self._lock:
            found = self._rewrites.get(key)
            if found is not None:
                self._rewrites.move_to_end(key)
            return found

    def put(self, key: tuple[str, str | None, str | None], rewrite: Any) -> None:
        with self._lock:
            self._rewrites[key] = rewrite
            while len(self._rewrites) > SHAPES_KEPT:
                self._rewrites.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._rewrites.clear()
            self.reused = 0


SHAPES = ShapeCache()


@dataclass(frozen=True)
class _FirstSeen:
    """A shape's first statement: its values and what its own rewrite gave, to check the shape's rewrite against."""

    values: list[str]
    sql: str
    args: frozenset[str]


def _seen(rewrite: exp.Expr, values: list[str]) -> _FirstSeen:
    return _FirstSeen(values, rewrite.sql(dialect="duckdb"), frozenset(rewrite.args))


def reused_per_shape(original: Callable[..., exp.Expr]) -> Callable[..., exp.Expr]:
    """Wrap fakesnow's `_transform(self, expression, params)` (the whole chain) with the shape cache."""

    @functools.wraps(original)
    def transform(self: Any, expression: exp.Expr, params: Any) -> exp.Expr:
        if params or not isinstance(expression, _REUSED_KINDS):
            return original(self, expression, params)
        literals = data_values(expression)
        if literals is None:
            return original(self, expression, params)
        with as_shape(literals) as values:
            key = (expression.sql(dialect="snowflake"), self._conn.database, self._conn.schema)
        stored = SHAPES.get(key)
        if stored is None:  # the first statement: rewritten as without the cache, its result kept for the check
            own = original(self, expression, params)
            SHAPES.put(key, _seen(own, values))
            return own
        if isinstance(stored, _FirstSeen):  # the second: the shape's rewrite must give the first one's SQL
            with as_shape(literals):
                rewritten = original(self, expression, params)  # the chain rewrites a copy of its input
            if _seen(fill(rewritten.copy(), stored.values), stored.values) != stored:
                SHAPES.put(key, _NOT_REUSABLE)
                return original(self, expression, params)
            SHAPES.put(key, rewritten)
            return fill(rewritten.copy(), values)
        if stored is _NOT_REUSABLE:
            return original(self, expression, params)
        SHAPES.reused += 1
        return fill(stored.copy(), values)

    return transform
