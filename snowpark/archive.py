"""ARCHIVE_CURATED procedure: CURATED (and MARTS) history older than `hot_months` moves to Iceberg tables on S3.

Run by the daily FINSIGHT_RETENTION graph after APPLY_RETENTION. The cutoff is month-aligned (the first day of the
month `hot_months` before the current one), so the job moves one whole month once a month; the daily schedule only
makes a failed move retry the next day. The Iceberg tables (ARCHIVE.<table>, external volume from cdktf) and the
history views (HISTORY.<table> = hot rows, plus archived rows whose key is not hot) are created by
migrations/R__warehouse_views_archive.sql from the same config.

Each table moves in two idempotent steps, so a rerun after a crash anywhere never duplicates or loses a row:
  1. copy: every old hot row not yet in the archive is inserted, a newer version replaces an archived one
     (tables: MERGE by key and version; marts: the old partitions are replaced whole, as a mart build does);
  2. delete: only the old hot rows the archive verifiably holds (same key, same or newer version) leave CURATED.
Between the two steps the history view shows each key once (the hot row wins), so readers never see a duplicate.
Source deletes (tombstones) newer than an archived version remove it from the archive as well.

Columns schema evolution added to a hot table at run time (snowpark/schema_evolution.py) are not in the spec (the
catalog's columns at deploy time): before each copy the archive table gains them (ALTER ICEBERG TABLE ... ADD COLUMN,
Iceberg-compatible type) and the copy carries them, so their values are never deleted from CURATED unarchived. A
NUMBER schema evolution widened after the archive table was created (grown precision or scale) is not widened in the
archive: Snowflake documents no data type change for a primitive Iceberg column, and copying would fail out of range
or round the values; so that table's old rows stay hot and the task fails naming the column, after the other tables
moved (runbook: failed-merge.md, 'Archive column type': rebuild the archive table with the wider type).
"""

from __future__ import annotations

import json
from typing import Any

from snowpark.schema_evolution import columns_of, evolve_statements, number_parts
from snowpark.sql_text import count_rows, literal

RUNS = "OPS.RETENTION_RUNS"
ARCHIVE_SCHEMA = "ARCHIVE"  # = finsight.catalog.ARCHIVE_SCHEMA (procedures ship without finsight/)
VERSION = ("_EXTRACTED_AT", "_BATCH_ID", "_ROW_NUMBER")  # MERGE's order: which version of a key wins
# a mart row's version is its build: a partition rebuilt since the copy is not deleted from MARTS
SAME_BUILD = "(a._BUILT_AT = h._BUILT_AT OR (a._BUILT_AT IS NULL AND h._BUILT_AT IS NULL))"


JSON_TYPES = ("VARIANT", "OBJECT", "ARRAY")  # no such type in Snowflake-managed Iceberg: kept as JSON text


def iceberg_type(column_type: str) -> str:
    """The archive column type for a hot column type (schema_evolution.snowflake_type's text); = catalog.iceberg_type
    for the catalog's types. Iceberg times are microseconds; it has no semi-structured type and no time zone offset
    (TIMESTAMP_TZ keeps its instant as TIMESTAMP_LTZ)."""
    if column_type in JSON_TYPES:
        return "VARCHAR"
    if column_type in ("TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIME"):
        return f"{column_type}(6)"
    if column_type == "TIMESTAMP_TZ":
        return "TIMESTAMP_LTZ(6)"
    return column_type


def evolved_columns(
    session: Any, hot: str, archive: str, catalog_columns: list[str], live: dict[str, dict[str, str]], alter: bool
) -> list[dict[str, Any]]:
    """The hot table's columns that the catalog lacks (added by schema evolution), as the archive must hold them.

    With `alter`, an existing archive table first gains those it lacks (a missing one is created with them)."""
    evolved = [
        {"name": c, "type": typ, "iceberg_type": iceberg_type(typ), "json": typ in JSON_TYPES}
        for c, typ in live.get(hot, {}).items()
        if c not in catalog_columns
    ]
    if alter and archive in live:
        for c in evolved:
            if c["name"] not in live[archive]:
                session.sql(f"ALTER ICEBERG TABLE {archive} ADD COLUMN {c['name']} {c['iceberg_type']}").collect()
    return evolved


class ArchiveTypeError(RuntimeError):
    """A hot column's type its Iceberg archive column cannot follow: that table's old rows must stay hot."""


def _scale(number_type: str) -> int:
    return (number_parts(number_type) or (0, 0))[1]


def check_archive_types(hot: str, archive: str, live: dict[str, dict[str, str]]) -> None:
    """Raise ArchiveTypeError naming every archive NUMBER that schema evolution has since widened in the hot table
    (the columns the archive lacks are `evolved_columns`', added, not widened).

    The archive is not widened in place: Snowflake documents `ALTER ICEBERG TABLE ... ALTER COLUMN ... SET DATA TYPE`
    for structured-type columns only ("ALTER ICEBERG TABLE ... ALTER COLUMN ... SET DATA TYPE (structured types)",
    https://docs.snowflake.com/en/sql-reference/sql/alter-iceberg-table-alter-column-set-data-type), and Iceberg never
    promotes a decimal's scale. Copying anyway would fail out of range (a grown precision) or round the values before
    the delete step loses the digits (a grown scale); so the table's old rows stay hot until its archive is rebuilt."""
    hot_columns, archived = live.get(hot, {}), live.get(archive, {})
    shared = {c: typ for c, typ in hot_columns.items() if c in archived}
    problems = []
    for column, _, _ in evolve_statements(archive, archived, shared, kind="ICEBERG TABLE"):
        grown = "scale" if _scale(hot_columns[column]) > _scale(archived[column]) else "precision"
        problems.append(f"{archive}.{column} is {archived[column]} but {hot}.{column} is now {hot_columns[column]}"
                        f" (grown {grown})")  # fmt: skip
    if problems:
        raise ArchiveTypeError(
            "; ".join(problems) + f": an Iceberg archive column's type is not changed in place, so {hot}'s old rows "
            "stay hot until the archive table is rebuilt (docs/runbooks/failed-merge.md, 'Archive column type')"
        )


def with_evolved_columns(session: Any, t: dict[str, Any]) -> dict[str, Any]:
    """`t` with the hot table's evolved columns added to what the move copies (the archive table gains them first;
    a NUMBER the hot table widened stops the move: check_archive_types)."""
    live = columns_of(session, [t["hot"], t["archive"]])
    check_archive_types(t["hot"], t["archive"], live)
    evolved = evolved_columns(session, t["hot"], t["archive"], t["columns"], live, alter=True)
    if not evolved:
        return t
    return {
        **t,
        "columns": [*t["columns"], *(c["name"] for c in evolved)],
        "json": [*t["json"], *(c["name"] for c in evolved if c["json"])],
    }


def cutoff_sql(hot_months: int) -> str:
    """The first day of the month `hot_months` before the current month: rows older than that are archived."""
    return f"DATEADD(MONTH, -{int(hot_months)}, DATE_TRUNC('MONTH', CAST(CURRENT_TIMESTAMP() AS TIMESTAMP_NTZ)))"


def _old(t: dict[str, Any], alias: str, cutoff: str) -> str:
    bound = f"CAST({cutoff} AS DATE)" if t["kind"] == "mart" else cutoff
    return f"{alias}.{t['age_column']} < {bound}"


def _keys(t: dict[str, Any], left: str, right: str) -> str:
    return " AND ".join(f"{left}.{k} = {right}.{k}" for k in t["keys"])


def _newer(left: str, right: str, or_equal: bool) -> str:
    """`left`'s version is newer than `right`'s (or the same one, with or_equal)."""
    e, b, r = VERSION
    last = ">=" if or_equal else ">"
    return (
        f"({left}.{e} > {right}.{e} OR ({left}.{e} = {right}.{e} AND ({left}.{b} > {right}.{b} "
        f"OR ({left}.{b} = {right}.{b} AND {left}.{r} {last} {right}.{r}))))"
    )


def _to_archive(t: dict[str, Any], alias: str) -> list[str]:
    """Column values as the Iceberg table stores them (JSON as text), under their own names."""
    return [f"TO_JSON({alias}.{c}) AS {c}" if c in t["json"] else f"{alias}.{c}" for c in t["columns"]]


def copy_to_archive(session: Any, t: dict[str, Any], cutoff: str) -> int:
    """Step 1: the old hot rows into the archive, unless an equal or newer version is already there. Returns the rows
    written (0 on a rerun). Evolved columns travel too: the spec only knows the catalog's."""
    t = with_evolved_columns(session, t)
    hot, arc, cols = t["hot"], t["archive"], t["columns"]
    if t["kind"] == "mart":
        part = t["age_column"]
        moved = f"SELECT DISTINCT h.{part} FROM {hot} AS h WHERE {_old(t, 'h', cutoff)}"
        pending = f"NOT EXISTS (SELECT 1 FROM {arc} AS a WHERE {_keys(t, 'a', 'h')} AND {SAME_BUILD})"
        n = count_rows(session, f"SELECT COUNT(*) FROM {hot} AS h WHERE {_old(t, 'h', cutoff)} AND {pending}")
        if n:  # replace the old partitions whole: a rebuilt partition may have lost keys
            session.sql(f"DELETE FROM {arc} WHERE {part} IN ({moved})").collect()
            session.sql(
                f"INSERT INTO {arc} ({', '.join(cols)}) SELECT {', '.join(_to_archive(t, 'h'))} FROM {hot} AS h "
                f"WHERE {_old(t, 'h', cutoff)}"
            ).collect()
        return n
    pending = (
        f"FROM {hot} AS h WHERE {_old(t, 'h', cutoff)} AND NOT EXISTS "
        f"(SELECT 1 FROM {arc} AS a WHERE {_keys(t, 'a', 'h')} AND {_newer('a', 'h', or_equal=True)})"
    )
    n = count_rows(session, f"SELECT COUNT(*) {pending}")
    if n:
        # the source rows are converted (TO_JSON) before the MERGE, so its clauses only name plain columns
        # (fakesnow's MERGE also only carries source columns that a clause names bare)
        session.sql(
            f"MERGE INTO {arc} AS a USING (SELECT {', '.join(_to_archive(t, 'h'))} {pending}) AS h "
            f"ON {_keys(t, 'a', 'h')} "
            f"WHEN MATCHED THEN UPDATE SET {', '.join(f'{c} = h.{c}' for c in cols)} "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}) VALUES ({', '.join('h.' + c for c in cols)})"
        ).collect()
    return n


def delete_archived(session: Any, t: dict[str, Any], cutoff: str) -> int:
    """Step 2: old hot rows whose key the archive holds at the same (or a newer) version leave the hot table."""
    hot, arc = t["hot"], t["archive"]
    same = SAME_BUILD if t["kind"] == "mart" else _newer("a", "h", or_equal=True)
    where = f"{_old(t, 'h', cutoff)} AND EXISTS (SELECT 1 FROM {arc} AS a WHERE {_keys(t, 'a', 'h')} AND {same})"
    n = count_rows(session, f"SELECT COUNT(*) FROM {hot} AS h WHERE {where}")
    if n:
        session.sql(f"DELETE FROM {hot} AS h WHERE {where}").collect()
    return n


def drop_deleted_at_source(session: Any, t: dict[str, Any]) -> int:
    """Archived versions a later tombstone says were deleted at the source (MERGE can only delete hot rows)."""
    if not t.get("tombstones"):
        return 0
    e, b, _ = VERSION
    where = (
        f"EXISTS (SELECT 1 FROM {t['tombstones']} AS d WHERE {_keys(t, 'd', 'a')} "
        f"AND (d.{e} > a.{e} OR (d.{e} = a.{e} AND d.{b} >= a.{b})))"
    )
    n = count_rows(session, f"SELECT COUNT(*) FROM {t['archive']} AS a WHERE {where}")
    if n:
        session.sql(f"DELETE FROM {t['archive']} AS a WHERE {where}").collect()
    return n


def move_table(session: Any, t: dict[str, Any], cutoff: str) -> dict[str, int]:
    """One table's move: tombstones, copy, delete (each step safe to repeat)."""
    dropped = drop_deleted_at_source(session, t)
    copied = copy_to_archive(session, t, cutoff)
    deleted = delete_archived(session, t, cutoff)
    return {"copied": copied, "deleted_from_hot": deleted, "dropped_deleted_at_source": dropped}


def archive_curated(session: Any, run_id: str, spec_json: str) -> str:
    """Handler of OPS.ARCHIVE_CURATED(run_id, spec_json); spec = finsight.archive_catalog.archive_spec(env)."""
    spec = json.loads(spec_json)
    cutoff = cutoff_sql(spec["hot_months"])
    moved = {}
    policy = literal(f"archive_hot_months={spec['hot_months']}")
    blocked = []
    for t in spec["tables"]:
        try:
            moved[t["hot"]] = result = move_table(session, t, cutoff)
        except ArchiveTypeError as e:  # this table waits for its archive to be rebuilt; the others still move
            blocked.append(str(e))
            continue
        session.sql(
            f"INSERT INTO {RUNS} (RUN_ID, TABLE_NAME, POLICY, ROWS_DELETED, CUTOFF, RAN_AT) VALUES "
            f"({literal(run_id)}, {literal(t['hot'])}, {policy}, "
            f"{result['deleted_from_hot']}, {cutoff}, CURRENT_TIMESTAMP())"
        ).collect()
    if blocked:  # fail the task, so its owner is alerted
        raise ArchiveTypeError("; ".join(blocked))
    total = sum(r["deleted_from_hot"] for r in moved.values())
    return json.dumps({"run_id": run_id, "rows_archived": total, "external_volume": spec["external_volume"],
                       "tables": moved})  # fmt: skip
