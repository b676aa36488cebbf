"""Chunked, resumable backfills: a [start, end) cursor window cut into per-table chunks, each checkpointed in S3.

A backfill is named by its parameters (`backfill_id`), so rerunning the same command finds its own checkpoints:

  state/<source>/backfills/<backfill id>/plan.json                               what was asked (written once)
  state/<source>/backfills/<backfill id>/chunks/<table>/<start>-<end>.<status>.json
                                                                                 started | done | failed

A chunk is one `extract_source(env, source, mode="backfill", tables=[table], window=(start, end))`: ordinary batches
(manifest mode 'backfill', their own batch ids), and never the hourly watermark. Its `done` record is written only
after extract_source returned, i.e. after its Parquet parts and manifest are in S3. A run killed mid-chunk leaves at
most a `started` record and a batch without a checkpoint: the rerun extracts that chunk again, and MERGE keeps one
version per key (the latest read wins), so a rerun never duplicates rows in CURATED.

Planning and naming are pure functions (unit- and property-tested); the store and runner talk to S3 (KMS on every put).
The CLI (`finsight backfill`) and the ECS entrypoint (`python -m connectors` with FINSIGHT_BACKFILL_ID) share them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from finsight import catalog
from finsight.aws import as_source_task, client, data_key_arn
from finsight.config import Environment
from finsight.ops.log_context import submit

# Two years, one leap day included: longer backfills are split into several.
MAX_WINDOW = timedelta(days=731)
DEFAULT_CHUNK = "1d"
# The connector's container in the ECS task definition (cdktf/finsight_infra/naming.py Names.container_name; a test
# keeps the two equal).
CONNECTOR_CONTAINER = "connector"
STATUSES = ("started", "done", "failed")

_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
_BACKFILL_ID = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


class BackfillError(ValueError):
    """Bad backfill parameters; the message starts with the option (or variable) to fix."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


# -- parameters (pure) ---------------------------------------------------------------------------------------------
def parse_duration(text: str, option: str = "--chunk") -> timedelta:
    """`30m`, `6h`, `1d`, `2w` -> timedelta."""
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise BackfillError(
            option, f"{text!r} is not a chunk duration; use a positive number with m, h, d or w: 6h, 1d, 7d"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(span: timedelta) -> str:
    """Canonical text of a duration (the largest whole unit): `24h` and `1d` name the same backfill."""
    for unit, size in _UNITS.items():
        if span % size == timedelta(0):
            return f"{span // size}{unit}"
    raise ValueError(f"{span} is not a whole number of minutes")


def parse_when(text: str, option: str) -> datetime:
    """ISO date (midnight) or datetime -> naive UTC, the form cursors are compared in."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BackfillError(
            option, f"{text!r} is not an ISO date (YYYY-MM-DD) or datetime (YYYY-MM-DDTHH:MM)"
        ) from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def check_window(start: datetime, end: datetime, names: tuple[str, str] = ("--start", "--end")) -> None:
    if start >= end:
        raise BackfillError(names[1], f"{end.isoformat()} must be after {names[0]} {start.isoformat()}")
    if end - start > MAX_WINDOW:
        raise BackfillError(
            names[0],
            f"the window {start.isoformat()} .. {end.isoformat()} spans {(end - start).days} days; a backfill covers "
            f"at most 2 years ({MAX_WINDOW.days} days): split it into several backfills",
        )


def plan_windows(start: datetime, end: datetime, chunk: timedelta) -> list[tuple[datetime, datetime]]:
    """Consecutive [start, end) windows of `chunk`, the last one cut at `end`: no gap, no overlap."""
    if chunk <= timedelta(0):
        raise ValueError("chunk must be positive")
    windows = []
    lower = start
    while lower < end:
        upper = min(lower + chunk, end)
        windows.append((lower, upper))
        lower = upper
    return windows


def stamp(at: datetime) -> str:
    """Compact, sortable, path-safe text of a bound (microseconds only when present)."""
    text = at.strftime("%Y%m%dT%H%M%S")
    return f"{text}.{at.microsecond:06d}" if at.microsecond else text


@dataclass(frozen=True)
class Chunk:
    table: str  # table name within the source
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        return f"{self.table}/{stamp(self.start)}-{stamp(self.end)}"

    def label(self, source: str) -> str:
        return f"{source}.{self.table} [{self.start.isoformat()} .. {self.end.isoformat()})"


@dataclass(frozen=True)
class BackfillPlan:
    source: str
    tables: tuple[str, ...]
    start: datetime
    end: datetime
    chunk: timedelta
    table: str | None = None  # the --table asked for; None = every table of the source

    @property
    def backfill_id(self) -> str:
        """Derived from the parameters only: the same command resumes the same backfill."""
        return f"{self.table or 'all'}_{stamp(self.start)}_{stamp(self.end)}_{format_duration(self.chunk)}"

    def windows(self) -> list[tuple[datetime, datetime]]:
        return plan_windows(self.start, self.end, self.chunk)

    def chunks(self) -> list[Chunk]:
        """Window by window (oldest first), every table within a window."""
        return [Chunk(t, lo, hi) for lo, hi in self.windows() for t in self.tables]

    def to_json(self) -> dict[str, Any]:
        return {
            "backfill_id": self.backfill_id,
            "source": self.source,
            "table": self.table,
            "tables": list(self.tables),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "chunk": format_duration(self.chunk),
            "chunks": len(self.chunks()),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BackfillPlan:
        return cls(
            source=data["source"],
            tables=tuple(data["tables"]),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            chunk=parse_duration(data["chunk"]),
            table=data.get("table"),
        )


def table_names(env: Environment, source: str, requested: str | None, option: str = "--table") -> tuple[str, ...]:
    """`payments` or `payments.payments` -> (payments,); None -> every table of the source."""
    known = env.postgres_sources[source].tables
    if requested is None:
        return tuple(known)
    name = requested.split(".", 1)[1] if requested.startswith(f"{source}.") else requested
    if name not in known:
        raise BackfillError(option, f"{requested!r} is not a table of {source}; tables: {', '.join(known)}")
    return (name,)


def make_plan(
    env: Environment,
    source: str,
    table: str | None,
    start: str,
    end: str,
    chunk: str = DEFAULT_CHUNK,
    now: datetime | None = None,
) -> BackfillPlan:
    """Check every parameter (errors name the option) and plan the chunks; nothing is read or written."""
    if source not in env.postgres_sources:
        raise BackfillError(
            "--source",
            f"unknown PostgreSQL source {source!r} in {env.name}; sources: {', '.join(env.postgres_sources)}",
        )
    tables = table_names(env, source, table)
    begin, finish = parse_when(start, "--start"), parse_when(end, "--end")
    check_window(begin, finish)
    now = now or datetime.now(UTC).replace(tzinfo=None)
    if finish > now:
        # a chunk is read up to the source's read horizon at most: a window reaching into the future would be
        # checkpointed `done` with its tail unread (the hourly run reads recent rows anyway)
        raise BackfillError("--end", f"{finish.isoformat()} is in the future (now {now:%Y-%m-%dT%H:%M} UTC); "
                            "a backfill re-reads the past, the hourly run covers the rest")  # fmt: skip
    span = parse_duration(chunk)
    return BackfillPlan(source, tables, begin, finish, span, tables[0] if table else None)


# -- checkpoints (S3, KMS) -----------------------------------------------------------------------------------------
def check_backfill_id(text: str, option: str = "FINSIGHT_BACKFILL_ID") -> str:
    if not _BACKFILL_ID.match(text):
        raise BackfillError(option, f"{text!r} is not a backfill id (letters, digits, '_', '.', '-')")
    return text


def _state(recorded: dict[str, datetime]) -> str:
    if "done" in recorded:
        return "done"
    if "failed" in recorded and recorded["failed"] >= recorded.get("started", recorded["failed"]):
        return "failed"
    return "started"


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


class CheckpointStore:
    """One backfill's plan and chunk records under state/<source>/backfills/<backfill id>/."""

    def __init__(self, env: Environment, source: str, backfill_id: str) -> None:
        self.env = env
        self.source = source
        self.backfill_id = check_backfill_id(backfill_id)
        self.prefix = f"{catalog.backfill_state_prefix(source)}{backfill_id}/"
        self._s3 = client(env, "s3")
        self._bucket = env.aws.s3.bucket
        self._kms_key = data_key_arn(env)

    def _put(self, key: str, payload: dict[str, Any]) -> None:
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=json.dumps(payload, default=str).encode(),
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self._kms_key,
        )

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read())
        except self._s3.exceptions.NoSuchKey:
            return None

    def _keys(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"], obj["LastModified"]

    def chunk_key(self, chunk: Chunk, status: str) -> str:
        return f"{self.prefix}chunks/{chunk.key}.{status}.json"

    # plan
    def save_plan(self, plan: BackfillPlan) -> bool:
        """Record the plan the first time (keeps its `created_at`); True when written now."""
        key = f"{self.prefix}plan.json"
        if self._get(key) is not None:
            return False
        self._put(key, {**plan.to_json(), "created_at": _now()})
        return True

    def load_plan(self) -> dict[str, Any] | None:
        return self._get(f"{self.prefix}plan.json")

    # chunks
    def mark(self, chunk: Chunk, status: str, **fields: Any) -> None:
        assert status in STATUSES
        record = {"table": chunk.table, "start": chunk.start.isoformat(), "end": chunk.end.isoformat(), **fields}
        self._put(self.chunk_key(chunk, status), {"status": status, "at": _now(), **record})

    def statuses(self) -> dict[str, str]:
        """chunk key -> its state, from one listing (no read per chunk, and no delete ever needed).

        `done` wins for good; otherwise the later of `started` and `failed` (a tie is the fast failure of that start).
        """
        recorded: dict[str, dict[str, datetime]] = {}
        base = f"{self.prefix}chunks/"
        for key, modified in self._keys(base):
            chunk_key, _, status = key[len(base) :].removesuffix(".json").rpartition(".")
            if status in STATUSES:
                recorded.setdefault(chunk_key, {})[status] = modified
        return {key: _state(found) for key, found in recorded.items()}

    def finished(self) -> set[str]:
        return {k for k, state in self.statuses().items() if state == "done"}

    def records(self, chunk_keys: list[str], status: str) -> list[dict[str, Any]]:
        """Read the records of some chunks (parallel GETs: a 2-year daily backfill has thousands)."""
        keys = [f"{self.prefix}chunks/{k}.{status}.json" for k in chunk_keys]
        with ThreadPoolExecutor(max_workers=16) as pool:
            return [r for r in pool.map(self._get, keys) if r is not None]


def list_backfills(env: Environment, source: str) -> list[str]:
    s3 = client(env, "s3")
    ids = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=env.aws.s3.bucket, Prefix=catalog.backfill_state_prefix(source), Delimiter="/"
    ):
        ids += [p["Prefix"].rstrip("/").rsplit("/", 1)[-1] for p in page.get("CommonPrefixes", [])]
    return sorted(ids)


# -- running -------------------------------------------------------------------------------------------------------
@dataclass
class ChunkOutcome:
    chunk: Chunk
    status: str  # done | skipped | failed
    rows: int = 0
    batch_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


@dataclass
class BackfillRun:
    plan: BackfillPlan
    outcomes: list[ChunkOutcome] = field(default_factory=list)
    skipped: int = 0  # chunks a previous run finished
    seconds: float = 0.0

    @property
    def failed(self) -> list[ChunkOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return not self.failed

    def tables_landed(self) -> list[str]:
        """Tables that got at least one batch in this run (what the local load + merge has to cover)."""
        return sorted({o.chunk.table for o in self.outcomes if o.status == "done" and o.batch_ids})

    def to_json(self) -> dict[str, Any]:
        return {
            **self.plan.to_json(),
            "ok": self.ok,
            "chunks_skipped": self.skipped,
            "chunks_done": sum(o.status == "done" for o in self.outcomes),
            "chunks_failed": len(self.failed),
            "rows": self.rows,
            "seconds": round(self.seconds, 2),
            "batch_ids": sorted(b for o in self.outcomes for b in o.batch_ids),
            "failed": [
                {"table": f"{self.plan.source}.{o.chunk.table}", "start": o.chunk.start.isoformat(),
                 "end": o.chunk.end.isoformat(), "error": o.error}
                for o in self.failed
            ],
        }  # fmt: skip


def _error_text(exc: BaseException) -> str:
    """Type and message on one line (ExtractionError lists each failed table's first line on its own line)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {' / '.join(lines[:5])}".rstrip(": ")


def run_chunk(env: Environment, store: CheckpointStore, chunk: Chunk) -> ChunkOutcome:
    """Extract one chunk and checkpoint it; a failure is recorded, not raised (the other chunks go on)."""
    import connectors.run  # airbyte-cdk import is slow: only when a chunk really runs

    started = time.monotonic()
    store.mark(chunk, "started", host=socket.gethostname(), pid=os.getpid())
    try:
        run = connectors.run.extract_source(
            env, store.source, mode="backfill", tables=[chunk.table], window=(chunk.start, chunk.end)
        )
    except Exception as exc:
        error = _error_text(exc)
        seconds = time.monotonic() - started
        store.mark(chunk, "failed", error=error, seconds=round(seconds, 2))
        return ChunkOutcome(chunk, "failed", seconds=seconds, error=error)
    seconds = time.monotonic() - started
    batches = [b for b in run.batches if b.manifest_key]  # a window without rows lands no batch
    outcome = ChunkOutcome(chunk, "done", run.rows, [b.batch_id for b in batches], seconds)
    store.mark(chunk, "done", rows=outcome.rows, batch_ids=outcome.batch_ids, seconds=round(seconds, 2))
    return outcome


def run_backfill(
    env: Environment,
    plan: BackfillPlan,
    parallel: int = 1,
    on_start: Callable[[int, int], None] | None = None,
    on_chunk: Callable[[ChunkOutcome], None] | None = None,
) -> BackfillRun:
    """Run every unfinished chunk, `parallel` at a time (threads). on_start(pending, skipped); on_chunk per result."""
    with as_source_task(env, plan.source):  # only what the source's task role grants (threads inherit it)
        return _run_backfill(env, plan, parallel, on_start, on_chunk)


def _run_backfill(
    env: Environment,
    plan: BackfillPlan,
    parallel: int,
    on_start: Callable[[int, int], None] | None,
    on_chunk: Callable[[ChunkOutcome], None] | None,
) -> BackfillRun:
    started = time.monotonic()
    store = CheckpointStore(env, plan.source, plan.backfill_id)
    store.save_plan(plan)
    finished = store.finished()
    chunks = plan.chunks()
    pending = [c for c in chunks if c.key not in finished]
    run = BackfillRun(plan, skipped=len(chunks) - len(pending))
    if on_start:
        on_start(len(pending), run.skipped)
    for service in ("s3", "secretsmanager"):
        client(env, service)  # create the cached clients here: boto3 client creation is not thread-safe
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [submit(pool, run_chunk, env, store, c) for c in pending]  # log ids travel along
        try:
            for future in as_completed(futures):
                outcome = future.result()
                run.outcomes.append(outcome)
                if on_chunk:
                    on_chunk(outcome)
        except BaseException:
            # Ctrl-C: let the running chunks finish (or be killed), start no new one; a rerun resumes
            for future in futures:
                future.cancel()
            raise
    run.outcomes.sort(key=lambda o: (o.chunk.start, o.chunk.table))
    run.seconds = time.monotonic() - started
    return run


def run_window(
    env: Environment, source: str, backfill_id: str, tables: tuple[str, ...], window: tuple[datetime, datetime]
) -> list[ChunkOutcome]:
    """The ECS entrypoint's share of a backfill: one window, its tables one chunk each, finished ones skipped."""
    with as_source_task(env, source):
        return _run_window(env, source, backfill_id, tables, window)


def _run_window(
    env: Environment, source: str, backfill_id: str, tables: tuple[str, ...], window: tuple[datetime, datetime]
) -> list[ChunkOutcome]:
    store = CheckpointStore(env, source, backfill_id)
    finished = store.finished()
    outcomes = []
    for table in tables:
        chunk = Chunk(table, *window)
        outcomes.append(ChunkOutcome(chunk, "skipped") if chunk.key in finished else run_chunk(env, store, chunk))
    return outcomes


# -- ECS: one RunTask per window -----------------------------------------------------------------------------------
def ecs_overrides(env: Environment, plan: BackfillPlan) -> list[dict[str, Any]]:
    """The RunTask `overrides` of each window (`aws ecs run-task --overrides '<json>'`), for DevOps to launch.

    The task resumes the same checkpoints as the CLI (FINSIGHT_BACKFILL_ID), so relaunching a window is safe.
    """
    out = []
    for lower, upper in plan.windows():
        variables = {
            "FINSIGHT_ENV": env.name,
            "FINSIGHT_SOURCE": plan.source,
            "FINSIGHT_MODE": "backfill",
            "FINSIGHT_BACKFILL_START": lower.isoformat(),
            "FINSIGHT_BACKFILL_END": upper.isoformat(),
            "FINSIGHT_BACKFILL_ID": plan.backfill_id,
        }
        if plan.table:
            variables["FINSIGHT_TABLES"] = plan.table
        environment = [{"name": k, "value": v} for k, v in variables.items()]
        out.append({"containerOverrides": [{"name": CONNECTOR_CONTAINER, "environment": environment}]})
    return out


# -- status --------------------------------------------------------------------------------------------------------
@dataclass
class BackfillStatus:
    source: str
    backfill_id: str
    plan: dict[str, Any] | None
    done: int
    rows: int
    failed: list[dict[str, Any]]  # records: table, start, end, error, at
    running: list[dict[str, Any]]  # started and neither done nor failed since: running now, or killed

    @property
    def total(self) -> int | None:
        return self.plan["chunks"] if self.plan else None

    @property
    def state(self) -> str:
        if self.total is not None and self.done >= self.total:
            return "finished"
        if self.failed:
            return "failed"
        return "running" if self.running else "incomplete"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "backfill_id": self.backfill_id,
            "state": self.state,
            "chunks_total": self.total,
            "chunks_done": self.done,
            "rows": self.rows,
            "failed": self.failed,
            "running": self.running,
            "plan": self.plan,
        }


def backfill_status(env: Environment, source: str, backfill_id: str) -> BackfillStatus:
    store = CheckpointStore(env, source, backfill_id)
    states = store.statuses()
    done, failed, running = ([k for k, s in states.items() if s == state] for state in ("done", "failed", "started"))
    rows = sum(int(r.get("rows", 0)) for r in store.records(done, "done"))
    return BackfillStatus(
        source,
        backfill_id,
        store.load_plan(),
        len(done),
        rows,
        failed=store.records(failed, "failed"),
        running=store.records(running, "started"),
    )
