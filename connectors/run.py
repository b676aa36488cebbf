"""Run one source's extraction: every table through the Arrow bulk path into the landing zone.

Per table: state -> snapshot + read horizon -> live schema vs catalog -> parallel key-range chunks streamed to
Parquet in S3 -> deletes (PK snapshot or range-hash tombstones) -> manifest -> state.
A failed table leaves its watermark untouched (the next run re-reads the window) and does not stop the others; a
source that cannot be reached (secret, connect, snapshot) fails alone, with a message naming it.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from connectors import MODES
from connectors.landing.state import load_state, save_state_unless_superseded
from connectors.landing.writer import BatchResult, LandingWriter
from connectors.pan_key import tokenizer_for
from connectors.pci import PanTokenizer
from connectors.postgres import deletes
from connectors.postgres.bulk import Window, key_ranges, open_snapshot, pipelined, select_sql, stream_chunk
from connectors.postgres.connection import Credentials, SourceUnavailable, credentials
from connectors.postgres.schema import evolve, live_columns, remembered
from connectors.postgres.source import PostgresSource, TableStream
from finsight.aws import as_source_task
from finsight.config import Environment, Table
from finsight.ops.log_context import bind, submit

log = logging.getLogger("finsight.connectors")


def check_mode(mode: str, window: tuple[datetime, datetime] | None) -> None:
    """The run modes every source kind accepts (databases and APIs alike)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: use {', '.join(MODES)}")
    if mode == "backfill" and window is None:
        raise ValueError("backfill needs a window (start, end)")


class ExtractionError(RuntimeError):
    """One or more tables (or the whole source) failed; their watermarks did not move, so a rerun replays them."""


@dataclass
class SourceRun:
    source: str
    batches: list[BatchResult]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches)


def new_batch_id(at: datetime) -> str:
    # time first: lexical order == read order, which MERGE uses to let the later batch win ties
    return f"{at:%Y%m%dt%H%M%S}z-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class TableJob:
    env: Environment
    stream: TableStream
    creds: Credentials
    tokenizer: PanTokenizer
    mode: str
    backfill: tuple[datetime, datetime] | None = None

    @property
    def table(self) -> Table:
        return self.stream.table


def _window(job: TableJob, upper: datetime) -> Window:
    if job.mode == "backfill":
        assert job.backfill is not None
        start, end = job.backfill
        # [start, end), never past the read horizon (a later run reads what is still open)
        return Window(start, end, upper_inclusive=False) if end <= upper else Window(start, upper)
    if job.mode == "full":
        return Window(None, upper)
    return job.stream.window(upper)


def _read_chunks(job: TableJob, writer: LandingWriter, conn: Any, snapshot_id: str, window: Window, live: dict) -> None:
    """Every key-range chunk on its own connection inside the shared snapshot, in parallel."""
    ranges = key_ranges(conn, job.env, job.table)

    def run(chunk: int) -> None:
        part = writer.part_writer(chunk)
        query = select_sql(writer.table, live, window, ranges[chunk])
        try:
            pipelined(stream_chunk(job.env, job.table.source, job.creds, snapshot_id, query), part.write)
        except BaseException:
            part.abort()
            raise
        part.close()

    if len(ranges) == 1:
        run(0)
        return
    with ThreadPoolExecutor(max_workers=len(ranges), thread_name_prefix=f"chunk-{job.table.name}") as pool:
        for future in [submit(pool, run, i) for i in range(len(ranges))]:
            future.result()


def _extract_table(job: TableJob) -> BatchResult:
    # the table's log lines carry its name, and its batch id once the snapshot names the batch
    with bind(table=job.table.qualified), ExitStack() as ids:
        return _land_table(job, ids)


def _land_table(job: TableJob, ids: ExitStack) -> BatchResult:
    env, table = job.env, job.table
    state: dict[str, Any] = load_state(env, table) if job.mode == "incremental" else {}
    job.stream.state = state
    with open_snapshot(env, table.source, job.creds) as (snapshot, conn):
        live = live_columns(conn, table.name)
        for key in [*table.primary_key, table.cursor]:
            if key not in live:
                raise SourceUnavailable(f"{table.qualified}: key column {key!r} is missing at the source")
        landed, drift = evolve(conn, table, live, state.get("schema", {}))
        window = _window(job, snapshot.upper)
        writer = LandingWriter(env, landed, new_batch_id(snapshot.read_at), snapshot.read_at, job.tokenizer, job.mode)
        ids.enter_context(bind(batch_id=writer.batch_id))
        _read_chunks(job, writer, conn, snapshot.snapshot_id, window, live)
        delete_state = None
        if job.mode != "backfill":

            def read_arrow(query: str) -> pa.Table:
                batches = list(stream_chunk(env, table.source, job.creds, snapshot.snapshot_id, query))
                return pa.Table.from_batches(batches) if batches else pa.table({})

            delete_state = deletes.detect(conn, env, table, writer, state.get("deletes"), snapshot.read_at, read_arrow)
        writer.result.schema_changes = drift.changes()  # travels in the manifest: the warehouse sees the drift
        result = writer.finish()
    if job.mode == "incremental":
        new_state = {
            "cursor": window.upper.isoformat(),
            "read_at": snapshot.read_at.isoformat(),
            "horizon_held_by_open_transaction": snapshot.horizon is not None and snapshot.horizon < snapshot.read_at,
            "schema": remembered(landed),
        }
        if delete_state is not None:
            new_state["deletes"] = delete_state
        if not save_state_unless_superseded(env, table, new_state):  # an overrunning run never rolls a newer back
            log.warning("%s: state kept: a run that read the source later saved first", table.qualified)
    log.info(
        "landed %s batch=%s rows=%d files=%d bytes=%d",
        table.qualified,
        result.batch_id,
        result.rows,
        len(result.files),
        result.bytes,
        extra={"fields": {"rows": result.rows}},  # table and batch_id: bound (finsight.ops.log_context)
    )
    if drift.changes():
        log.warning(
            "schema drift %s: %s",
            table.qualified,
            "; ".join(drift.changes()),
            extra={"fields": {"event": "schema_drift", "table": table.qualified, "changes": drift.changes()}},
        )
    return result


def extract_source(
    env: Environment,
    source: str,
    mode: str = "incremental",
    tables: list[str] | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> SourceRun:
    """mode: incremental (watermarked), full (whole table), backfill (explicit [start, end) window, no state change).

    Raises ExtractionError, naming the source and every failed table, for anything that went wrong.
    """
    check_mode(mode, window)
    with bind(source=source), as_source_task(env, source):  # only what the source's task role grants
        return _extract_source(env, source, mode, tables, window)


def _extract_source(
    env: Environment,
    source: str,
    mode: str,
    tables: list[str] | None,
    window: tuple[datetime, datetime] | None,
) -> SourceRun:
    started = time.monotonic()
    airbyte_source = PostgresSource(env, source)
    try:
        creds = credentials(env, source)
        tokenizer = tokenizer_for(env)
    except Exception as exc:
        raise ExtractionError(f"source {source!r}: {_first_line(exc)}") from None
    ok, error = airbyte_source.check_connection(log, {})
    if not ok:
        raise ExtractionError(str(error))
    streams = [s for s in airbyte_source.streams({}) if tables is None or s.table.name in tables]  # type: ignore[attr-defined]
    if tables is not None and len(streams) != len(tables):
        known = ", ".join(env.postgres_sources[source].tables)
        raise ExtractionError(f"source {source!r}: unknown table in {tables}; known: {known}")
    jobs = [TableJob(env, s, creds, tokenizer, mode, window) for s in streams]  # type: ignore[arg-type]
    results: list[BatchResult] = []
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=env.connectors.parallel_tables) as pool:
        futures = {submit(pool, _extract_table, job): job.table.qualified for job in jobs}
        for future, name in futures.items():
            try:
                results.append(future.result())
            except Exception as exc:
                failures.append(f"{name}: {type(exc).__name__}: {_first_line(exc)}")
    if failures:
        raise ExtractionError(
            f"source {source!r}: {len(failures)} table(s) failed, watermarks kept:\n" + "\n".join(failures)
        )
    return SourceRun(source=source, batches=results, seconds=time.monotonic() - started)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
