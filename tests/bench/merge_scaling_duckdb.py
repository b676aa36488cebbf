"""Where a MERGE's cost goes as CURATED grows: the bench's MERGE in DuckDB alone, split into the statement and the
checkpoint that rewrites the row groups it touched. `python -m tests.bench.merge_scaling_duckdb [--every-column]
[multiples...]` (default 1 10 30; ~6 GB of memory at 30) prints one JSON line per size; docs/cost.md quotes a run.
`--every-column`: the batch's updates change every column (merge_bench.whole_partition_runs' batch), so each row
group they touch is rewritten whole.

The SQL is what the local Snowflake runs for MERGE_TABLE (snowpark.merge._merge_sql through fakesnow's rewrite), the
rows are tests/bench/merge_bench.py's, and the key ranges are snowpark.merge.key_ranges' own, read from the batch.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import fakesnow
import numpy as np
import snowflake.connector
import sqlglot

from finsight.config import load_environment
from finsight.local import fakesnow_compat
from snowpark.merge import _merge_sql, key_ranges
from tests.bench.merge_bench import (
    BATCH_ROWS,
    BENCH,
    BENCH_BATCH,
    _batch_keys,
    base_table,
    batch_table,
    bench_spec,
    partitions_reached,
)


class _Session:
    """What key_ranges asks of a Snowpark session (`sql(text).collect()`), answered by the DuckDB file."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def sql(self, text: str) -> _Session:
        self._rows = self._con.execute(_duckdb_sql(text)).fetchall()
        return self

    def collect(self) -> list[tuple]:
        return self._rows


def _duckdb_sql(sql: str) -> str:
    fakesnow_compat.apply()
    with fakesnow.patch(), snowflake.connector.connect(database="FINSIGHT", schema="RAW") as conn:
        return conn.cursor()._transform(sqlglot.parse_one(sql, read="snowflake"), None).sql(dialect="duckdb")


def measure(multiple: int, every_column: bool = False) -> dict[str, object]:
    spec = bench_spec(load_environment("local"))
    base_rows = BATCH_ROWS * multiple
    keys = _batch_keys(base_rows)
    with tempfile.TemporaryDirectory(prefix="finsight-merge-scaling-") as tmp:
        con = duckdb.connect(str(Path(tmp) / "scaling.duckdb"))
        con.execute("SET enable_progress_bar = false")
        for schema in ("RAW", "CURATED", "OPS"):
            con.execute(f"CREATE SCHEMA {schema}")
        for chunk in range(multiple):  # the base a batch at a time: one Arrow table of 30 M rows would not fit
            first = chunk * BATCH_ROWS + 1
            part = base_table(np.arange(first, first + BATCH_ROWS, dtype=np.int64), seed=chunk)
            con.register("part", part)
            head = f"CREATE TABLE CURATED.{BENCH} AS" if chunk == 0 else f"INSERT INTO CURATED.{BENCH}"
            con.execute(f"{head} SELECT *, NULL::TIMESTAMP AS _MERGED_AT FROM part")
            con.unregister("part")
        con.register("batch", batch_table(keys, every_column))
        con.execute(f"CREATE TABLE RAW.{BENCH} AS SELECT * FROM batch")
        con.execute(f"CREATE TABLE OPS.{BENCH}__TOMBSTONES (PAYMENT_ID BIGINT, _BATCH_ID VARCHAR, "
                    "_EXTRACTED_AT TIMESTAMP, _DELETED_AT TIMESTAMP)")  # fmt: skip
        ranges = key_ranges(_Session(con), spec, f"'{BENCH_BATCH}'")
        sql = _duckdb_sql(_merge_sql(spec, f"'{BENCH_BATCH}'", ranges))
        con.execute("CHECKPOINT")
        con.execute("SET checkpoint_threshold = '100GB'")  # the rewrite is timed on its own, below
        started = time.perf_counter()
        con.execute(sql)
        merge_s = time.perf_counter() - started
        started = time.perf_counter()
        con.execute("CHECKPOINT")
        checkpoint_s = time.perf_counter() - started
        con.close()
    reached, total = partitions_reached(ranges, base_rows)
    return {"multiple": multiple, "base_rows": base_rows, "merge_s": round(merge_s, 2),
            "checkpoint_s": round(checkpoint_s, 2), "row_groups_reached": reached, "row_groups": total}  # fmt: skip


if __name__ == "__main__":
    every = "--every-column" in sys.argv
    for m in [int(a) for a in sys.argv[1:] if a != "--every-column"] or [1, 10, 30]:
        print(json.dumps({"every_column": every} | measure(m, every)), flush=True)
