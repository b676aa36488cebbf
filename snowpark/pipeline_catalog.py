"""OPS.PIPELINE_CATALOG: table and mart specs written at deploy time, read by BACKFILL, BUILD_MART and retention.

Procedures ship as snowpark.zip without the config package, so what they need to know about tables and marts is
stored beside the data by `finsight dag deploy` (and by the local runner before each graph run).
"""

from __future__ import annotations

import json
from typing import Any

from snowpark.sql_text import literal

CATALOG = "OPS.PIPELINE_CATALOG"


def write(session: Any, rows: list[tuple[str, str, str]]) -> None:
    """Replace the catalog with (kind, name, spec JSON) rows in one transaction."""
    session.sql("BEGIN").collect()
    try:
        session.sql(f"DELETE FROM {CATALOG}").collect()
        if rows:
            values = ", ".join(f"({literal(k)}, {literal(n)}, {literal(s)})" for k, n, s in rows)
            session.sql(f"INSERT INTO {CATALOG} (KIND, NAME, SPEC) VALUES {values}").collect()
        session.sql("COMMIT").collect()
    except Exception:
        session.sql("ROLLBACK").collect()
        raise


def specs(session: Any, kind: str) -> list[dict[str, Any]]:
    rows = session.sql(f"SELECT SPEC FROM {CATALOG} WHERE KIND = {literal(kind)} ORDER BY NAME").collect()
    return [json.loads(r[0]) for r in rows]


def spec(session: Any, kind: str, name: str) -> dict[str, Any]:
    rows = session.sql(f"SELECT SPEC FROM {CATALOG} WHERE KIND = {literal(kind)} AND NAME = {literal(name)}").collect()
    if not rows:
        known = ", ".join(str(s.get("table") or s.get("mart")) for s in specs(session, kind))
        raise ValueError(f"unknown {kind} {name!r} in {CATALOG}; known: {known or 'none (run `finsight dag deploy`)'}")
    return json.loads(rows[0][0])
