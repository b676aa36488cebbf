"""Run one source's extraction: every table through the Airbyte stream into the landing zone.

Per table: read state -> read the window -> write Parquet parts -> PK snapshot (if configured) -> manifest -> state.
A failed table leaves its watermark untouched (the next run re-reads the window) and does not stop the others.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from airbyte_cdk.models import SyncMode

from connectors.landing.state import load_state, save_state
from connectors.landing.writer import BatchResult, LandingWriter
from connectors.pci import PanTokenizer
from connectors.postgres.source import PostgresSource, TableStream, read_primary_keys, utc_now
from finsight.config import Environment
from finsight.secrets import read_secret

log = logging.getLogger("finsight.connectors")


class ExtractionError(RuntimeError):
    """One or more tables failed; their watermarks did not move, so a rerun replays them."""


@dataclass
class SourceRun:
    source: str
    batches: list[BatchResult]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches)


def new_batch_id(at: datetime) -> str:
    # time first: lexical order == extraction order, which MERGE uses to let the later batch win ties
    return f"{at:%Y%m%dt%H%M%S}z-{uuid.uuid4().hex[:8]}"


def _extract_table(stream: TableStream, tokenizer: PanTokenizer, mode: str) -> BatchResult:
    env, table = stream.env, stream.table
    if mode == "incremental":
        stream.state = load_state(env, table)
    extracted_at = utc_now()
    writer = LandingWriter(env, table, new_batch_id(extracted_at), extracted_at, tokenizer, mode)
    sync_mode = SyncMode.incremental if mode in ("incremental", "backfill") else SyncMode.full_refresh
    for window in stream.stream_slices():
        writer.write_rows(stream.read_records(sync_mode, stream_slice=window))
    if table.deletes.value == "pk_snapshot" and mode != "backfill":
        writer.write_pk_snapshot(read_primary_keys(env, table))
    if writer.result.rows or writer.result.pk_rows is not None:
        writer.write_manifest()
    if mode == "incremental":
        save_state(env, table, dict(stream.state))
    log.info(
        "landed %s batch=%s rows=%d files=%d",
        table.qualified,
        writer.result.batch_id,
        writer.result.rows,
        len(writer.result.files),
    )
    return writer.result


def extract_source(
    env: Environment,
    source: str,
    mode: str = "incremental",
    tables: list[str] | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> SourceRun:
    """mode: incremental (watermarked), full (whole table), backfill (explicit [start, end) window, no state change)."""
    if mode not in ("incremental", "full", "backfill"):
        raise ValueError(f"unknown mode {mode!r}: use incremental, full or backfill")
    if mode == "backfill" and window is None:
        raise ValueError("backfill needs a window (start, end)")
    started = time.monotonic()
    airbyte_source = PostgresSource(env, source)
    ok, error = airbyte_source.check_connection(log, {})
    if not ok:
        raise ExtractionError(str(error))
    lower, upper = window if window else (None, None)
    streams = airbyte_source.streams({}, upper_bound=upper, lower_bound=lower)
    selected = [s for s in streams if tables is None or s.table.name in tables]
    tokenizer = PanTokenizer(read_secret(env, env.secrets.pan_tokenization_key)["hmac_key"])
    results: list[BatchResult] = []
    failures: list[str] = []
    with ThreadPoolExecutor(max_workers=env.connectors.parallel_tables) as pool:
        futures = {pool.submit(_extract_table, s, tokenizer, mode): s.table.qualified for s in selected}
        for future, name in futures.items():
            try:
                results.append(future.result())
            except Exception as exc:
                failures.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    if failures:
        raise ExtractionError(
            f"source {source!r}: {len(failures)} table(s) failed, watermarks kept:\n" + "\n".join(failures)
        )
    return SourceRun(source=source, batches=results, seconds=time.monotonic() - started)
