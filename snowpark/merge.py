"""MERGE_TABLE procedure: RAW -> CURATED for one table, idempotent and replayable.

Registered in Snowflake as a Snowpark Python procedure; called in-process by the local DAG runner.
A batch is merged only when its manifest has landed and RAW holds all its rows. Within the pending batches the
latest version of each key wins (read time `_EXTRACTED_AT`, then batch id, then row number), and CURATED is only
overwritten by a row at least as new as the one it holds, so reruns and replays of old batches can never move data
backwards.

Deleted keys are remembered in OPS.<RAW>__TOMBSTONES with the read time at which the source no longer had them
(a `_OP = 'D'` tombstone, or absence from a primary-key snapshot). A version read before that time is never
inserted again: a replay, a backfill re-merge or a late batch cannot resurrect a deleted row.

Before changing CURATED, MERGE records the business dates of every version it touches (old and new, deletes
included) in OPS.CHANGED_DATES for the date columns marts partition by (spec["date_columns"]): the marts rebuild
exactly those dates.
"""

from __future__ import annotations

import json
from typing import Any

from snowpark.quality.gate import hold
from snowpark.schema_evolution import evolve_curated
from snowpark.sql_text import count_rows, literal, literal_list

MANIFESTS = "OPS.LANDED_BATCHES"
MERGED = "OPS.MERGED_BATCHES"
CHANGED_DATES = "OPS.CHANGED_DATES"
TOMBSTONE_SUFFIX = "__TOMBSTONES"  # = finsight.catalog.TOMBSTONE_SUFFIX (procedures ship without finsight/)
META = ["_BATCH_ID", "_EXTRACTED_AT", "_ROW_NUMBER", "_OP"]
MAX_RANGES = 64  # key ranges a MERGE prunes by: a bounded OR of BETWEENs (late updates of old keys get their own)


def tombstones(spec: dict[str, Any]) -> str:
    return f"OPS.{spec['raw']}{TOMBSTONE_SUFFIX}"


def _ready_batches(
    session: Any, spec: dict[str, Any], replay_batch: str | None = None, batch_ids: list[str] | None = None
) -> tuple[list[dict], list[str]]:
    """(complete batches, `<id>: why it waits`) among the pending ones, or among `replay_batch` / `batch_ids`."""
    raw = f"RAW.{spec['raw']}"
    if replay_batch:
        where = f"m.BATCH_ID = {literal(replay_batch)}"
    elif batch_ids is not None:
        if not batch_ids:
            return [], []
        where = f"m.BATCH_ID IN ({literal_list(batch_ids)})"
    else:
        where = f"m.BATCH_ID NOT IN (SELECT BATCH_ID FROM {MERGED} WHERE RAW_TABLE = {literal(spec['raw'])})"
    manifests = session.sql(
        f"SELECT m.BATCH_ID, m.ROW_COUNT, m.PK_SNAPSHOT_ROWS, m.EXTRACTED_AT FROM {MANIFESTS} m "
        f"WHERE m.RAW_TABLE = {literal(spec['raw'])} AND {where} ORDER BY m.EXTRACTED_AT, m.BATCH_ID"
    ).collect()
    # one manifest per batch: a manifest loaded twice (a re-sent event) must not count its batch twice
    unique: dict[str, Any] = {}
    for m in manifests:
        unique.setdefault(m["BATCH_ID"], m)
    manifests = list(unique.values())
    if not manifests:
        return [], []
    ids = literal_list([m["BATCH_ID"] for m in manifests])
    landed = {
        r["B"]: r["N"]
        for r in session.sql(
            f"SELECT _BATCH_ID AS B, COUNT(DISTINCT _ROW_NUMBER) AS N FROM {raw} WHERE _BATCH_ID IN ({ids}) GROUP BY 1"
        ).collect()
    }
    pk_landed: dict[str, int] = {}
    if spec["pk_snapshot"]:
        pk_landed = {
            r["B"]: r["N"]
            for r in session.sql(
                f"SELECT _BATCH_ID AS B, COUNT(DISTINCT _ROW_NUMBER) AS N FROM {raw}__PKS "
                f"WHERE _BATCH_ID IN ({ids}) GROUP BY 1"
            ).collect()
        }
    ready, waiting = [], []
    for m in manifests:
        rows, pks = landed.get(m["BATCH_ID"], 0), pk_landed.get(m["BATCH_ID"], 0)
        rows_ok = rows == m["ROW_COUNT"]
        pks_ok = m["PK_SNAPSHOT_ROWS"] is None or pks == m["PK_SNAPSHOT_ROWS"]
        if rows_ok and pks_ok:
            ready.append(m.as_dict())
        else:
            why = f"{rows} of {m['ROW_COUNT']} rows in RAW"
            if m["PK_SNAPSHOT_ROWS"] is not None:
                why += f", {pks} of {m['PK_SNAPSHOT_ROWS']} snapshot keys"
            waiting.append(f"{m['BATCH_ID']}: {why}")
    return ready, waiting


def _key_match(spec: dict[str, Any], left: str, right: str) -> str:
    return " AND ".join(f"{left}.{k} = {right}.{k}" for k in spec["primary_key"])


def _newest_tombstones(spec: dict[str, Any]) -> str:
    """The newest tombstone of each key, by (read time, batch): a relation to join, not a subquery to correlate.

    Snowflake evaluates a correlated EXISTS only in a WHERE clause and never under OR ("Subquery operators",
    https://docs.snowflake.com/en/sql-reference/operators-subquery), so the dead-version test is a join.
    A version is dead when some tombstone is at least as new; that holds exactly when the newest one is."""
    keys = ", ".join(spec["primary_key"])
    return (
        f"(SELECT {keys}, _EXTRACTED_AT, _BATCH_ID FROM {tombstones(spec)} "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY _EXTRACTED_AT DESC, _BATCH_ID DESC) = 1)"
    )


def _with_tombstone(spec: dict[str, Any], alias: str) -> str:
    """`RAW AS alias` with its key's newest tombstone as `d` (NULL columns: the key was never deleted)."""
    return f"RAW.{spec['raw']} AS {alias} LEFT JOIN {_newest_tombstones(spec)} AS d ON {_key_match(spec, 'd', alias)}"


def _deleted_later(alias: str) -> str:
    """The key's newest tombstone (`d`, joined by `_with_tombstone`) was read at or after this version: it is dead.
    FALSE, not NULL, when there is none, so NOT of it is a plain boolean."""
    return (
        f"COALESCE(d._EXTRACTED_AT > {alias}._EXTRACTED_AT "
        f"OR (d._EXTRACTED_AT = {alias}._EXTRACTED_AT AND d._BATCH_ID >= {alias}._BATCH_ID), FALSE)"
    )


def key_ranges(session: Any, spec: dict[str, Any], batch_ids: str) -> list[tuple[Any, Any]]:
    """Ranges of the first primary-key column that cover every key of the batches, split at their widest gaps.

    Why: CURATED holds seven years; the MERGE must read only the micro-partitions its batch can touch. Any CURATED row
    a batch row matches has the same first-key value, which lies in one of these ranges by construction, so pruning
    by them never changes what MERGE does (a late update of an old key gets a range of its own, it is not cut off).
    CURATED is clustered by that column (migrations/R__curated_tables.sql), so each range spans few micro-partitions:
    https://docs.snowflake.com/en/user-guide/tables-clustering-micropartitions (query pruning by min/max per
    micro-partition). A numeric key is split at its MAX_RANGES - 1 widest gaps; any other type gets [min, max].
    """
    k = spec["primary_key"][0]
    base = (
        f"SELECT DISTINCT s.{k} AS K FROM RAW.{spec['raw']} AS s "
        f"WHERE s._BATCH_ID IN ({batch_ids}) AND s.{k} IS NOT NULL"
    )
    low, high = session.sql(f"SELECT MIN(K), MAX(K) FROM ({base}) AS b").collect()[0]
    if low is None:
        return []
    if not (_numeric(low) and _numeric(high)):
        return [(low, high)] if isinstance(low, str) and isinstance(high, str) else []
    gaps = session.sql(
        f"SELECT g.K, g.NXT FROM (SELECT b.K, LEAD(b.K) OVER (ORDER BY b.K) AS NXT FROM ({base}) AS b) AS g "
        f"WHERE g.NXT IS NOT NULL AND g.NXT - g.K > 1 ORDER BY g.NXT - g.K DESC, g.K LIMIT {MAX_RANGES - 1}"
    ).collect()
    cuts = sorted((g[0], g[1]) for g in gaps)
    starts = [low, *(c[1] for c in cuts)]
    ends = [*(c[0] for c in cuts), high]
    return list(zip(starts, ends, strict=True))


def _numeric(value: Any) -> bool:
    from decimal import Decimal

    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def _bound(value: Any) -> str:
    return literal(value) if isinstance(value, str) else str(value)


def prune_predicate(spec: dict[str, Any], alias: str, ranges: list[tuple[Any, Any]]) -> str:
    """`alias.<first key>` within one of the ranges, as literals (compile-time pruning); TRUE without ranges."""
    if not ranges:
        return "TRUE"
    k = f"{alias}.{spec['primary_key'][0]}"
    parts = [f"{k} = {_bound(lo)}" if lo == hi else f"{k} BETWEEN {_bound(lo)} AND {_bound(hi)}" for lo, hi in ranges]
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def _source_sql(spec: dict[str, Any], batch_ids: str) -> str:
    """The newest live version of each key among the batches (tombstones stay: they delete)."""
    every = spec["columns"] + META
    return (
        f"SELECT {', '.join('s.' + c for c in every)} FROM {_with_tombstone(spec, 's')} "
        f"WHERE s._BATCH_ID IN ({batch_ids}) AND (s._OP = 'D' OR NOT {_deleted_later('s')}) "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join('s.' + k for k in spec['primary_key'])} "
        "ORDER BY s._EXTRACTED_AT DESC, s._BATCH_ID DESC, s._ROW_NUMBER DESC) = 1"
    )


def _skipped_deleted_sql(spec: dict[str, Any], batch_ids: str) -> str:
    """How many upserted versions of the batches `_source_sql` leaves out because their key was deleted later."""
    return (
        f"SELECT COUNT(*) FROM {_with_tombstone(spec, 's')} WHERE s._BATCH_ID IN ({batch_ids}) "
        f"AND COALESCE(s._OP, 'U') <> 'D' AND {_deleted_later('s')}"
    )


def _merge_sql(spec: dict[str, Any], batch_ids: str, ranges: list[tuple[Any, Any]] | None = None) -> str:
    """Which version wins is decided by when the source was read (_EXTRACTED_AT), never by the source's cursor value:
    every read returns a row's current committed version, so a later read is never older, whatever its cursor says.
    Tombstones (_OP = 'D') delete the key when they are the newest version."""
    cols = spec["columns"]
    every = cols + META
    # the key match, then the batch's key ranges on the target alone: the scan of CURATED is pruned to them
    on = _key_match(spec, "tgt", "src")
    if ranges:
        on += f" AND {prune_predicate(spec, 'tgt', ranges)}"
    # strictly newer: the version CURATED already holds (same read time, same batch) is not rewritten, so a replay
    # reports the rows it really changed
    newer = (
        "(src._EXTRACTED_AT > tgt._EXTRACTED_AT OR (src._EXTRACTED_AT = tgt._EXTRACTED_AT "
        "AND src._BATCH_ID > tgt._BATCH_ID))"
    )
    return (
        f"MERGE INTO CURATED.{spec['curated']} AS tgt USING ({_source_sql(spec, batch_ids)}) AS src ON {on} "
        f"WHEN MATCHED AND src._OP = 'D' AND {newer} THEN DELETE "
        f"WHEN MATCHED AND {newer} THEN UPDATE SET "
        + ", ".join(f"{c} = src.{c}" for c in every)
        + ", _MERGED_AT = CURRENT_TIMESTAMP() "
        f"WHEN NOT MATCHED AND COALESCE(src._OP, 'U') <> 'D' THEN INSERT ({', '.join(every)}, _MERGED_AT) "
        f"VALUES ({', '.join('src.' + c for c in every)}, CURRENT_TIMESTAMP())"
    )


def _record_changed_dates(
    session: Any, spec: dict[str, Any], run_id: str, batch_ids: str, ranges: list[tuple[Any, Any]] | None = None
) -> None:
    """Dates of the new versions (RAW) and of the versions they replace or delete (CURATED), per date column."""
    columns = spec.get("date_columns") or []
    if not columns:
        return
    raw, curated = f"RAW.{spec['raw']}", f"CURATED.{spec['curated']}"
    keys = f"SELECT 1 FROM {raw} AS s WHERE s._BATCH_ID IN ({batch_ids}) AND {_key_match(spec, 's', 'c')}"
    parts = []
    for col in columns:
        parts.append(
            f"SELECT {literal(col)} AS COL, CAST(s.{col} AS DATE) AS D FROM {raw} AS s "
            f"WHERE s._BATCH_ID IN ({batch_ids}) AND s.{col} IS NOT NULL"
        )
        parts.append(
            f"SELECT {literal(col)} AS COL, CAST(c.{col} AS DATE) AS D FROM {curated} AS c "
            f"WHERE c.{col} IS NOT NULL AND {prune_predicate(spec, 'c', ranges or [])} AND EXISTS ({keys})"
        )
    _insert_changed(session, spec, run_id, " UNION ALL ".join(parts))


def _insert_changed(session: Any, spec: dict[str, Any], run_id: str, dates_sql: str) -> None:
    session.sql(
        f"INSERT INTO {CHANGED_DATES} (RAW_TABLE, DATE_COLUMN, BUSINESS_DATE, RUN_ID, RECORDED_AT) "
        f"SELECT DISTINCT {literal(spec['raw'])}, x.COL, x.D, {literal(run_id)}, CURRENT_TIMESTAMP() "
        f"FROM ({dates_sql}) AS x"
    ).collect()


def _remember_tombstones(session: Any, spec: dict[str, Any], batch_ids: str) -> None:
    """Every `_OP = 'D'` row of the batches, unless a tombstone at least as new is already known."""
    pk = spec["primary_key"]
    session.sql(
        f"INSERT INTO {tombstones(spec)} ({', '.join(pk)}, _BATCH_ID, _EXTRACTED_AT, _DELETED_AT) "
        f"SELECT {', '.join('s.' + k for k in pk)}, s._BATCH_ID, s._EXTRACTED_AT, CURRENT_TIMESTAMP() "
        f"FROM RAW.{spec['raw']} AS s WHERE s._BATCH_ID IN ({batch_ids}) AND s._OP = 'D' "
        f"AND NOT EXISTS (SELECT 1 FROM {tombstones(spec)} AS d WHERE {_key_match(spec, 'd', 's')} "
        "AND d._EXTRACTED_AT >= s._EXTRACTED_AT)"
    ).collect()


def _gone(spec: dict[str, Any], snapshot: dict[str, Any]) -> str:
    """CURATED rows read no later than the snapshot whose key the snapshot no longer has: hard-deleted at the source."""
    return (
        f"c._EXTRACTED_AT <= {literal(str(snapshot['EXTRACTED_AT']))} "
        f"AND NOT EXISTS (SELECT 1 FROM RAW.{spec['raw']}__PKS AS p "
        f"WHERE p._BATCH_ID = {literal(snapshot['BATCH_ID'])} AND {_key_match(spec, 'p', 'c')})"
    )


def _apply_snapshot(session: Any, spec: dict[str, Any], run_id: str, snapshot: dict[str, Any]) -> int:
    """Delete what the snapshot no longer has; its dates go to the change feed and its keys become tombstones."""
    curated, pk = f"CURATED.{spec['curated']}", spec["primary_key"]
    gone = _gone(spec, snapshot)
    count = count_rows(session, f"SELECT COUNT(*) FROM {curated} AS c WHERE {gone}")
    if not count:
        return 0
    columns = spec.get("date_columns") or []
    if columns:
        _insert_changed(
            session,
            spec,
            run_id,
            " UNION ALL ".join(
                f"SELECT {literal(col)} AS COL, CAST(c.{col} AS DATE) AS D FROM {curated} AS c "
                f"WHERE c.{col} IS NOT NULL AND {gone}"
                for col in columns
            ),
        )
    session.sql(
        f"INSERT INTO {tombstones(spec)} ({', '.join(pk)}, _BATCH_ID, _EXTRACTED_AT, _DELETED_AT) "
        f"SELECT {', '.join('c.' + k for k in pk)}, {literal(snapshot['BATCH_ID'])}, "
        f"CAST({literal(str(snapshot['EXTRACTED_AT']))} AS TIMESTAMP_NTZ), CURRENT_TIMESTAMP() "
        f"FROM {curated} AS c WHERE {gone}"
    ).collect()
    session.sql(f"DELETE FROM {curated} AS c WHERE {gone}").collect()
    return count


def merge_batches(
    session: Any, spec: dict[str, Any], run_id: str, ready: list[dict], record: bool = True
) -> dict[str, Any]:
    """Merge complete batches (manifest rows as `_ready_batches` returns them); the counts say what happened."""
    out = {"rows_merged": 0, "rows_inserted": 0, "rows_updated": 0, "rows_deleted": 0, "rows_skipped_deleted": 0}
    if not ready:
        return out
    with_data = [b for b in ready if b["ROW_COUNT"]]
    deleted = 0
    if with_data:
        ids = literal_list([b["BATCH_ID"] for b in with_data])
        # CURATED first gains the columns the source grew (schema evolution); MERGE then carries them too
        spec = {**spec, "columns": evolve_curated(session, spec, run_id)}
        ranges = key_ranges(session, spec, ids)
        _record_changed_dates(session, spec, run_id, ids, ranges)
        # the batches' rows and the versions a later delete skips: two counts, one statement (one round trip)
        merged_rows = f"SELECT COUNT(*) FROM RAW.{spec['raw']} WHERE _BATCH_ID IN ({ids})"
        counts = session.sql(f"SELECT ({merged_rows}), ({_skipped_deleted_sql(spec, ids)})").collect()[0]
        out["rows_merged"], out["rows_skipped_deleted"] = int(counts[0]), int(counts[1])
        inserted, updated, merged_deletes = session.sql(_merge_sql(spec, ids, ranges)).collect()[0]
        out["rows_inserted"], out["rows_updated"] = int(inserted), int(updated)
        deleted += int(merged_deletes)
        _remember_tombstones(session, spec, ids)
    snapshots = [b for b in ready if b["PK_SNAPSHOT_ROWS"] is not None]
    snapshot_deletes = 0
    if spec["pk_snapshot"] and snapshots:
        snapshot_deletes = _apply_snapshot(session, spec, run_id, snapshots[-1])
    out["rows_deleted"] = deleted + snapshot_deletes
    if record:
        deleting_batch = snapshots[-1]["BATCH_ID"] if snapshots else None
        values = ", ".join(
            f"({literal(b['BATCH_ID'])}, {literal(spec['raw'])}, {b['ROW_COUNT']}, "
            f"{snapshot_deletes if b['BATCH_ID'] == deleting_batch else 0}, CURRENT_TIMESTAMP(), {literal(run_id)})"
            for b in ready
        )
        session.sql(
            f"INSERT INTO {MERGED} (BATCH_ID, RAW_TABLE, ROWS_MERGED, ROWS_DELETED, MERGED_AT, RUN_ID) VALUES {values}"
        ).collect()
    return out


def merge_table(session: Any, spec_json: str, run_id: str, replay_batch: str | None = None) -> str:
    """Handler of OPS.MERGE_TABLE(spec VARIANT-as-JSON, run_id, replay_batch). Returns a JSON summary.

    rows_deleted counts every row this call removed from CURATED (tombstones and primary-key snapshots);
    rows_skipped_deleted counts versions not applied because their key was deleted at a later read time.
    """
    spec = json.loads(spec_json)
    ready, waiting = _ready_batches(session, spec, replay_batch)
    summary: dict[str, Any] = {"table": spec["table"], "batches": [], "rows_merged": 0, "rows_deleted": 0,
                               "waiting": waiting}  # fmt: skip
    if not replay_batch:  # an operator's replay is a decision: only the hourly path is gated
        ready, held = hold(session, spec, ready, run_id)
        summary["waiting"] = waiting + held
    if replay_batch and not ready:
        raise ValueError(f"{spec['table']}: batch {replay_batch!r} has no complete manifest+data in RAW to replay")
    if not ready:
        return json.dumps(summary)
    # a replay is not a new merge of the batch: MERGED_BATCHES keeps the batch's first merge
    counts = merge_batches(session, spec, run_id, ready, record=not replay_batch)
    summary.update(batches=[b["BATCH_ID"] for b in ready], **counts)
    return json.dumps(summary)
