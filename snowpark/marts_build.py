"""BUILD_MART procedure: rebuild the business dates of one mart that changed since its last build.

Incremental by affected business date, idempotent: the dates come from OPS.CHANGED_DATES (recorded by MERGE for
old and new versions, deletes included) for the mart's upstream date columns, widened by the mart's
`neighbour_days` and rounded to its partition grain. Each build replaces those partitions in one transaction
(DELETE + INSERT of the query's rows for them), so a rerun writes the same rows and readers never see a half-built
day. The first build, a `full_refresh` config, or an optional upstream appearing rebuilds everything.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from typing import Any

from snowpark import pipeline_catalog
from snowpark.sql_text import literal, literal_list

CHANGED_DATES = "OPS.CHANGED_DATES"
BUILDS = "OPS.MART_BUILDS"
EPOCH = "1970-01-01 00:00:00"


def _present(session: Any, spec: dict[str, Any]) -> list[str]:
    """Optional upstream CURATED tables that exist now (another team's source switches on by itself)."""
    optional = [u["raw"] for u in spec["upstreams"] if u["optional"]]
    if not optional:
        return []
    rows = session.sql(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
        f"WHERE TABLE_SCHEMA = {literal(spec['curated_schema'])} AND TABLE_NAME IN ({literal_list(optional)})"
    ).collect()
    return sorted({r[0] for r in rows})


def _partition(day: date, grain: str) -> date:
    return day.replace(day=1) if grain == "month" else day


def _changed_partitions(session: Any, spec: dict[str, Any], since: str, upto: str) -> list[date]:
    pairs = [(u["raw"], c) for u in spec["upstreams"] for c in u["date_columns"]]
    if not pairs:
        return []
    match = " OR ".join(f"(RAW_TABLE = {literal(r)} AND DATE_COLUMN = {literal(c)})" for r, c in pairs)
    rows = session.sql(
        f"SELECT DISTINCT BUSINESS_DATE FROM {CHANGED_DATES} WHERE RECORDED_AT > {literal(since)} "
        f"AND RECORDED_AT <= {literal(upto)} AND ({match})"
    ).collect()
    n = int(spec.get("neighbour_days") or 0)
    days = {r[0] + timedelta(days=offset) for r in rows for offset in range(-n, n + 1)}
    return sorted({_partition(d, spec["partition_grain"]) for d in days})


# A concurrent build of the same mart (OPS.BACKFILL called while the hourly graph runs) deletes the same partition
# rows. Snowflake serializes the two DELETEs on the table lock; DuckDB (the local engine) is optimistic and aborts
# the later writer instead ("TransactionContext Error: Conflict on tuple deletion!"). Either way the loser's
# transaction is rolled back whole, so building again from the start (dates recomputed after the winner's build) is
# correct and idempotent.
WRITE_CONFLICTS = ("conflict on tuple", "write-write conflict", "deadlock", "lock wait timeout", "locked by")
BUILD_ATTEMPTS = 5


def _write_conflict(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in WRITE_CONFLICTS)


def build_mart(session: Any, mart: str, run_id: str, config_json: str | None = None) -> str:
    """Handler of OPS.BUILD_MART(mart, run_id, config). Returns a JSON summary (mode, partitions, rows)."""
    for attempt in range(1, BUILD_ATTEMPTS + 1):
        try:
            return _build_once(session, mart, run_id, config_json)
        except Exception as exc:  # only a lost write race is retried; anything else is the build's error
            if attempt == BUILD_ATTEMPTS or not _write_conflict(exc):
                raise
    raise AssertionError("unreachable")


def _build_once(session: Any, mart: str, run_id: str, config_json: str | None) -> str:
    spec = pipeline_catalog.spec(session, "mart", mart)
    config = _config(config_json)
    present = _present(session, spec)
    sql = spec["variants"][",".join(present)]
    # which optional upstreams + which query text: a changed definition rebuilds the whole mart
    variant = ",".join(present) + "#" + hashlib.sha256(sql.encode()).hexdigest()[:12]
    started = session.sql("SELECT CAST(CURRENT_TIMESTAMP() AS TIMESTAMP_NTZ)").collect()[0][0]
    last = session.sql(
        f"SELECT CHANGES_UPTO, VARIANT FROM {BUILDS} WHERE MART = {literal(mart)} ORDER BY PUBLISHED_AT DESC LIMIT 1"
    ).collect()
    upto_row = session.sql(f"SELECT MAX(RECORDED_AT) FROM {CHANGED_DATES}").collect()[0][0]
    upto = str(upto_row) if upto_row is not None else EPOCH
    full = (
        not last
        or bool(config.get("full_refresh"))
        or mart in (config.get("full_refresh_marts") or [])
        or last[0][1] != variant
    )
    table, part = spec["table"], spec["partition_column"]
    columns = ", ".join(spec["columns"])
    partitions: list[date] = []
    if not full:
        since = str(last[0][0]) if last[0][0] is not None else EPOCH
        partitions = _changed_partitions(session, spec, since, upto)
    mode = "full" if full else ("incremental" if partitions else "unchanged")
    written = 0
    session.sql("BEGIN").collect()
    try:
        if mode != "unchanged":
            where = "" if full else f" WHERE {part} IN ({_dates(partitions)})"
            session.sql(f"DELETE FROM {table}{where}").collect()
            where_q = "" if full else f" WHERE q.{part} IN ({_dates(partitions)})"
            result = session.sql(
                f"INSERT INTO {table} ({columns}, _RUN_ID, _BUILT_AT) "
                f"SELECT {', '.join('q.' + c for c in spec['columns'])}, {literal(run_id)}, CURRENT_TIMESTAMP() "
                f"FROM ({sql}) AS q{where_q}"
            ).collect()
            written = int(result[0][0]) if result else 0
        count = 0 if full else len(partitions)
        if full:
            count = int(session.sql(f"SELECT COUNT(DISTINCT {part}) FROM {table}").collect()[0][0])
        session.sql(
            f"INSERT INTO {BUILDS} (MART, RUN_ID, MODE, PARTITIONS, ROWS_WRITTEN, VARIANT, CHANGES_UPTO, STARTED_AT, "
            f"PUBLISHED_AT) VALUES ({literal(mart)}, {literal(run_id)}, {literal(mode)}, {count}, {written}, "
            f"{literal(variant)}, {literal(upto)}, {literal(str(started))}, CURRENT_TIMESTAMP())"
        ).collect()
        session.sql("COMMIT").collect()
    except Exception:
        session.sql("ROLLBACK").collect()
        raise
    return json.dumps(
        {"mart": mart, "mode": mode, "partitions": count, "rows_written": written, "optional_upstreams": present}
    )


def _dates(days: list[date]) -> str:
    return ", ".join(f"CAST({literal(d.isoformat())} AS DATE)" for d in days)


def _config(config_json: str | None) -> dict[str, Any]:
    """The graph's CONFIG (TO_JSON of SYSTEM$GET_TASK_GRAPH_CONFIG() in Snowflake; a JSON text locally)."""
    if not config_json:
        return {}
    value = json.loads(config_json)
    if isinstance(value, str):  # a JSON string holding the JSON object
        value = json.loads(value) if value else {}
    return value or {}
