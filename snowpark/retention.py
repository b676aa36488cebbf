"""Retention procedures, run by the daily FINSIGHT_RETENTION graph.

PRUNE_RAW: RAW (transient) rows of batches merged more than `days` ago are deleted (retention.raw_table_days);
unmerged batches are kept whatever their age. S3 keeps the files for retention.raw_days, so a pruned batch can
still be reloaded. APPLY_RETENTION: CURATED rows not changed for `years` (by the table's cursor), their tombstones,
and MARTS partitions older than `years` are deleted (retention.curated_years: 7), in the native tables and in their
Iceberg archive (ARCHIVE.<table>, see snowpark/archive.py) where one exists. Every deletion is logged in
OPS.RETENTION_RUNS.
"""

from __future__ import annotations

import json
from typing import Any

from snowpark import pipeline_catalog
from snowpark.archive import ARCHIVE_SCHEMA
from snowpark.merge import MERGED, tombstones
from snowpark.sql_text import count_rows, literal

RUNS = "OPS.RETENTION_RUNS"


def _delete(session: Any, run_id: str, table: str, policy: str, where: str, cutoff_sql: str) -> int:
    n = count_rows(session, f"SELECT COUNT(*) FROM {table} WHERE {where}")
    if n:
        session.sql(f"DELETE FROM {table} WHERE {where}").collect()
    session.sql(
        f"INSERT INTO {RUNS} (RUN_ID, TABLE_NAME, POLICY, ROWS_DELETED, CUTOFF, RAN_AT) VALUES "
        f"({literal(run_id)}, {literal(table)}, {literal(policy)}, {n}, {cutoff_sql}, CURRENT_TIMESTAMP())"
    ).collect()
    return n


def prune_raw(session: Any, run_id: str, days: int) -> str:
    """Handler of OPS.PRUNE_RAW(run_id, days)."""
    days = int(days)
    cutoff = f"DATEADD(DAY, -{days}, CAST(CURRENT_TIMESTAMP() AS TIMESTAMP_NTZ))"
    deleted = {}
    for spec in pipeline_catalog.specs(session, "table"):
        old = (
            f"_BATCH_ID IN (SELECT BATCH_ID FROM {MERGED} WHERE RAW_TABLE = {literal(spec['raw'])} "
            f"AND MERGED_AT < {cutoff})"
        )
        targets = [f"RAW.{spec['raw']}"] + ([f"RAW.{spec['raw']}__PKS"] if spec["pk_snapshot"] else [])
        for table in targets:
            deleted[table] = _delete(session, run_id, table, f"raw_table_days={days}", old, cutoff)
    return json.dumps({"run_id": run_id, "rows_deleted": sum(deleted.values()), "tables": deleted})


def _archive_tables(session: Any) -> set[str]:
    """Names of the tables in the archive schema (empty when no archive is configured)."""
    rows = session.sql(
        f"SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = {literal(ARCHIVE_SCHEMA)}"
    ).collect()
    return {str(r[0]).upper() for r in rows}


def apply_retention(session: Any, run_id: str, years: int) -> str:
    """Handler of OPS.APPLY_RETENTION(run_id, years)."""
    years = int(years)
    cutoff = f"DATEADD(YEAR, -{years}, CAST(CURRENT_TIMESTAMP() AS TIMESTAMP_NTZ))"
    policy = f"curated_years={years}"
    deleted = {}
    archived = _archive_tables(session)
    for spec in pipeline_catalog.specs(session, "table"):
        curated = f"CURATED.{spec['curated']}"
        # a row's age is its date/time cursor; with an integer cursor, the read time of its last change (every change
        # is read again, so an unchanged row keeps the _EXTRACTED_AT of its last version)
        age = spec.get("age_column", spec["cursor"])
        deleted[curated] = _delete(session, run_id, curated, policy, f"{age or '_EXTRACTED_AT'} < {cutoff}", cutoff)
        if age and spec["curated"] in archived:
            archive = f"{ARCHIVE_SCHEMA}.{spec['curated']}"
            deleted[archive] = _delete(session, run_id, archive, policy, f"{age} < {cutoff}", cutoff)
        deleted[tombstones(spec)] = _delete(
            session, run_id, tombstones(spec), policy, f"_EXTRACTED_AT < {cutoff}", cutoff
        )
    for spec in pipeline_catalog.specs(session, "mart"):
        where = f"{spec['partition_column']} < CAST({cutoff} AS DATE)"
        deleted[spec["table"]] = _delete(session, run_id, spec["table"], policy, where, cutoff)
        name = spec["table"].rpartition(".")[2]
        if name in archived:
            archive = f"{ARCHIVE_SCHEMA}.{name}"
            deleted[archive] = _delete(session, run_id, archive, policy, where, cutoff)
    return json.dumps({"run_id": run_id, "rows_deleted": sum(deleted.values()), "tables": deleted})
