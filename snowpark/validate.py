"""VALIDATE_MART procedure: the checks declared in a mart's metadata.yaml, run after every build.

`fail` checks fail the task (and so the run: FINALIZE alerts); `warn` checks are reported in the task's return
value and the run log. Kinds: unique_keys, not_null_keys, freshness (the last build is within the SLA and no
change of its upstreams is left unconsumed), zero_rows (a query whose rows are violations).
"""

from __future__ import annotations

import json
from typing import Any

from snowpark import pipeline_catalog
from snowpark.sql_text import literal, literal_list


def _violations(session: Any, spec: dict[str, Any], check: dict[str, Any]) -> int:
    table, keys = spec["table"], spec["keys"]
    kind = check["kind"]
    if kind == "unique_keys":
        sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM {table} GROUP BY {', '.join(keys)} HAVING COUNT(*) > 1)"
    elif kind == "not_null_keys":
        sql = f"SELECT COUNT(*) FROM {table} WHERE " + " OR ".join(f"{k} IS NULL" for k in keys)
    elif kind == "freshness":
        return _stale(session, spec)
    elif kind == "zero_rows":
        sql = f"SELECT COUNT(*) FROM ({check['sql'].format(table=table)})"
    else:
        raise ValueError(f"unknown check kind {kind!r}")
    return int(session.sql(sql).collect()[0][0])


def _stale(session: Any, spec: dict[str, Any]) -> int:
    """1 when the mart was not built within its SLA or its upstreams changed after the last build consumed them."""
    rows = session.sql(
        "SELECT CHANGES_UPTO, DATEDIFF('minute', PUBLISHED_AT, CAST(CURRENT_TIMESTAMP() AS TIMESTAMP_NTZ)) "
        f"FROM OPS.MART_BUILDS WHERE MART = {literal(spec['mart'])} ORDER BY PUBLISHED_AT DESC LIMIT 1"
    ).collect()
    if not rows or rows[0][1] is None or int(rows[0][1]) > int(spec["freshness_sla_minutes"]):
        return 1
    raws = [u["raw"] for u in spec["upstreams"] if u["date_columns"]]
    if not raws or rows[0][0] is None:
        return 0
    pending = session.sql(
        f"SELECT COUNT(*) FROM OPS.CHANGED_DATES WHERE RAW_TABLE IN ({literal_list(raws)}) "
        f"AND RECORDED_AT > {literal(str(rows[0][0]))}"
    ).collect()[0][0]
    return 1 if int(pending) else 0


def validate_mart(session: Any, mart: str, run_id: str) -> str:
    """Handler of OPS.VALIDATE_MART(mart, run_id): raises when a `fail` check finds violations."""
    spec = pipeline_catalog.spec(session, "mart", mart)
    results = []
    for check in spec["checks"]:
        n = _violations(session, spec, check)
        results.append({"check": check["name"], "severity": check["severity"], "violations": n})
    failed = [r for r in results if r["violations"] and r["severity"] == "fail"]
    if failed:
        names = ", ".join(f"{r['check']} ({r['violations']})" for r in failed)
        raise RuntimeError(f"mart {mart}: checks failed: {names}")
    warnings = [r["check"] for r in results if r["violations"]]
    return json.dumps({"mart": mart, "run_id": run_id, "checks": results, "warnings": warnings})
