"""CHECK_TABLE procedure: the declared checks of one table, after its merge, before the marts that read it.

Each check is SQL over OPS and CURATED (and the RAW rows of the batches this run merged), written to
OPS.QUALITY_RESULTS with what it observed, what it expected, the severity, a sample of offending keys and the SQL
itself (`finsight dq explain` shows it). A failed `error` or `quarantine` check fails the task: Snowflake then skips
the MART_ tasks after it, so a mart is never published over data that failed its checks.

"This run's rows" are the RAW rows of the batches this run merged for the table (OPS.MERGED_BATCHES.RUN_ID); the
baseline is what CURATED held from earlier batches, or earlier runs' results (row counts).
"""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from snowpark.quality.results import FAIL, HOLDS, PASS, RESULTS, SAMPLE_SIZE, Result, write
from snowpark.sql_text import literal, literal_list

MANIFESTS = "OPS.LANDED_BATCHES"
MERGED = "OPS.MERGED_BATCHES"
TASK_HISTORY = "OPS.TASK_HISTORY"
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution * 1.4826 = its standard deviation


def _rows(session: Any, sql: str) -> list[Any]:
    return session.sql(sql).collect()


def _ts(value: datetime) -> str:
    return f"CAST({literal(value.strftime('%Y-%m-%d %H:%M:%S.%f'))} AS TIMESTAMP_NTZ)"


class Context:
    """One table's checks in one run: the spec, the run, `now`, and the batches this run merged."""

    def __init__(self, session: Any, spec: dict[str, Any], run_id: str, now: datetime) -> None:
        self.session, self.spec, self.run_id, self.now = session, spec, run_id, now
        self.table, self.checks = spec["table"], spec["checks"]
        self.raw, self.curated = f"RAW.{spec['raw']}", f"CURATED.{spec['curated']}"
        self.batches = [
            r[0]
            for r in _rows(
                session,
                f"SELECT BATCH_ID FROM {MERGED} WHERE RAW_TABLE = {literal(spec['raw'])} "
                f"AND RUN_ID = {literal(run_id)}",
            )
        ]
        self.batch_list = literal_list(self.batches) if self.batches else "NULL"
        self._holds: list[Any] | None = None

    def holds(self) -> list[Any]:
        """The table's quarantine holds, released or not, oldest first (BATCH_ID, RUN_ID, CHECK_ID, REASON,
        still held): read once for the checks that need them (row_count, raw_duplicates)."""
        if self._holds is None:
            self._holds = _rows(
                self.session,
                f"SELECT BATCH_ID, RUN_ID, CHECK_ID, REASON, RELEASED_AT IS NULL FROM {HOLDS} "
                f"WHERE RAW_TABLE = {literal(self.spec['raw'])} ORDER BY HELD_AT",
            )
        return self._holds

    def result(self, check: str, status: str, severity: str | None = None, **kw: Any) -> Result:
        return Result(self.table, check, severity or self.checks[check]["severity"], status, **kw)

    def run_rows(self) -> str:
        """This run's upserted versions (tombstones carry only keys)."""
        return f"{self.raw} WHERE _BATCH_ID IN ({self.batch_list}) AND COALESCE(_OP, 'U') <> 'D'"

    def baseline_rows(self) -> str:
        """CURATED rows from earlier batches: the baseline null rates and status values are learned from."""
        return f"{self.curated} WHERE _BATCH_ID NOT IN ({self.batch_list})"

    def keys(self, alias: str = "") -> str:
        return ", ".join(f"{alias}{k}" for k in self.spec["primary_key"])


def _age_check(ctx: Context, sql: str, limit: float, measure: str, column: str | None, detail: bool) -> Result:
    """Freshness of the newest timestamp `sql` returns: FAIL when there is none or it is older than `limit` minutes."""
    newest = _rows(ctx.session, sql)[0][0]
    age = None if newest is None else round((ctx.now - newest).total_seconds() / 60, 1)
    return ctx.result(
        "freshness",
        FAIL if age is None or age > limit else PASS,
        column=column,
        observed={measure: age},
        expected={"max_minutes": limit},
        sql=sql,
        detail=f"newest read {newest}" if detail and newest is not None else None,
    )


def freshness(ctx: Context) -> list[Result]:
    """Age of the newest successful read of the table (a landed batch, or an extract that found nothing new), and of
    the newest cursor value when the table has a cursor SLA."""
    cfg = ctx.checks["freshness"]
    source = literal(f"EXTRACT_{ctx.spec['source'].upper()}")
    sql = (
        f"SELECT MAX(t) FROM (SELECT MAX(EXTRACTED_AT) AS t FROM {MANIFESTS} "
        f"WHERE RAW_TABLE = {literal(ctx.spec['raw'])} "
        f"UNION ALL SELECT MAX(QUERY_START_TIME) AS t FROM {TASK_HISTORY} WHERE NAME = {source} "
        "AND STATE = 'SUCCEEDED')"
    )
    out = [_age_check(ctx, sql, cfg["read_sla_minutes"], "minutes_since_read", None, detail=True)]
    if cfg.get("cursor_sla_minutes"):
        cursor = ctx.spec["cursor"]
        sql = f"SELECT MAX({cursor}) FROM {ctx.curated}"
        out.append(_age_check(ctx, sql, cfg["cursor_sla_minutes"], "minutes_since_cursor", cursor, detail=False))
    return out


def _baseline_volumes(ctx: Context, cfg: dict[str, Any]) -> list[float]:
    """Earlier runs' observed volumes: the same hour of the week over `lookback` weeks, or the last `lookback` runs."""
    check_id = literal(f"{ctx.table}:row_count")
    where = f"CHECK_ID = {check_id} AND RUN_ID <> {literal(ctx.run_id)} AND STATUS <> 'SKIPPED'"
    if cfg["seasonality"] == "hour_of_week":
        since = ctx.now - timedelta(weeks=cfg["lookback"])
        where += (
            f" AND CHECKED_AT >= {_ts(since)} AND DAYOFWEEK(CHECKED_AT) = DAYOFWEEK({_ts(ctx.now)}) "
            f"AND HOUR(CHECKED_AT) = {ctx.now.hour}"
        )
        limit = ""
    else:
        limit = f" LIMIT {int(cfg['lookback'])}"
    rows = _rows(ctx.session, f"SELECT OBSERVED FROM {RESULTS} WHERE {where} ORDER BY CHECKED_AT DESC{limit}")
    return [float(json.loads(r[0])["rows"]) for r in rows if r[0]]


def row_count(ctx: Context) -> list[Result]:
    """The run's landed (manifests) and merged rows against a robust baseline (median, MAD).

    A batch counts in the run it arrived in: one the quarantine gate held in this run landed (the hour is not
    missing, `raw_duplicates` reports it), and when it merges after its release it is not counted again.
    """
    cfg = ctx.checks["row_count"]
    raw = literal(ctx.spec["raw"])
    holds = [(h[0], h[1]) for h in ctx.holds()]
    held_now = {b for b, run in holds if run == ctx.run_id}
    held_before = {b for b, run in holds if run != ctx.run_id} - held_now
    arrived = sorted((set(ctx.batches) - held_before) | held_now)
    sql = (
        f"SELECT COALESCE(SUM(m.ROW_COUNT), 0), (SELECT COALESCE(SUM(ROWS_MERGED), 0) FROM {MERGED} "
        f"WHERE RAW_TABLE = {raw} AND RUN_ID = {literal(ctx.run_id)}) FROM {MANIFESTS} AS m "
        f"WHERE m.RAW_TABLE = {raw} AND m.BATCH_ID IN ({literal_list(arrived) if arrived else 'NULL'})"
    )
    landed, merged = (int(v) for v in _rows(ctx.session, sql)[0])
    history = _baseline_volumes(ctx, cfg)
    observed = {"rows": landed, "merged": merged, "batches": len(arrived)}
    if held_now:
        observed["held_batches"] = len(held_now)
    if cfg["never_quiet"] and landed == 0:
        return [
            ctx.result(
                "row_count",
                FAIL,
                observed=observed,
                expected={"min_rows": 1},
                sql=sql,
                detail="zero volume for a table that never goes quiet",
            )
        ]
    if len(history) < cfg["min_history"]:
        return [
            ctx.result(
                "row_count",
                PASS,
                observed=observed,
                sql=sql,
                expected={"min_history": cfg["min_history"], "history": len(history)},
                detail="not enough history for a verdict",
            )
        ]
    if landed == 0 and min(history) > 0:  # silent where every baseline hour had rows: a stall, not a wobble
        return [
            ctx.result(
                "row_count",
                FAIL,
                observed=observed,
                expected={"min_baseline_rows": min(history), "history": len(history)},
                sql=sql,
                detail="zero volume where every baseline hour had rows",
            )
        ]
    median = statistics.median(history)
    mad = statistics.median(abs(v - median) for v in history)
    allowed = max(cfg["mad_threshold"] * MAD_TO_SIGMA * mad, cfg["min_deviation_rows"],
                  cfg["min_deviation_ratio"] * median)  # fmt: skip
    status = FAIL if abs(landed - median) > allowed else PASS
    return [
        ctx.result(
            "row_count",
            status,
            observed=observed,
            sql=sql,
            expected={"median": median, "mad": mad, "allowed_deviation": round(allowed, 1), "history": len(history)},
        )
    ]


def null_spike(ctx: Context) -> list[Result]:
    cfg = ctx.checks["null_spike"]
    cols = ctx.spec["nullable"]
    if not cols or not ctx.batches:
        return []
    counts = ", ".join(f"SUM(CASE WHEN {c} IS NULL THEN 1 ELSE 0 END)" for c in cols)
    # this run's rows and the baseline in one statement (one round trip), told apart by the first column
    sql = (
        f"SELECT 'run' AS ROWS_OF, COUNT(*), {counts} FROM {ctx.run_rows()}\n"
        f"UNION ALL SELECT 'baseline', COUNT(*), {counts} FROM {ctx.baseline_rows()}"
    )
    by = {r[0]: r[1:] for r in _rows(ctx.session, sql)}
    now, base = by["run"], by["baseline"]
    n, b = int(now[0]), int(base[0])
    out = []
    for i, col in enumerate(cols, start=1):
        severity = cfg["column_severity"].get(col.lower(), cfg["severity"])
        if n < cfg["min_rows"] or b < cfg["min_rows"]:
            continue  # too few rows for a rate: no verdict, and no row (keeps QUALITY_RESULTS readable)
        rate, base_rate = int(now[i] or 0) / n, int(base[i] or 0) / b
        status = FAIL if rate - base_rate > cfg["max_increase"] else PASS
        sample = []
        if status == FAIL:
            sample = [
                list(r)
                for r in _rows(
                    ctx.session, f"SELECT {ctx.keys()} FROM {ctx.run_rows()} AND {col} IS NULL LIMIT {SAMPLE_SIZE}"
                )
            ]
        out.append(
            ctx.result(
                "null_spike",
                status,
                severity,
                column=col,
                sample_keys=sample,
                observed={"null_rate": round(rate, 4), "rows": n},
                expected={"baseline_rate": round(base_rate, 4), "max_increase": cfg["max_increase"]},
                sql=sql,
            )
        )
    return out


def referential_sql(curated: str, ref: dict[str, Any], cutoff: datetime) -> tuple[str, str]:
    """(SELECT orphans, waiting on a held parent; `FROM ... WHERE` of the orphans) for one reference of `curated`.

    Parents present and parents held are LEFT JOINed as distinct keys (a key held in two batches still counts its
    child once): Snowflake evaluates a correlated EXISTS only in a WHERE clause, never in a CASE or under OR
    ("Subquery operators", https://docs.snowflake.com/en/sql-reference/operators-subquery)."""
    col, pk, parent_raw = ref["column"], ref["parent_column"], ref.get("parent_raw", ref["parent"])
    parent = ref.get("parent_relation", f"CURATED.{ref['parent']}")
    held_keys = (
        f"SELECT DISTINCT r.{pk} AS K FROM RAW.{parent_raw} AS r JOIN {HOLDS} AS h ON h.BATCH_ID = r._BATCH_ID "
        f"AND h.RAW_TABLE = {literal(parent_raw)} AND h.RELEASED_AT IS NULL"
    )
    missing = (
        f"FROM {curated} AS c LEFT JOIN (SELECT DISTINCT {pk} AS K FROM {parent}) AS p ON p.K = c.{col} "
        f"LEFT JOIN ({held_keys}) AS held ON held.K = c.{col} "
        f"WHERE c.{col} IS NOT NULL AND c._EXTRACTED_AT <= {_ts(cutoff)} AND p.K IS NULL"
    )
    counts = (
        "SELECT SUM(CASE WHEN held.K IS NULL THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN held.K IS NULL THEN 0 ELSE 1 END) {missing}"
    )
    return counts, f"{missing} AND held.K IS NULL"


def referential(ctx: Context) -> list[Result]:
    """Children whose parent is missing from CURATED, once past the grace window (parents may land later).

    A parent that landed but is held by the quarantine gate is not missing: the parent table's own check fails
    while it is held (blocking the marts that read the parent), and its children wait for the release like
    children inside the grace window, instead of failing every table that references the held batch.
    """
    cfg = ctx.checks["referential"]
    cutoff = ctx.now - timedelta(minutes=cfg["grace_minutes"])
    out = []
    for ref in ctx.spec["references"]:
        col = ref["column"]
        sql, orphans = referential_sql(ctx.curated, ref, cutoff)
        n, waiting = (int(v or 0) for v in _rows(ctx.session, sql)[0])
        sample = []
        if n:
            sample = [
                list(r) for r in _rows(ctx.session, f"SELECT {ctx.keys('c.')}, c.{col} {orphans} LIMIT {SAMPLE_SIZE}")
            ]
        out.append(
            ctx.result(
                "referential",
                FAIL if n else PASS,
                column=col,
                observed={"orphans": n, "waiting_on_held_parent": waiting},
                expected={
                    "orphans": 0,
                    "parent": f"{ref['parent_table']}.{ref['parent_column'].lower()}",
                    "grace_minutes": cfg["grace_minutes"],
                },
                sample_keys=sample,
                sql=sql,
            )
        )
    return out


def unique(ctx: Context) -> list[Result]:
    dupes = f"FROM {ctx.curated} GROUP BY {ctx.keys()} HAVING COUNT(*) > 1"
    sql = f"SELECT COUNT(*) FROM (SELECT 1 {dupes})"
    n = int(_rows(ctx.session, sql)[0][0])
    sample = [list(r) for r in _rows(ctx.session, f"SELECT {ctx.keys()} {dupes} LIMIT {SAMPLE_SIZE}")] if n else []
    return [
        ctx.result(
            "unique",
            FAIL if n else PASS,
            column=None,
            observed={"duplicate_keys": n},
            expected={"duplicate_keys": 0},
            sample_keys=sample,
            sql=sql,
        )
    ]


def held_batches(ctx: Context) -> list[Result]:
    """Batches the merge-time gate holds (quarantine): reported on every run until released."""
    # what the result shows as its SQL; the rows come from the holds the context read once
    sql = (
        f"SELECT BATCH_ID, CHECK_ID, REASON FROM {HOLDS} WHERE RAW_TABLE = {literal(ctx.spec['raw'])} "
        "AND RELEASED_AT IS NULL ORDER BY HELD_AT"
    )
    held = [(h[0], h[2], h[3]) for h in ctx.holds() if h[4]]
    cfg = ctx.checks["raw_duplicates"]
    if not held and not cfg["enabled"]:
        return []
    return [
        ctx.result(
            "raw_duplicates",
            FAIL if held else PASS,
            observed={"held_batches": len(held)},
            expected={"held_batches": 0},
            sample_keys=[r[0] for r in held[:SAMPLE_SIZE]],
            sql=sql,
            detail="; ".join(f"{r[0]}: {r[2]}" for r in held[:SAMPLE_SIZE]) or None,
        )
    ]


def accepted_values(ctx: Context) -> list[Result]:
    """Status values of this run's rows: declared lists, or else the values CURATED already held (learned)."""
    cfg = ctx.checks["accepted_values"]
    out = []
    for col in ctx.spec["status_columns"] if ctx.batches else []:
        declared = cfg["values"].get(col.lower())
        if declared is not None:
            accepted, how = literal_list(declared), "declared"
        else:
            if not _rows(ctx.session, f"SELECT 1 FROM {ctx.baseline_rows()} LIMIT 1"):
                continue  # nothing learned yet (first load): no verdict
            accepted, how = f"SELECT DISTINCT {col} FROM {ctx.baseline_rows()} AND {col} IS NOT NULL", "learned"
        bad = f"FROM {ctx.run_rows()} AND {col} IS NOT NULL AND {col} NOT IN ({accepted})"
        sql = f"SELECT {col}, COUNT(*) {bad} GROUP BY {col}"
        values = {r[0]: int(r[1]) for r in _rows(ctx.session, sql)}
        sample = []
        if values:
            sample = [list(r) for r in _rows(ctx.session, f"SELECT {ctx.keys()}, {col} {bad} LIMIT {SAMPLE_SIZE}")]
        out.append(
            ctx.result(
                "accepted_values",
                FAIL if values else PASS,
                column=col,
                observed={"unexpected": values},
                sample_keys=sample,
                sql=sql,
                expected={"accepted": declared if declared is not None else "values CURATED held", "mode": how},
            )
        )
    return out


def schema_drift(ctx: Context) -> list[Result]:
    """Changes the connector found against the catalog in this run's batches (OPS.LANDED_BATCHES.SCHEMA_CHANGES)."""
    if not ctx.batches:
        return []
    sql = (
        f"SELECT BATCH_ID, SCHEMA_CHANGES FROM {MANIFESTS} WHERE RAW_TABLE = {literal(ctx.spec['raw'])} "
        f"AND BATCH_ID IN ({ctx.batch_list}) AND SCHEMA_CHANGES IS NOT NULL"
    )
    rows = _rows(ctx.session, sql)
    changes = sorted({str(c) for r in rows for c in (json.loads(r[1]) or [])})
    return [
        ctx.result(
            "schema_drift",
            FAIL if changes else PASS,
            observed={"changes": changes},
            expected={"changes": []},
            sample_keys=[r[0] for r in rows[:SAMPLE_SIZE]],
            sql=sql,
        )
    ]


CHECKS = {
    "freshness": freshness,
    "row_count": row_count,
    "null_spike": null_spike,
    "referential": referential,
    "unique": unique,
    "raw_duplicates": held_batches,
    "accepted_values": accepted_values,
    "schema_drift": schema_drift,
}


def run_checks(session: Any, spec: dict[str, Any], run_id: str, now: datetime | None = None) -> list[Result]:
    ctx = Context(session, spec, run_id, now or datetime.now(UTC).replace(tzinfo=None))
    results: list[Result] = []
    for name, check in CHECKS.items():
        if spec["checks"][name]["enabled"]:
            results.extend(check(ctx))
    write(session, run_id, ctx.now, results)
    return results


def check_table(session: Any, spec_json: str, run_id: str) -> str:
    """Handler of OPS.CHECK_TABLE(spec, run_id): raises when an `error` or `quarantine` check failed."""
    spec = json.loads(spec_json)
    results = run_checks(session, spec, run_id)
    blocking = [r for r in results if r.blocking]
    if blocking:
        raise RuntimeError(f"{spec['table']}: quality checks failed: " + "; ".join(r.summary() for r in blocking))
    warnings = [r.summary() for r in results if r.status == FAIL]
    return json.dumps(
        {"table": spec["table"], "run_id": run_id, "checks": len(results), "failed": 0, "warnings": warnings}
    )
