"""Warehouse benchmarks, called by tests/bench/run.py (which writes bench/results.json).

Results nest under the driver's sections: merge.ours_s, merge.duckdb_s, merge.ours_vs_duckdb, merge.scaling.ratio,
merge.scaling.whole_partition_ratio, merge.runs.<n>x, merge.whole_partition_runs.<n>x, merge.bytes_scanned_per_batch;
cycle.first_s, cycle.steady_s, cycle.scale_<n>.{initial,hourly}.seconds.<stage>.

run_merge_bench(): our MERGE_TABLE procedure (Snowpark -> fakesnow server -> DuckDB, with its readiness check,
change feed for the marts, tombstone guard and run bookkeeping) merging a 1 M-row batch (half new keys, half
updates of recent keys, plus late updates of old keys) into a CURATED table of 1x and 10x its size
(merge.scaling), against a hand-written DuckDB `MERGE` of the same rows at 1x in a DuckDB file of its own, in the
same run. The same keys again with every column of the updated rows changed (merge.whole_partition_runs): the
rewrite Snowflake does to every micro-partition a MERGE touches, which the cost model prices. Data is generated as
Arrow, lands as KMS-encrypted Parquet in (moto) S3 and is loaded by COPY, as the pipeline loads it.

run_cycle_stages(scale): wall seconds per stage of the hourly cycle (initial load, then one hour of changes) on a
local stack of its own seeded at `scale` (ports shifted, state in a temp folder, stopped afterwards).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from finsight import marts, migrate, warehouse
from finsight.aws import client, data_key_arn
from finsight.config import load_environment
from finsight.local.fakesnow_compat import BULK_LOAD_ROWS

BATCH_ROWS = int(os.environ.get("BENCH_MERGE_BATCH_ROWS", 1_000_000))
MULTIPLES = (1, 10)  # CURATED at 1x and 10x the batch: does the MERGE cost grow with the table?
LATE_UPDATES = 50
WARM_UP_ROWS = 10_000
BENCH = "BENCH__PAYMENTS"
BENCH_BATCH = "bench-merge-batch"
BASE_READ_AT, BATCH_READ_AT = np.datetime64("2026-11-01"), np.datetime64("2026-11-27T10:00:00")
CARDS = 200_000  # distinct card tokens: card numbers repeat across payments


def _of_key(ids: np.ndarray, attribute: int, values: int) -> np.ndarray:
    """An attribute of each payment in 0..values-1, fixed by its key (splitmix64 of key and attribute): a later
    version of a payment carries the merchant, customer, card and amount its first version had."""
    with np.errstate(over="ignore"):  # the mix wraps at 64 bits by design
        z = ids.astype(np.uint64) + np.uint64(attribute) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return ((z ^ (z >> np.uint64(31))) % np.uint64(values)).astype(np.int64)


def _rows(ids: np.ndarray, batch_id: str, read_at: np.datetime64, seed: int, every_column: bool = False) -> pa.Table:
    """Payments-shaped rows (landed columns + meta) for the given keys, built column-wise. What a payment is (merchant,
    customer, amount, currency, card, created) follows from its key, so an update of a key changes what an update of a
    payment changes: its status (drawn from `seed`), its update time and the batch's meta columns. `every_column`
    draws those attributes anew as well: an update that changes every column of its row."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    salt = 16 if every_column else 0

    def of_key(attribute: int, values: int) -> np.ndarray:
        return _of_key(ids, attribute + salt, values)

    tokens = pa.array([f"{i:064x}" for i in range(CARDS)])
    created = np.datetime64("2026-10-01T00:00:00") + of_key(1, 60 * 86_400).astype("timedelta64[s]")
    cents = pa.array(100 + of_key(2, 499_900), pa.int64()).cast(pa.decimal128(19, 0))
    amounts = pc.multiply(cents, pa.scalar(Decimal("0.01"), pa.decimal128(3, 2))).cast(pa.decimal128(18, 2))
    return pa.table(
        {
            "PAYMENT_ID": pa.array(ids, pa.int64()),
            "INVOICE_ID": pa.array(ids + 10_000_000, pa.int64()),
            "MERCHANT_ID": pa.array(1 + of_key(3, 2_399), pa.int64()),
            "CUSTOMER_ID": pa.array(1 + of_key(4, 199_999), pa.int64()),
            "AMOUNT": amounts,
            "CURRENCY": pa.array(np.array(["USD", "EUR", "GBP", "CAD"])[of_key(5, 4)]),
            "STATUS": pa.array(np.array(["succeeded", "failed", "pending"])[rng.integers(0, 3, n)]),
            "CARD_NUMBER_TOKEN": tokens.take(pa.array(of_key(6, CARDS))),
            "CARD_NUMBER_LAST4": pa.array(np.char.mod("%04d", of_key(7, 10_000))),
            "CARD_BRAND": pa.array(np.array(["visa", "mastercard", "discover"])[of_key(8, 3)]),
            "CREATED_AT": pa.array(created, pa.timestamp("us")),
            "UPDATED_AT": pa.array(np.full(n, read_at), pa.timestamp("us")),
            "_BATCH_ID": pa.array([batch_id] * n),
            "_EXTRACTED_AT": pa.array(np.full(n, read_at), pa.timestamp("us")),
            "_ROW_NUMBER": pa.array(np.arange(1, n + 1), pa.int64()),
            "_OP": pa.array(["U"] * n),
        }
    )


def base_table(ids: np.ndarray, seed: int = 1) -> pa.Table:
    """CURATED's rows before the batch: the payments `ids`, first read on the base's day."""
    return _rows(ids, "bench-base", BASE_READ_AT, seed=seed)


def batch_table(keys: np.ndarray, every_column: bool = False) -> pa.Table:
    """The hour's batch in RAW for `keys` (see `_rows` for `every_column`)."""
    return _rows(keys, BENCH_BATCH, BATCH_READ_AT, seed=2, every_column=every_column)


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", row_group_size=250_000)
    return buf.getvalue()


def _batch_keys(base_rows: int, batch_rows: int = BATCH_ROWS) -> np.ndarray:
    """An hour's batch at production shape: half new keys (above the table), half updates of the newest keys, plus
    LATE_UPDATES updates of old keys spread over the whole table (late refunds / disputes of old payments)."""
    half = batch_rows // 2
    late = np.linspace(1, base_rows - half - 1, LATE_UPDATES, dtype=np.int64)
    recent = np.arange(base_rows - half + LATE_UPDATES + 1, base_rows + 1, dtype=np.int64)
    inserts = np.arange(base_rows + 1, base_rows + 1 + half, dtype=np.int64)
    return np.concatenate([late, recent, inserts])


def run_merge_bench() -> dict[str, Any]:
    """The same 1 M-row batch merged into CURATED of 1x and 10x its size: `scaling.ratio` = 10x seconds / 1x seconds
    (target <= 2: the MERGE reads the batch's key ranges of CURATED, not the table)."""
    env = load_environment("local")
    from finsight.local.stack import LocalStack

    with LocalStack(env).used(seed_sources=False):
        return _merge_bench(env)


def _merge_bench(env: Any) -> dict[str, Any]:
    migrate.deploy(env)
    result: dict[str, Any] = {"batch_rows": BATCH_ROWS, "late_updates": LATE_UPDATES}
    _warm_up(env)
    runs, whole = {}, {}
    for multiple in MULTIPLES:
        base_rows = BATCH_ROWS * multiple
        base = base_table(np.arange(1, base_rows + 1, dtype=np.int64))
        keys = _batch_keys(base_rows)
        batch = batch_table(keys)
        runs[multiple] = _merge_once(env, base, batch)
        if multiple == 1:
            runs[multiple] |= _duckdb_merge(base, batch)
        # DuckDB rewrites only the columns an update changed; Snowflake rewrites every micro-partition a MERGE
        # touches, whole. The same keys with every column changed make DuckDB rewrite each row group it touches
        # whole too: that is the run the cost model prices (finsight/cost/merge_basis.py)
        whole[multiple] = _merge_once(env, base, batch_table(keys, every_column=True))
        del base, batch
    one, ten = runs[MULTIPLES[0]], runs[MULTIPLES[-1]]
    # the 1x run is the headline against DuckDB
    result["base_rows"] = BATCH_ROWS * MULTIPLES[0]
    result["ours_s"], result["duckdb_s"] = one["ours_s"], one["duckdb_s"]
    result["ours_vs_duckdb"] = round(one["ours_s"] / one["duckdb_s"], 2)  # target: <= 2
    result["runs"] = {f"{m}x": r for m, r in runs.items()}
    result["scaling"] = {
        "base_rows": [BATCH_ROWS * m for m in MULTIPLES],
        "seconds": [runs[m]["ours_s"] for m in MULTIPLES],
        "ratio": _ratio(runs),  # target: <= 2
        "whole_partition_seconds": [whole[m]["ours_s"] for m in MULTIPLES],
        "whole_partition_ratio": _ratio(whole),
    }
    result["whole_partition_runs"] = {f"{m}x": r for m, r in whole.items()}
    # what the cost model should charge per hourly batch: the bytes the MERGE reads at 7-year table size
    result["bytes_scanned_per_batch"] = ten["bytes_scanned"]
    return result


def _ratio(runs: dict[int, dict[str, Any]]) -> float:
    """Seconds into the largest table / seconds into the smallest."""
    return round(runs[MULTIPLES[-1]]["ours_s"] / runs[MULTIPLES[0]]["ours_s"], 2)


def _warm_up(env: Any) -> None:
    """One small MERGE of the same shape through the same path, untimed: the first MERGE_TABLE of a server process
    pays for what every later one reuses (its statements' translations, the session), and that once-per-process cost
    would otherwise land on whichever size is timed first (the 1x), flattering the scaling ratio."""
    rows = WARM_UP_ROWS
    _merge_once(env, base_table(np.arange(1, rows + 1, dtype=np.int64)), batch_table(_batch_keys(rows, rows)))


def _merge_once(env: Any, base: pa.Table, batch: pa.Table) -> dict[str, Any]:
    """CURATED = `base`, RAW = `batch` (one manifest), then MERGE_TABLE timed; tables and S3 files removed after."""
    s3, bucket, key_id = client(env, "s3"), env.aws.s3.bucket, data_key_arn(env)
    prefix = f"{env.aws.s3.raw_prefix}/bench/"
    sizes = {}
    for name, table in (("base", base), ("batch", batch)):
        body = _parquet(table)
        sizes[name] = len(body)
        s3.put_object(Bucket=bucket, Key=f"{prefix}{name}/part-0.parquet", Body=body,
                      ServerSideEncryption="aws:kms", SSEKMSKeyId=key_id)  # fmt: skip
    spec = bench_spec(env)
    columns = ", ".join(f"{f.name} {_sf_type(f.type)}" for f in base.schema)
    out: dict[str, Any] = {"base_rows": base.num_rows, "batch_rows": batch.num_rows}
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(f"CREATE OR REPLACE TABLE RAW.{BENCH} ({columns})")
        # clustered as migrations/R__curated_tables.sql clusters CURATED (locally: rows land in key order)
        cur.execute(f"CREATE OR REPLACE TABLE CURATED.{BENCH} ({columns}, _MERGED_AT TIMESTAMP_NTZ) "
                    "CLUSTER BY (PAYMENT_ID)")  # fmt: skip
        cur.execute(f"CREATE OR REPLACE TABLE OPS.{BENCH}__TOMBSTONES (PAYMENT_ID NUMBER(38, 0), _BATCH_ID VARCHAR, "
                    "_EXTRACTED_AT TIMESTAMP_NTZ, _DELETED_AT TIMESTAMP_NTZ)")  # fmt: skip
        for name, target in (("base", f"CURATED.{BENCH}"), ("batch", f"RAW.{BENCH}")):
            cur.execute(f"COPY INTO {target} FROM @RAW.LANDING/bench/{name}/ FILES = ('part-0.parquet') "
                        "FILE_FORMAT = (TYPE = 'PARQUET') MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE")  # fmt: skip
        cur.execute(
            "INSERT INTO OPS.LANDED_BATCHES (BATCH_ID, SOURCE_TABLE, RAW_TABLE, MODE, ROW_COUNT, FILE_COUNT, "
            f"PK_SNAPSHOT_ROWS, SCHEMA_HASH, EXTRACTED_AT) VALUES ('{BENCH_BATCH}', 'bench.payments', '{BENCH}', "
            f"'incremental', {batch.num_rows}, 1, NULL, 'bench', '2026-11-27 10:00:00')"
        )
    session = warehouse.snowpark_session(env)
    try:
        from snowpark.merge import key_ranges, merge_table, prune_predicate

        ranges = key_ranges(session, spec, f"'{BENCH_BATCH}'")
        touched = session.sql(
            f"SELECT COUNT(*) FROM CURATED.{BENCH} AS tgt WHERE {prune_predicate(spec, 'tgt', ranges)}"
        ).collect()[0][0]
        started = time.perf_counter()
        merged = json.loads(merge_table(session, json.dumps(spec), "bench-merge"))
        out["ours_s"] = round(time.perf_counter() - started, 2)
        out["ours_rows_inserted"], out["ours_rows_updated"] = merged["rows_inserted"], merged["rows_updated"]
        out["key_ranges"] = len(ranges)
        out["target_rows_in_ranges"] = int(touched)
        # bytes read per batch: the batch plus every CURATED partition its key ranges reach, whole (Snowflake prunes
        # and rewrites whole micro-partitions; the local double's are DuckDB row groups), at compressed size
        # (zstd Parquet). CURATED holds the base in key order, as its clustering keeps it.
        reached, partitions = partitions_reached(ranges, base.num_rows)
        out["partitions_reached"], out["partitions_total"] = reached, partitions
        out["bytes_scanned"] = int(sizes["batch"] + sizes["base"] * reached / partitions)
        out["bytes_table"] = sizes["base"]
    finally:
        session.close()
        with warehouse.connect(env) as conn:
            cur = conn.cursor()
            for t in (f"RAW.{BENCH}", f"CURATED.{BENCH}", f"OPS.{BENCH}__TOMBSTONES"):
                cur.execute(f"DROP TABLE IF EXISTS {t}")
            for t in ("OPS.LANDED_BATCHES", "OPS.MERGED_BATCHES", "OPS.CHANGED_DATES"):
                cur.execute(f"DELETE FROM {t} WHERE RAW_TABLE = '{BENCH}'")
        for name in ("base", "batch"):
            s3.delete_object(Bucket=bucket, Key=f"{prefix}{name}/part-0.parquet")
    return out


def bench_spec(env: Any) -> dict[str, Any]:
    """MERGE_TABLE's spec of the payments table, for the bench's RAW and CURATED tables."""
    return marts.merge_spec(env, env.table("payments.payments")) | {"raw": BENCH, "curated": BENCH,
                                                                     "table": "bench.payments"}  # fmt: skip


def partitions_reached(ranges: list[tuple[Any, Any]], base_rows: int) -> tuple[int, int]:
    """(partitions of a CURATED of keys 1..base_rows, in key order, that the MERGE's key ranges reach; all of them).
    A partition is a DuckDB row group (fakesnow_compat.BULK_LOAD_ROWS rows), the local micro-partition."""
    reached: set[int] = set()
    for low, high in ranges:
        low, high = max(int(low), 1), min(int(high), base_rows)
        if low <= high:
            reached.update(range((low - 1) // BULK_LOAD_ROWS, (high - 1) // BULK_LOAD_ROWS + 1))
    return len(reached), -(-base_rows // BULK_LOAD_ROWS)


def _sf_type(t: pa.DataType) -> str:
    if pa.types.is_decimal(t):
        return f"NUMBER({t.precision}, {t.scale})"
    if pa.types.is_integer(t):
        return "NUMBER(38, 0)"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP_NTZ"
    return "VARCHAR"


def _duckdb_merge(base: pa.Table, batch: pa.Table) -> dict[str, Any]:
    """The same rows, a hand-written MERGE (newest read wins), in a DuckDB file of its own."""
    with tempfile.TemporaryDirectory(prefix="finsight-bench-") as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        con.execute("SET enable_progress_bar = false")
        con.register("base_arrow", base)
        con.register("batch_arrow", batch)
        con.execute("CREATE TABLE curated AS SELECT *, CAST(NULL AS TIMESTAMP) AS _MERGED_AT FROM base_arrow")
        con.execute("CREATE TABLE raw AS SELECT * FROM batch_arrow")
        cols = [c for c in batch.column_names]
        started = time.perf_counter()
        con.execute(
            "MERGE INTO curated AS t USING raw AS s ON t.PAYMENT_ID = s.PAYMENT_ID "
            "WHEN MATCHED AND s._EXTRACTED_AT > t._EXTRACTED_AT THEN UPDATE SET "
            + ", ".join(f"{c} = s.{c}" for c in cols)
            + ", _MERGED_AT = now() WHEN NOT MATCHED THEN INSERT ("
            + ", ".join(cols)
            + ", _MERGED_AT) VALUES ("
            + ", ".join(f"s.{c}" for c in cols)
            + ", now())"
        )
        seconds = time.perf_counter() - started
        rows = con.execute("SELECT COUNT(*) FROM curated").fetchone()[0]
        con.close()
    return {"duckdb_s": round(seconds, 2), "duckdb_rows_after": int(rows)}


def run_cycle_stages(scale: float) -> dict[str, Any]:
    """Hourly cycle wall seconds per stage on a stack of its own at `scale`: the first (initial) cycle, then an hour.

    The stack's ports are shifted and its files live in a state dir of its own: the credentials, the CA the
    connectors verify PostgreSQL with and the clusters are all found through `local.state_dir`, so a stack moved only
    by `LocalStack(root=...)` would read the developer's stack's files. A cycle that does not succeed is an error,
    never a timing.
    """
    from finsight.config import repo_root
    from finsight.config.loader import PORT_OFFSET_VARIABLE, STATE_DIR_VARIABLE
    from finsight.local.cycle import hourly_cycle
    from finsight.local.stack import LocalStack

    saved = {var: os.environ.get(var) for var in (PORT_OFFSET_VARIABLE, STATE_DIR_VARIABLE)}
    state_dir = f".local-bench-scale{scale:g}"
    os.environ[PORT_OFFSET_VARIABLE] = str(int(saved[PORT_OFFSET_VARIABLE] or 0) + 50)  # beside the developer's
    os.environ[STATE_DIR_VARIABLE] = state_dir
    try:
        env = load_environment("local")
        assert env.local is not None
        env = env.model_copy(update={"local": env.local.model_copy(update={"scale": scale})})
        stack = LocalStack(env)
        stack.down()  # a stack left by an interrupted bench run
        shutil.rmtree(repo_root() / state_dir, ignore_errors=True)
        started = time.perf_counter()
        stack.up()
        out: dict[str, Any] = {"scale": scale, "seed_s": round(time.perf_counter() - started, 2)}
        try:
            started = time.perf_counter()
            first = hourly_cycle(env)
            out["first_s"] = round(time.perf_counter() - started, 2)
            stack.mutate(0)
            started = time.perf_counter()  # the steady hour: one mutation step, migrations unchanged
            hour = hourly_cycle(env)
            out["steady_s"] = round(time.perf_counter() - started, 2)
        finally:
            stack.down()
        for label, cycle in (("initial", first), ("hourly", hour)):
            state = cycle.dag.state if cycle.dag else "NO_RUN"
            if state != "SUCCEEDED":
                raise RuntimeError(f"bench cycle at scale {scale:g}, {label} run: {state}, not SUCCEEDED: no timing")
            out[label] = {
                "rows_extracted": cycle.rows_extracted,
                "state": state,
                "latency_s": cycle.dag.latency_seconds() if cycle.dag else None,
                "seconds": dict(cycle.seconds),  # migrate, extract, load, graph (= merge + transform + validate)
            }
        shutil.rmtree(repo_root() / state_dir, ignore_errors=True)  # kept when a run failed: its logs tell why
        return out
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def run_cycle_process(scale: float) -> dict[str, Any]:
    """`run_cycle_stages(scale)` in a Python process of its own, as `finsight run` runs an hour: not in the bench's
    process, which has just moved millions of rows and still holds what that left. On the same code a steady hour took
    13.4 s in a fresh process and 17.4 s inside the bench's (whose fresh tables PostgreSQL was also still vacuuming
    then: extract_bench._create vacuums them now)."""
    done = subprocess.run([sys.executable, "-m", "tests.bench.merge_bench", "cycle", str(scale)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bench cycle at scale {scale:g} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if sys.argv[1:2] == ["cycle"]:  # run_cycle_process: the result is the last line of stdout
        print(json.dumps(run_cycle_stages(float(sys.argv[2]))))
    else:
        print(json.dumps(run_merge_bench(), indent=1))
