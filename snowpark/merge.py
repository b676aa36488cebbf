"""MERGE_TABLE procedure: RAW -> CURATED for one table, idempotent and replayable.

Registered in Snowflake as a Snowpark Python procedure; called in-process by the local DAG runner.
A batch is merged only when its manifest has landed and RAW holds all its rows. Within the pending batches the
latest version of each key wins (cursor, then batch id, then row number), and CURATED is only overwritten by a row
at least as new as the one it holds, so reruns and replays of old batches can never move data backwards.
"""

from __future__ import annotations

import json
from typing import Any

from snowpark.schema_evolution import evolve_curated
from snowpark.sql_text import literal, literal_list

MANIFESTS = "OPS.LANDED_BATCHES"
MERGED = "OPS.MERGED_BATCHES"


def _ready_batches(session: Any, spec: dict[str, Any], replay_batch: str | None) -> tuple[list[dict], list[str]]:
    raw = f"RAW.{spec['raw']}"
    if replay_batch:
        where = f"m.BATCH_ID = {literal(replay_batch)}"
    else:
        where = f"m.BATCH_ID NOT IN (SELECT BATCH_ID FROM {MERGED} WHERE RAW_TABLE = {literal(spec['raw'])})"
    manifests = session.sql(
        f"SELECT m.BATCH_ID, m.ROW_COUNT, m.PK_SNAPSHOT_ROWS, m.EXTRACTED_AT FROM {MANIFESTS} m "
        f"WHERE m.RAW_TABLE = {literal(spec['raw'])} AND {where} ORDER BY m.BATCH_ID"
    ).collect()
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
        rows_ok = landed.get(m["BATCH_ID"], 0) == m["ROW_COUNT"]
        pks_ok = m["PK_SNAPSHOT_ROWS"] is None or pk_landed.get(m["BATCH_ID"], 0) == m["PK_SNAPSHOT_ROWS"]
        (ready if rows_ok and pks_ok else waiting).append(m.as_dict() if rows_ok and pks_ok else m["BATCH_ID"])
    return ready, waiting


def _merge_sql(spec: dict[str, Any], batch_ids: str) -> str:
    """Which version wins is decided by when the source was read (_EXTRACTED_AT), never by the source's cursor value:
    every read returns a row's current committed version, so a later read is never older, whatever its cursor says.
    Tombstones (_OP = 'D') delete the key when they are the newest version."""
    pk, cols = spec["primary_key"], spec["columns"]
    meta = ["_BATCH_ID", "_EXTRACTED_AT", "_ROW_NUMBER", "_OP"]
    every = cols + meta
    on = " AND ".join(f"tgt.{k} = src.{k}" for k in pk)
    newer = (
        "(src._EXTRACTED_AT > tgt._EXTRACTED_AT OR (src._EXTRACTED_AT = tgt._EXTRACTED_AT "
        "AND src._BATCH_ID >= tgt._BATCH_ID))"
    )
    return (
        f"MERGE INTO CURATED.{spec['curated']} AS tgt USING ("
        f"SELECT {', '.join(every)} FROM RAW.{spec['raw']} WHERE _BATCH_ID IN ({batch_ids}) "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(pk)} "
        "ORDER BY _EXTRACTED_AT DESC, _BATCH_ID DESC, _ROW_NUMBER DESC) = 1"
        f") AS src ON {on} "
        f"WHEN MATCHED AND src._OP = 'D' AND {newer} THEN DELETE "
        f"WHEN MATCHED AND {newer} THEN UPDATE SET "
        + ", ".join(f"{c} = src.{c}" for c in every)
        + ", _MERGED_AT = CURRENT_TIMESTAMP() "
        f"WHEN NOT MATCHED AND COALESCE(src._OP, 'U') <> 'D' THEN INSERT ({', '.join(every)}, _MERGED_AT) "
        f"VALUES ({', '.join('src.' + c for c in every)}, CURRENT_TIMESTAMP())"
    )


def _delete_sql(spec: dict[str, Any], snapshot: dict[str, Any]) -> str:
    """Rows CURATED holds that the latest primary-key snapshot no longer has were hard-deleted at the source."""
    pk = spec["primary_key"]
    match = " AND ".join(f"p.{k} = c.{k}" for k in pk)
    return (
        f"DELETE FROM CURATED.{spec['curated']} AS c WHERE c._EXTRACTED_AT <= {literal(str(snapshot['EXTRACTED_AT']))} "
        f"AND NOT EXISTS (SELECT 1 FROM RAW.{spec['raw']}__PKS AS p "
        f"WHERE p._BATCH_ID = {literal(snapshot['BATCH_ID'])} AND {match})"
    )


def _count(session: Any, sql: str) -> int:
    return int(session.sql(sql).collect()[0][0])


def merge_table(session: Any, spec_json: str, run_id: str, replay_batch: str | None = None) -> str:
    """Handler of OPS.MERGE_TABLE(spec VARIANT-as-JSON, run_id, replay_batch). Returns a JSON summary."""
    spec = json.loads(spec_json)
    ready, waiting = _ready_batches(session, spec, replay_batch)
    summary: dict[str, Any] = {"table": spec["table"], "batches": [], "rows_merged": 0, "rows_deleted": 0,
                               "waiting": waiting}  # fmt: skip
    if replay_batch and not ready:
        raise ValueError(f"{spec['table']}: batch {replay_batch!r} has no complete manifest+data in RAW to replay")
    if not ready:
        return json.dumps(summary)
    ids = literal_list([b["BATCH_ID"] for b in ready])
    with_data = [b for b in ready if b["ROW_COUNT"]]
    if with_data:
        # CURATED first gains the columns the source grew (schema evolution); MERGE then carries them too
        spec = {**spec, "columns": evolve_curated(session, spec, run_id)}
        session.sql(_merge_sql(spec, literal_list([b["BATCH_ID"] for b in with_data]))).collect()
    merged = _count(session, f"SELECT COUNT(*) FROM RAW.{spec['raw']} WHERE _BATCH_ID IN ({ids})") if with_data else 0
    deleted = 0
    snapshots = [b for b in ready if b["PK_SNAPSHOT_ROWS"] is not None]
    if spec["pk_snapshot"] and snapshots:
        before = _count(session, f"SELECT COUNT(*) FROM CURATED.{spec['curated']}")
        session.sql(_delete_sql(spec, snapshots[-1])).collect()
        deleted = before - _count(session, f"SELECT COUNT(*) FROM CURATED.{spec['curated']}")
    deleting_batch = snapshots[-1]["BATCH_ID"] if snapshots else None
    values = ", ".join(
        f"({literal(b['BATCH_ID'])}, {literal(spec['raw'])}, {b['ROW_COUNT']}, "
        f"{deleted if b['BATCH_ID'] == deleting_batch else 0}, CURRENT_TIMESTAMP(), {literal(run_id)})"
        for b in ready
    )
    if not replay_batch:
        session.sql(
            f"INSERT INTO {MERGED} (BATCH_ID, RAW_TABLE, ROWS_MERGED, ROWS_DELETED, MERGED_AT, RUN_ID) VALUES {values}"
        ).collect()
    summary.update(batches=[b["BATCH_ID"] for b in ready], rows_merged=merged, rows_deleted=deleted)
    return json.dumps(summary)
