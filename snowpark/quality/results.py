"""OPS.QUALITY_RESULTS: one row per check evaluated (pass, fail or skipped), and OPS.QUALITY_HOLDS (quarantine)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from snowpark.sql_text import literal

RESULTS = "OPS.QUALITY_RESULTS"
HOLDS = "OPS.QUALITY_HOLDS"
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIPPED"
BLOCKING = ("error", "quarantine")  # these fail the CHECK task: the marts reading the table are not published
SAMPLE_SIZE = 5


@dataclass
class Result:
    table: str
    check: str
    severity: str
    status: str
    observed: Any = None
    expected: Any = None
    column: str | None = None
    sample_keys: list[Any] = field(default_factory=list)
    sql: str | None = None
    detail: str | None = None

    @property
    def check_id(self) -> str:
        """Stable across runs: what `finsight dq explain` takes."""
        return ":".join([self.table, self.check] + ([self.column.lower()] if self.column else []))

    @property
    def blocking(self) -> bool:
        return self.status == FAIL and self.severity in BLOCKING

    def summary(self) -> str:
        return f"{self.check_id} [{self.severity}] observed {self.observed}, expected {self.expected}"


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str)


def write(session: Any, run_id: str, checked_at: datetime, results: list[Result]) -> None:
    if not results:
        return
    columns = [
        "RUN_ID",
        "CHECK_ID",
        "CHECK_NAME",
        "TABLE_NAME",
        "COLUMN_NAME",
        "OBSERVED",
        "EXPECTED",
        "SEVERITY",
        "STATUS",
        "SAMPLE_KEYS",
        "SQL_TEXT",
        "DETAIL",
        "CHECKED_AT",
    ]
    rows = []
    for r in results:
        values = [
            run_id,
            r.check_id,
            r.check,
            r.table,
            r.column,
            _json(r.observed),
            _json(r.expected),
            r.severity,
            r.status,
            _json(r.sample_keys) if r.sample_keys else None,
            r.sql,
            r.detail,
        ]
        rows.append(
            "(" + ", ".join(literal(v) for v in values) + f", CAST({literal(str(checked_at))} AS TIMESTAMP_NTZ))"
        )
    session.sql(f"INSERT INTO {RESULTS} ({', '.join(columns)}) VALUES {', '.join(rows)}").collect()
