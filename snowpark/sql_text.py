"""Quoting helpers for SQL text built inside procedures (values only; identifiers come from the config), and the
one-number query they all run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def literal(value: object) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def literal_list(values: Iterable[object]) -> str:
    return ", ".join(literal(v) for v in values)


def count_rows(session: Any, sql: str) -> int:
    """The single number a `SELECT COUNT(*) ...` returns."""
    return int(session.sql(sql).collect()[0][0])
