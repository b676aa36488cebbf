"""ECS entrypoint: `python -m connectors` extracts one source, configured only by environment variables.

  FINSIGHT_ENV                   local | dev | staging | prod (loads environments/<env>.yaml)
  FINSIGHT_SOURCE                a source of that environment: postgres_sources.<name> or api_sources.<name>
  FINSIGHT_MODE                  incremental (default),
                                 full, or backfill
  FINSIGHT_BACKFILL_START/_END   backfill window, ISO dates or datetimes in UTC (both or neither)
  FINSIGHT_BACKFILL_CHUNK_DAYS   without START/END, a backfill re-reads the last N whole days up to today 00:00 UTC
                                 (default: schedule.backfill_chunk_days of the environment)
  FINSIGHT_TABLES                optional comma list of tables of the source (default: every table)
  FINSIGHT_RUN_ID                optional: the run this extraction belongs to (default: <mode>-<start time>-<hex>);
                                 every log line carries it with the source, table and batch id
  FINSIGHT_BACKFILL_ID           with START/END: this window is a chunk of that backfill (`finsight backfill
                                 --print-ecs-overrides` prints it). Each table's chunk is checkpointed under
                                 state/<source>/backfills/<id>/ once landed, and a relaunch skips finished chunks.

Credentials are read by the connector itself through finsight.secrets (Secrets Manager under the ECS task role).
The values ECS injects as FINSIGHT_SOURCE_SECRET / FINSIGHT_PAN_TOKENIZATION_KEY are therefore not used, and are
dropped from the process environment at start so nothing downstream can echo them.

With a verb (`spec`, `check --config C`, `discover --config C`, `read --config C --catalog K [--state S]`) it
speaks the Airbyte protocol instead (connectors/protocol.py; PostgreSQL and API sources; docs/connectors.md).

Logs are JSON lines on stdout (CloudWatch): batch ids, row and file counts, seconds; never a secret value.
Exit codes: 0 ok; 1 extraction failed (watermarks kept, the next run or a rerun replays the window);
2 configuration or usage error, with a message naming the variable to fix.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors import MODES
from connectors.backfill import BackfillError, check_backfill_id, run_window
from finsight.config import ENVIRONMENTS, ConfigError, Environment, load_environment
from finsight.ops.log_context import IdsFilter, bind

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
PROTOCOL_VERBS = ("spec", "check", "discover", "read")  # connectors.protocol.VERBS, without its slow import
INJECTED_SECRETS = ("FINSIGHT_SOURCE_SECRET", "FINSIGHT_PAN_TOKENIZATION_KEY")
_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

log = logging.getLogger("finsight.connectors.main")


class UsageError(ValueError):
    """A variable is missing or wrong; the message starts with the variable's name."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True)
class Invocation:
    env: str
    source: str
    mode: str
    start: datetime | None = None
    end: datetime | None = None
    chunk_days: int | None = None
    tables: tuple[str, ...] | None = None  # None: every table of the source
    backfill_id: str | None = None  # a chunk of this backfill: checkpointed, resume-safe
    run_id: str | None = None  # FINSIGHT_RUN_ID: stamped on every log line (finsight.ops.log_context)


# -- parsing (pure: unit-tested without AWS or a database) --------------------------------------------------------
def parse_when(text: str, variable: str) -> datetime:
    """ISO date (midnight) or datetime -> naive UTC, the form the source stream compares cursors with."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(variable, f"{text!r} is not an ISO date (YYYY-MM-DD) or datetime") from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def derive_window(chunk_days: int, now: datetime) -> tuple[datetime, datetime]:
    """The last `chunk_days` whole UTC days: [today 00:00 - chunk_days, today 00:00]."""
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    end = datetime.combine(now.date(), datetime.min.time())
    return end - timedelta(days=chunk_days), end


def parse_chunk_days(text: str, variable: str = "FINSIGHT_BACKFILL_CHUNK_DAYS") -> int:
    try:
        days = int(text)
    except ValueError:
        raise UsageError(variable, f"{text!r} is not a whole number of days") from None
    if days < 1:
        raise UsageError(variable, f"must be at least 1, got {days}")
    return days


def parse_mode(text: str, variable: str = "FINSIGHT_MODE") -> str:
    mode = text.strip().lower()
    if mode not in MODES:
        raise UsageError(variable, f"unknown mode {text!r}; use {', '.join(MODES)}")
    return mode


def check_window(start: datetime | None, end: datetime | None, names: tuple[str, str]) -> None:
    """Both bounds or neither; start before end."""
    if (start is None) != (end is None):
        missing = names[1] if end is None else names[0]
        raise UsageError(missing, f"set both {names[0]} and {names[1]}, or neither (derive the last chunk of days)")
    if start is not None and end is not None and start >= end:
        raise UsageError(names[1], f"{end.isoformat()} must be after {names[0]} {start.isoformat()}")


def _optional(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def read_invocation(environ: Mapping[str, str]) -> Invocation:
    """Read and check the FINSIGHT_* variables (everything that can be checked before loading the config)."""
    env = _optional(environ, "FINSIGHT_ENV")
    if env is None:
        raise UsageError("FINSIGHT_ENV", f"not set; use one of {', '.join(ENVIRONMENTS)}")
    if env not in ENVIRONMENTS:
        raise UsageError("FINSIGHT_ENV", f"unknown environment {env!r}; use one of {', '.join(ENVIRONMENTS)}")
    source = _optional(environ, "FINSIGHT_SOURCE")
    if source is None:
        raise UsageError("FINSIGHT_SOURCE", "not set; name a source of environments/base.yaml (e.g. payments)")
    if not _SOURCE_NAME.match(source):
        raise UsageError("FINSIGHT_SOURCE", f"{source!r} is not a source name (lower_snake_case)")
    mode = parse_mode(_optional(environ, "FINSIGHT_MODE") or "incremental")
    tables = parse_tables(_optional(environ, "FINSIGHT_TABLES"))
    names = ("FINSIGHT_BACKFILL_START", "FINSIGHT_BACKFILL_END", "FINSIGHT_BACKFILL_ID")
    raw_start, raw_end, backfill_id = (_optional(environ, n) for n in names)
    if mode != "backfill":
        for name, raw in zip(names, (raw_start, raw_end, backfill_id), strict=True):
            if raw is not None:  # silently ignoring a window would run an incremental read the caller did not want
                raise UsageError(name, f"only applies with FINSIGHT_MODE=backfill (mode is {mode})")
        return Invocation(env, source, mode, tables=tables, run_id=_optional(environ, "FINSIGHT_RUN_ID"))
    start = parse_when(raw_start, names[0]) if raw_start else None
    end = parse_when(raw_end, names[1]) if raw_end else None
    check_window(start, end, names[:2])
    if backfill_id is not None:
        if start is None:  # a derived window would checkpoint a different chunk every day
            raise UsageError(names[2], "needs FINSIGHT_BACKFILL_START and FINSIGHT_BACKFILL_END (the chunk's window)")
        try:
            check_backfill_id(backfill_id)
        except BackfillError as exc:
            raise UsageError(names[2], str(exc).removeprefix(f"{names[2]}: ")) from None
    raw_chunk = _optional(environ, "FINSIGHT_BACKFILL_CHUNK_DAYS")
    chunk_days = parse_chunk_days(raw_chunk) if raw_chunk else None
    return Invocation(
        env, source, mode, start, end, chunk_days, tables, backfill_id, _optional(environ, "FINSIGHT_RUN_ID")
    )


def parse_tables(text: str | None, variable: str = "FINSIGHT_TABLES") -> tuple[str, ...] | None:
    """`payments, refunds` -> ("payments", "refunds"); names are checked against the source once config loads."""
    if text is None:
        return None
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    bad = [n for n in names if not _SOURCE_NAME.match(n)]
    if not names or bad:
        raise UsageError(variable, f"{text!r} is not a comma list of table names (e.g. payments,refunds)")
    return names


def check_tables(
    env: Environment, source: str, tables: tuple[str, ...] | None, variable: str = "FINSIGHT_TABLES"
) -> None:
    known = env.api_sources[source].streams if source in env.api_sources else env.postgres_sources[source].tables
    unknown = [t for t in tables or () if t not in known]
    if unknown:
        raise UsageError(variable, f"{', '.join(unknown)} not table(s) of {source}; tables: {', '.join(known)}")


def resolve_window(inv: Invocation, default_chunk_days: int, now: datetime) -> tuple[datetime, datetime] | None:
    """The (start, end) passed to extract_source: explicit, or derived from the chunk size; None unless backfill."""
    if inv.mode != "backfill":
        return None
    if inv.start is not None and inv.end is not None:
        return inv.start, inv.end
    return derive_window(inv.chunk_days or default_chunk_days, now)


def check_source(env: Environment, source: str, variable: str = "FINSIGHT_SOURCE") -> None:
    if source in env.postgres_sources or source in env.api_sources:
        return
    known = ", ".join(env.postgres_sources)
    apis = ", ".join(env.api_sources)
    raise UsageError(
        variable, f"unknown source {source!r} in {env.name}; PostgreSQL sources: {known}; API sources: {apis}"
    )


def extract_any_source(
    env: Environment,
    source: str,
    mode: str = "incremental",
    tables: list[str] | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> Any:
    """A PostgreSQL or an API source, by name: both return a connectors.run.SourceRun."""
    if source in env.api_sources:
        from connectors.apis.run import extract_api_source

        return extract_api_source(env, source, mode, tables=tables, window=window)
    from connectors.run import extract_source

    return extract_source(env, source, mode, tables=tables, window=window)


def load_env(name: str, variable: str = "FINSIGHT_ENV") -> Environment:
    try:
        return load_environment(name)
    except ConfigError as exc:
        raise UsageError(variable, f"environments/{name}.yaml does not load:\n{exc}") from None


# -- logging -------------------------------------------------------------------------------------------------------
class JsonFormatter(logging.Formatter):
    """One JSON object per line; structured fields travel in `extra={"fields": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["traceback"] = self.formatException(record.exc_info)  # code lines only, never local values
        return json.dumps(payload, default=str)


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(IdsFilter())  # run_id, source, table, batch_id on every line, whichever logger wrote it
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "airbyte"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def event(level: int, msg: str, exc_info: bool = False, **fields: Any) -> None:
    log.log(level, msg, exc_info=exc_info, extra={"fields": {"event": msg, **fields}})


def drop_injected_secrets(environ: MutableMapping[str, str]) -> None:
    for name in INJECTED_SECRETS:
        environ.pop(name, None)


# -- run -----------------------------------------------------------------------------------------------------------
def extract(env: Environment, inv: Invocation, window: tuple[datetime, datetime] | None) -> int:
    run_id = inv.run_id or f"{inv.mode}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.urandom(4).hex()}"
    with bind(run_id=run_id, source=inv.source):
        return _extract(env, inv, window)


def _extract(env: Environment, inv: Invocation, window: tuple[datetime, datetime] | None) -> int:
    from connectors.run import ExtractionError  # airbyte-cdk import is slow: not needed for --help

    configure_logging()  # importing airbyte-cdk installs its own root handler (Airbyte protocol JSON): ours wins
    started = time.monotonic()
    fields: dict[str, Any] = {"env": env.name, "source": inv.source, "mode": inv.mode}
    if window:
        fields |= {"window_start": window[0].isoformat(), "window_end": window[1].isoformat()}
    event(logging.INFO, "extraction_started", **fields)
    if inv.backfill_id and window:
        return extract_chunks(env, inv, window, fields, started)
    try:
        result = extract_any_source(
            env, inv.source, inv.mode, tables=list(inv.tables) if inv.tables else None, window=window
        )
    except ExtractionError as exc:
        seconds = round(time.monotonic() - started, 1)
        event(logging.ERROR, "extraction_failed", **fields, error=str(exc), seconds=seconds)
        return EXIT_FAILED
    except Exception as exc:
        # anything else (Secrets Manager, KMS, S3 access): nothing was committed past a failure, watermarks hold
        seconds = round(time.monotonic() - started, 1)
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        error = f"{type(exc).__name__}: {first_line}"
        event(logging.ERROR, "extraction_failed", exc_info=True, **fields, error=error, seconds=seconds)
        return EXIT_FAILED
    for batch in result.batches:
        event(
            logging.INFO,
            "batch_landed" if batch.manifest_key else "table_unchanged",  # no rows, no manifest: nothing to load
            **fields,
            table=batch.table,
            batch_id=batch.batch_id,
            rows=batch.rows,
            files=len(batch.files),
            pk_rows=batch.pk_rows,
            manifest=batch.manifest_key,
        )
    event(
        logging.INFO,
        "extraction_finished",
        **fields,
        tables=len(result.batches),
        rows=result.rows,
        seconds=round(result.seconds, 1),
    )
    return EXIT_OK


def extract_chunks(
    env: Environment, inv: Invocation, window: tuple[datetime, datetime], fields: dict[str, Any], started: float
) -> int:
    """A window of a backfill: one checkpointed chunk per table; chunks finished by an earlier launch are skipped."""
    assert inv.backfill_id is not None
    fields = {**fields, "backfill_id": inv.backfill_id}
    tables = inv.tables or tuple(env.postgres_sources[inv.source].tables)
    try:
        outcomes = run_window(env, inv.source, inv.backfill_id, tables, window)
    except Exception as exc:  # the checkpoint store itself (S3, KMS): nothing was marked done past the failure
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        error = f"{type(exc).__name__}: {first_line}"
        seconds = round(time.monotonic() - started, 1)
        event(logging.ERROR, "extraction_failed", exc_info=True, **fields, error=error, seconds=seconds)
        return EXIT_FAILED
    for o in outcomes:
        level = logging.ERROR if o.status == "failed" else logging.INFO
        event(level, f"chunk_{o.status}", **fields, table=f"{inv.source}.{o.chunk.table}", rows=o.rows,
              batch_ids=o.batch_ids, seconds=round(o.seconds, 1), error=o.error)  # fmt: skip
    failed = [o for o in outcomes if o.status == "failed"]
    event(
        logging.ERROR if failed else logging.INFO,
        "extraction_failed" if failed else "extraction_finished",
        **fields,
        tables=len(outcomes),
        chunks_skipped=sum(o.status == "skipped" for o in outcomes),
        chunks_failed=len(failed),
        rows=sum(o.rows for o in outcomes),
        seconds=round(time.monotonic() - started, 1),
    )
    return EXIT_FAILED if failed else EXIT_OK


def main(argv: Sequence[str] | None = None, environ: MutableMapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    drop_injected_secrets(environ)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return EXIT_OK
    if argv and argv[0] in PROTOCOL_VERBS:  # the Airbyte protocol on stdout; no verb: the ECS sync, unchanged
        from connectors.protocol import main as protocol_main

        return protocol_main(argv, environ)
    configure_logging()
    try:
        if argv:
            raise UsageError(
                "argv", f"takes no arguments (got {' '.join(argv)!r}); configure with FINSIGHT_* variables"
            )
        inv = read_invocation(environ)
        env = load_env(inv.env)
        check_source(env, inv.source)
        check_tables(env, inv.source, inv.tables)
        if inv.backfill_id and inv.source in env.api_sources:
            raise UsageError(
                "FINSIGHT_BACKFILL_ID",
                f"{inv.source!r} is an API source: backfill it with FINSIGHT_MODE=backfill and a window, no chunk id",
            )
        window = resolve_window(inv, env.schedule.backfill_chunk_days, datetime.now(UTC))
    except UsageError as exc:
        event(logging.ERROR, "usage_error", variable=exc.variable, error=str(exc))
        return EXIT_USAGE
    return extract(env, inv, window)


if __name__ == "__main__":
    sys.exit(main())
