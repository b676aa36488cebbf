"""Quoting helpers for SQL text built inside procedures (values only; identifiers come from the config)."""

from __future__ import annotations

from collections.abc import Iterable


def literal(value: object) -> str:
    if value is None:
        return "NULL"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def literal_list(values: Iterable[object]) -> str:
    return ", ".join(literal(v) for v in values)
