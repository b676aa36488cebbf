"""Extraction side by side on one >= 5 M-row, 11-column copy of payments.payments, in one run.

Two shapes of the same table: "repeating" (100 K cards over the table, the old bench) and "distinct" (production:
cards mostly distinct per hour, a long tail of repeats); every peer runs on the first, COPY and ours on both.
Peers: PostgreSQL's binary COPY to /dev/null (the limit), connectorx -> Arrow, dlt `sql_table` -> Parquet with the
connectorx and pyarrow backends; ours -> Parquet in S3 (moto, KMS) at 1, 2 and 4 chunks, PAN tokenization included;
peak RSS of ours (a child process) on a table larger than its 1 GiB memory budget.

Every method's imports are done before any clock starts (throughput, not interpreter start-up), and each method's
CPU seconds are counted on the three sides that share this machine's cores: the bench process (the client),
the PostgreSQL server processes and the moto server. Their sum over the cores bounds what any client can reach here.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from finsight.config import Environment, Table, repo_root
from finsight.local.stack import LocalStack
from finsight.secrets import read_secret

SOURCE = "payments"
TABLE = "payments"
BENCH_TABLE = "bench_payments"
BIG_TABLE = "bench_payments_big"
DISTINCT_TABLE = "bench_payments_distinct"


# Card numbers per shape. Repeating: the old bench's 100 K cards over the whole table. Distinct (production): a
# payments table's cards are mostly distinct within an hour; 85 % of rows carry a card seen once, the rest draw from
# a long tail of repeat customers (1 M cards, power-law: a few pay often, most rarely).
CARD_SQL = {
    "repeating": "'4111111111' || lpad((g % 100000)::text, 6, '0')",
    "distinct": """CASE WHEN random() < 0.85
                   THEN '4' || lpad(((g::bigint * 7919 + 13) % 1000000000000000)::text, 15, '0')
                   ELSE '5' || lpad(floor(1000000 * random() ^ 3)::bigint::text, 15, '0') END""",
}
SHAPES = tuple(CARD_SQL)


def _create(stack: LocalStack, name: str, rows: int, shape: str = "repeating") -> None:
    """A payments-shaped table with production's distributions; only the card numbers differ between the shapes.

    Merchants skewed (log-uniform over 20 K: a few large merchants carry most rows), customers likewise; 3 % of
    payments carry no card (bank transfers), statuses and brands of realistic widths; cursors over a month.
    """
    with stack.admin_connect(SOURCE) as conn:
        have = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (name,)).fetchone()
        if have and have[0] == f"{shape} {rows}":
            return
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(
            f"""CREATE TABLE {name} AS SELECT g::bigint AS payment_id, (g % 50000)::bigint AS invoice_id,
                floor(exp(random() * ln(20000)))::bigint AS merchant_id,
                floor(exp(random() * ln(2000000)))::bigint AS customer_id,
                round((exp(random() * 8) - 0.5)::numeric, 2)::numeric(18, 2) AS amount,
                (ARRAY['USD', 'USD', 'USD', 'EUR', 'EUR', 'GBP', 'CAD', 'JPY'])[1 + g % 8] AS currency,
                (ARRAY['succeeded', 'succeeded', 'succeeded', 'succeeded', 'failed', 'requires_payment_method',
                       'processing', 'canceled'])[1 + (g * 7) % 8] AS status,
                CASE WHEN g % 33 = 0 THEN NULL ELSE {CARD_SQL[shape]} END AS card_number,
                (ARRAY['visa', 'visa', 'mastercard', 'mastercard', 'american_express', 'discover'])[1 + g % 6]
                  AS card_brand,
                now() - ((g % 2592000) || ' seconds')::interval AS created_at,
                now() - ((g % 2592000) || ' seconds')::interval AS updated_at
            FROM generate_series(1, {rows}) g"""
        )
        conn.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (payment_id)")
        conn.execute(f"COMMENT ON TABLE {name} IS '{shape} {rows}'")  # the shape + size this table was made for
        conn.commit()
        # VACUUM as well as ANALYZE, now: else autovacuum does it later, in the middle of whatever is being timed
        # (a fresh table of 5-10 M rows is work for it for minutes, throttled)
        conn.autocommit = True
        conn.execute(f"VACUUM (ANALYZE) {name}")


def card_stats(stack: LocalStack, name: str) -> dict[str, Any]:
    """What the table's card column looks like: rows, distinct cards, NULL share (the shape, measured)."""
    with stack.admin_connect(SOURCE) as conn:
        n, distinct, nulls = conn.execute(
            f"SELECT count(*), count(DISTINCT card_number), count(*) - count(card_number) FROM {name}"
        ).fetchone()  # type: ignore[misc]
    return {"rows": n, "distinct_cards": distinct, "card_null_share": round(nulls / n, 3)}


def bench_table(env: Environment, name: str) -> Table:
    """The catalog's payments table under the bench table's name: same columns, PAN column, landing path."""
    table = env.table(f"{SOURCE}.{TABLE}")
    copy = table.model_copy()
    object.__setattr__(copy, "name", name)
    return copy


def _uri(env: Environment) -> str:
    conn = env.postgres_sources[SOURCE].connection
    assert conn is not None
    s = read_secret(env, conn.secret)
    user, password = s["username"].get_secret_value(), quote(s["password"].get_secret_value(), safe="")
    # the same TLS as the connectors: verify-full against the config's CA (pg_hba refuses non-TLS source users)
    cafile = conn.ca_file(repo_root())
    tls = f"sslmode={conn.sslmode}" + (f"&sslrootcert={quote(str(cafile), safe='/')}" if cafile else "")
    return f"postgresql://{user}:{password}@{conn.host}:{conn.port}/{conn.database}?{tls}"


def _select(table: str) -> str:
    cols = "payment_id, invoice_id, merchant_id, customer_id, amount, currency, status, card_number, card_brand"
    return f"SELECT {cols}, (created_at AT TIME ZONE 'UTC') AS created_at, (updated_at AT TIME ZONE 'UTC') AS updated_at FROM {table}"  # noqa: E501


def _timed(fn: Callable[[], int]) -> tuple[float, int]:
    started = time.monotonic()
    rows = fn()
    return time.monotonic() - started, rows


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces): state, ppid, ..., utime, stime, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _proc_cpu(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _server_pids(stack: LocalStack) -> dict[str, list[int]]:
    """The PostgreSQL postmaster and its children (backends come and go), and the moto server."""
    state = stack.state_dir
    postmaster = int((state / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
    children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == postmaster]
    return {"postgres": [postmaster, *children], "moto": [int((state / "run" / "moto.pid").read_text())]}


def _parent(pid: int) -> int | None:
    try:
        return int(_stat(pid)[1])
    except (OSError, ValueError, IndexError):
        return None


def _server_cpu(stack: LocalStack) -> dict[tuple[str, int], float]:
    cpu = {}
    for side, pids in _server_pids(stack).items():
        for pid in pids:
            try:
                cpu[(side, pid)] = _proc_cpu(pid)
            except OSError:
                continue  # exited between the listing and the read
    return cpu


@contextmanager
def cpu_meter(stack: LocalStack) -> Iterator[dict[str, float]]:
    """CPU seconds spent while the block runs: this process (all threads), PostgreSQL, moto.

    Server processes are sampled every 20 ms; a backend that exits keeps its last sample (it can lose up to
    one interval), a backend that starts during the block counts from zero.
    """
    result: dict[str, float] = {}
    before = _server_cpu(stack)
    last = dict(before)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            last.update(_server_cpu(stack))

    own = resource.getrusage(resource.RUSAGE_SELF)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        last.update(_server_cpu(stack))
        now = resource.getrusage(resource.RUSAGE_SELF)
        result["client"] = round(now.ru_utime + now.ru_stime - own.ru_utime - own.ru_stime, 2)
        for side in ("postgres", "moto"):
            spent = sum(cpu - before.get(key, 0.0) for key, cpu in last.items() if key[0] == side)
            result[side] = round(spent, 2)


def _warm_imports() -> None:
    """Import every method's code once, outside the clocks (airbyte-cdk alone takes seconds to import)."""
    import connectorx  # noqa: F401
    import dlt  # noqa: F401
    import psycopg  # noqa: F401
    from dlt.sources.sql_database import sql_table  # noqa: F401

    import connectors.landing.writer
    import connectors.run  # noqa: F401


def copy_limit(uri: str, table: str) -> int:
    import psycopg

    with (
        psycopg.connect(uri) as conn,
        conn.cursor() as cur,
        cur.copy(f"COPY ({_select(table)}) TO STDOUT (FORMAT binary)") as cp,
    ):
        for _ in cp:
            pass
    with psycopg.connect(uri) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]


def _connectorx_uri(uri: str) -> str:
    """connectorx's driver knows sslmode disable/prefer/require only: the peer pays TLS's cost, unverified."""
    return uri.replace("sslmode=verify-full", "sslmode=require")


def connectorx_arrow(uri: str, table: str) -> int:
    import connectorx as cx

    batches = cx.read_sql(_connectorx_uri(uri), _select(table), return_type="arrow_stream", batch_size=100_000)
    return sum(b.num_rows for b in batches)


def dlt_parquet(uri: str, table: str, backend: str, out: str) -> int:
    import dlt
    from dlt.sources.sql_database import sql_table

    source = sql_table(
        credentials=uri.replace("postgresql://", "postgresql+psycopg://"),  # SQLAlchemy reflects the table
        table=table,
        backend=backend,
        # connectorx reads over its own driver
        backend_kwargs={"conn": _connectorx_uri(uri)} if backend == "connectorx" else {},
    )
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{backend}",
        destination=dlt.destinations.filesystem(bucket_url=f"file://{out}"),
        dataset_name="bench",
        pipelines_dir=os.path.join(out, ".dlt"),
    )
    info = pipeline.run(source, loader_file_format="parquet")
    info.raise_on_failed_jobs()
    return int(pipeline.last_trace.last_normalize_info.row_counts.get(table, 0))  # type: ignore[union-attr]


def ours(env: Environment, table: str, chunks: int) -> int:
    from connectors.landing.writer import LandingWriter
    from connectors.pan_key import tokenizer_for
    from connectors.postgres.bulk import Window, key_ranges, open_snapshot, pipelined, select_sql, stream_chunk
    from connectors.postgres.connection import credentials
    from connectors.postgres.schema import live_columns
    from connectors.run import new_batch_id

    runtime = env.connectors.model_copy(update={"chunks_per_table": chunks, "chunk_min_rows": 1})
    env = env.model_copy(update={"connectors": runtime})
    t = bench_table(env, table)
    creds = credentials(env, SOURCE)
    tokenizer = tokenizer_for(env)
    with open_snapshot(env, SOURCE, creds) as (snap, conn):
        live = live_columns(conn, table)
        writer = LandingWriter(env, t, new_batch_id(snap.read_at), snap.read_at, tokenizer, "full")
        ranges = key_ranges(conn, env, t)

        def run(i: int) -> None:
            part = writer.part_writer(i)
            query = select_sql(t, live, Window(None, snap.upper), ranges[i])
            pipelined(stream_chunk(env, SOURCE, creds, snap.snapshot_id, query), part.write)
            part.close()

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(ranges)) as pool:
            list(pool.map(run, range(len(ranges))))
    # no manifest: the bench table is not in the catalog, and its batch must never reach the warehouse
    return writer.result.rows


def _clean_landing(env: Environment, table: str) -> None:
    from finsight.aws import client

    s3 = client(env, "s3")
    for prefix in (f"{env.aws.s3.raw_prefix}/{SOURCE}/{table}/", f"{env.aws.s3.raw_prefix}/{SOURCE}/_manifests/"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env.aws.s3.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if table in obj["Key"] or "_manifests" not in prefix:
                    s3.delete_object(Bucket=env.aws.s3.bucket, Key=obj["Key"])


def peak_rss_mib(table: str) -> float:
    """Ours on the big table in a child process (fresh interpreter): the child's own peak resident set, MiB.

    (RUSAGE_CHILDREN would report the largest of *all* children this process ever waited for, and even the
    child's own ru_maxrss starts at the bench process's peak: Linux carries the forking parent's high-water mark
    across exec. The child reads VmHWM, the high-water mark of its own address space since exec.)
    """
    code = f"from tests.bench.extract_bench import _child; _child({table!r})"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def _child(table: str) -> None:
    from finsight.config import load_environment

    env = load_environment("local")
    ours(env, table, 1)
    _clean_landing(env, table)
    status = Path("/proc/self/status").read_text()
    print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))  # KiB


def run_extract_bench(env: Environment, stack: LocalStack, rows: int, big_rows: int) -> dict[str, Any]:
    """Every peer on the repeating-card table; COPY and ours again on the distinct-card (production) table."""
    _create(stack, BENCH_TABLE, rows, "repeating")
    uri = _uri(env)
    _warm_imports()
    out: dict[str, Any] = {"table_rows": rows, "columns": 11, "cores": os.cpu_count(), "cpu_seconds": {}}
    rounds = int(os.environ.get("BENCH_ROUNDS", 2))  # best of: the cores are shared, one round can be unlucky

    def measure(name: str, fn: Callable[[], int], after: Callable[[], None] = lambda: None) -> int:
        best: tuple[float, int, dict[str, float]] | None = None
        for _ in range(rounds if name.startswith(("copy", "ours_1", "distinct")) else 1):
            with cpu_meter(stack) as cpu:
                seconds, n = _timed(fn)
            after()
            if best is None or seconds < best[0]:
                best = (seconds, n, dict(cpu))
        seconds, n, cpu = best  # type: ignore[misc]
        out[f"{name}_rows_per_s"] = round(n / seconds)
        out["cpu_seconds"][name] = {"wall": round(seconds, 2), **cpu}
        return n

    def ours_on(table: str, chunks: int) -> int:
        n = ours(env, table, chunks)
        assert n == rows, f"ours landed {n} rows of {rows}"
        return n

    out["shapes"] = {"repeating": card_stats(stack, BENCH_TABLE)}
    measure("copy_limit", lambda: copy_limit(uri, BENCH_TABLE))
    if not os.environ.get("BENCH_SHAPES_ONLY"):  # the peers: skipped when only the two shapes are wanted
        measure("connectorx_arrow", lambda: connectorx_arrow(uri, BENCH_TABLE))
        for backend in ("connectorx", "pyarrow"):
            tmp = tempfile.mkdtemp(prefix=f"bench-dlt-{backend}-")
            try:
                measure(f"dlt_{backend}", lambda b=backend, d=tmp: dlt_parquet(uri, BENCH_TABLE, b, d))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    for chunks in (1,) if os.environ.get("BENCH_SHAPES_ONLY") else (1, 2, 4):
        measure(
            f"ours_{chunks}_chunks", lambda c=chunks: ours_on(BENCH_TABLE, c), lambda: _clean_landing(env, BENCH_TABLE)
        )
    out["ours_rows_per_s"] = out["ours_1_chunks_rows_per_s"]
    _create(stack, DISTINCT_TABLE, rows, "distinct")
    out["shapes"]["distinct"] = card_stats(stack, DISTINCT_TABLE)
    measure("distinct_copy_limit", lambda: copy_limit(uri, DISTINCT_TABLE))
    measure("distinct_ours_1_chunks", lambda: ours_on(DISTINCT_TABLE, 1), lambda: _clean_landing(env, DISTINCT_TABLE))
    if not os.environ.get("BENCH_SKIP_RSS"):
        _create(stack, BIG_TABLE, big_rows, "distinct")  # the worst case for memory: every card its own token
        with stack.admin_connect(SOURCE) as conn:
            size = conn.execute("SELECT pg_total_relation_size(%s)", (BIG_TABLE,)).fetchone()[0]  # type: ignore[index]
        out["rss_table_rows"] = big_rows
        out["rss_table_mib"] = round(size / 2**20)
        out["ours_peak_rss_mib"] = round(peak_rss_mib(BIG_TABLE))
    limit = out["copy_limit_rows_per_s"]
    cpu = out["cpu_seconds"]
    out["ratios"] = {
        "ours_vs_copy": round(out["ours_rows_per_s"] / limit, 2),
        "distinct_ours_vs_copy": round(
            out["distinct_ours_1_chunks_rows_per_s"] / out["distinct_copy_limit_rows_per_s"], 2
        ),
        "distinct_vs_repeating_client_cpu": round(
            cpu["distinct_ours_1_chunks"]["client"] / cpu["ours_1_chunks"]["client"], 2
        ),
    }
    if "dlt_connectorx_rows_per_s" in out:
        out["ratios"] |= {
            "ours_vs_dlt_connectorx": round(out["ours_rows_per_s"] / out["dlt_connectorx_rows_per_s"], 2),
            "ours_4_chunks_vs_1": round(out["ours_4_chunks_rows_per_s"] / out["ours_rows_per_s"], 2),
            "connectorx_vs_copy": round(out["connectorx_arrow_rows_per_s"] / limit, 2),
        }
    return out


if __name__ == "__main__":  # a quick look without the rest of make bench
    from finsight.config import load_environment

    env = load_environment("local")
    stack = LocalStack(env)
    stack.up(seed_sources=False)
    print(json.dumps(run_extract_bench(env, stack, int(os.environ.get("BENCH_ROWS", 5_000_000)), 10_000_000), indent=2))
