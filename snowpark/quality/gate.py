"""The merge-time quarantine gate: batches failing a `quarantine` check are held out of CURATED until released.

MERGE_TABLE calls `hold` on the batches it found ready. A held batch waits (it is listed in the merge summary's
`waiting`) and the table's CHECK task fails while it is held, so the marts reading the table are not published
without it. `finsight dq release <batch>` sets RELEASED_AT: the next merge takes the batch as it is (the operator
decided it is right) and later batches are unaffected (the newest read wins in MERGE whatever the order).

Check: a primary key under two row numbers in one batch (`raw_duplicates`): which version wins would depend on the
row order a connector happened to write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from snowpark.quality.results import FAIL, HOLDS, Result, write
from snowpark.sql_text import literal, literal_list


def hold(session: Any, spec: dict[str, Any], ready: list[dict], run_id: str) -> tuple[list[dict], list[str]]:
    """(batches to merge, `<id>: held by <check>` for the rest)."""
    if not ready:
        return ready, []
    ids = literal_list([b["BATCH_ID"] for b in ready])
    status = {
        r[0]: r[1]
        for r in session.sql(
            f"SELECT BATCH_ID, MAX(CASE WHEN RELEASED_AT IS NULL THEN 'HELD' ELSE 'RELEASED' END) FROM {HOLDS} "
            f"WHERE RAW_TABLE = {literal(spec['raw'])} AND BATCH_ID IN ({ids}) GROUP BY BATCH_ID"
        ).collect()
    }
    check = spec.get("gate") or {}  # the table's raw_duplicates check, as deploy rendered it (marts.merge_spec)
    new_holds: dict[str, str] = {}
    to_check = [b["BATCH_ID"] for b in ready if b["BATCH_ID"] not in status and b["ROW_COUNT"]]
    if check.get("enabled") and check.get("severity") == "quarantine" and to_check:
        pk = ", ".join(spec["primary_key"])
        sql = (
            f"SELECT _BATCH_ID, COUNT(*) FROM (SELECT _BATCH_ID FROM RAW.{spec['raw']} "
            f"WHERE _BATCH_ID IN ({literal_list(to_check)}) AND COALESCE(_OP, 'U') <> 'D' "
            f"GROUP BY _BATCH_ID, {pk} HAVING COUNT(DISTINCT _ROW_NUMBER) > 1) GROUP BY _BATCH_ID"
        )
        for batch, keys in session.sql(sql).collect():
            new_holds[batch] = f"{int(keys)} primary keys under more than one row number"
        if new_holds:
            _record(session, spec, run_id, new_holds, sql)
    held = {b for b, s in status.items() if s == "HELD"} | set(new_holds)
    keep = [b for b in ready if b["BATCH_ID"] not in held]
    return keep, [f"{b}: held by quality check raw_duplicates (quarantine)" for b in sorted(held)]


def without_held(session: Any, spec: dict[str, Any], ready: list[dict]) -> tuple[list[dict], list[str]]:
    """The batches no quality check holds (a backfill re-merge checks nothing new, but never merges a held batch)."""
    if not ready:
        return ready, []
    ids = literal_list([b["BATCH_ID"] for b in ready])
    held = {
        r[0]
        for r in session.sql(
            f"SELECT BATCH_ID FROM {HOLDS} WHERE RAW_TABLE = {literal(spec['raw'])} AND BATCH_ID IN ({ids}) "
            "AND RELEASED_AT IS NULL"
        ).collect()
    }
    return [b for b in ready if b["BATCH_ID"] not in held], [f"{b}: held by a quality check" for b in sorted(held)]


def _record(session: Any, spec: dict[str, Any], run_id: str, holds: dict[str, str], sql: str) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    check_id = f"{spec['table']}:raw_duplicates"
    values = ", ".join(
        f"({literal(spec['raw'])}, {literal(b)}, {literal(check_id)}, {literal(why)}, {literal(run_id)}, "
        f"CAST({literal(str(now))} AS TIMESTAMP_NTZ))"
        for b, why in holds.items()
    )
    session.sql(
        f"INSERT INTO {HOLDS} (RAW_TABLE, BATCH_ID, CHECK_ID, REASON, RUN_ID, HELD_AT) VALUES {values}"
    ).collect()
    write(
        session,
        run_id,
        now,
        [
            Result(
                spec["table"],
                "raw_duplicates",
                "quarantine",
                FAIL,
                observed={"batch": b, "reason": why},
                expected={"duplicate_keys": 0},
                sample_keys=[b],
                sql=sql,
                detail="batch held out of CURATED",
            )
            for b, why in holds.items()
        ],
    )


def release(session: Any, raw_table: str | None, batch_id: str) -> int:
    """Release a held batch (all its holds); returns how many holds were released."""
    where = f"BATCH_ID = {literal(batch_id)} AND RELEASED_AT IS NULL"
    if raw_table:
        where += f" AND RAW_TABLE = {literal(raw_table)}"
    n = int(session.sql(f"SELECT COUNT(*) FROM {HOLDS} WHERE {where}").collect()[0][0])
    if n:
        session.sql(f"UPDATE {HOLDS} SET RELEASED_AT = CURRENT_TIMESTAMP() WHERE {where}").collect()
    return n
