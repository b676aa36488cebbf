"""`finsight extract`: run one source's connector by hand (a rerun, a backfill, a single table).

The same code path as the ECS task (`python -m connectors`), with flags instead of FINSIGHT_* variables. It needs
what the task has: the environment's AWS role (S3, KMS, Secrets Manager) and network reach to the source database.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer

from connectors.__main__ import (
    Invocation,
    UsageError,
    check_source,
    check_window,
    parse_mode,
    parse_when,
    resolve_window,
)
from finsight.cli.common import EnvOption, environment
from finsight.config import Environment
from finsight.secrets import SecretNotFound


def _usage(exc: UsageError) -> typer.Exit:
    typer.secho(f"usage error: {exc}", fg="red", err=True)
    return typer.Exit(2)


def _tables(env: Environment, source: str, requested: list[str]) -> list[str] | None:
    """`payments` or `payments.payments` -> table names of the source; None = every table."""
    if not requested:
        return None
    known = env.api_sources[source].streams if source in env.api_sources else env.postgres_sources[source].tables
    names = []
    for item in requested:
        name = item.split(".", 1)[1] if item.startswith(f"{source}.") else item
        if name not in known:
            raise UsageError("--table", f"{item!r} is not a table of {source}; tables: {', '.join(known)}")
        names.append(name)
    return names


def extract(
    env: str = EnvOption,
    source: str = typer.Option(
        ..., "--source", "-s", help="A source of the environment: PostgreSQL (e.g. payments) or API (e.g. stripe)."
    ),
    mode: str = typer.Option("incremental", "--mode", "-m", help="incremental (watermarked), full, or backfill."),
    start: str | None = typer.Option(None, "--start", help="Backfill window start, ISO date/datetime (UTC)."),
    end: str | None = typer.Option(None, "--end", help="Backfill window end, ISO date/datetime (UTC)."),
    table: list[str] | None = typer.Option(None, "--table", "-t", help="Only this table / API stream (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (one object: source, batches)."),
) -> None:
    """Extract one source into the landing zone; print batch id, rows and files per table.

    Backfill without --start/--end re-reads the last schedule.backfill_chunk_days whole days (like the daily task).
    Exit 1 when any table failed (its watermark is kept: rerunning replays the window), 2 on a usage error.
    """
    cfg = environment(env)
    try:
        chosen = parse_mode(mode, "--mode")
        begin = parse_when(start, "--start") if start else None
        finish = parse_when(end, "--end") if end else None
        if chosen != "backfill" and (begin or finish):
            raise UsageError("--start" if begin else "--end", f"only applies with --mode backfill (mode is {chosen})")
        check_window(begin, finish, ("--start", "--end"))
        check_source(cfg, source, "--source")
        tables = _tables(cfg, source, table or [])
    except UsageError as exc:
        raise _usage(exc) from None
    from connectors.__main__ import extract_any_source
    from connectors.run import ExtractionError  # airbyte-cdk import is slow: after the checks

    inv = Invocation(cfg.name, source, chosen, begin, finish)
    window = resolve_window(inv, cfg.schedule.backfill_chunk_days, datetime.now(UTC))
    if window and not as_json:
        typer.echo(f"{source} {chosen} window {window[0].isoformat()} .. {window[1].isoformat()} (UTC)")
    try:
        result = extract_any_source(cfg, source, chosen, tables=tables, window=window)
    except (ExtractionError, SecretNotFound) as exc:
        typer.secho(f"extraction failed: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    if as_json:
        batches = [{"table": b.table, "batch_id": b.batch_id, "rows": b.rows, "files": len(b.files), "bytes": b.bytes,
                    "landed": bool(b.manifest_key)} for b in result.batches]  # fmt: skip
        span = [str(w) for w in window] if window else None
        out = {"source": source, "mode": chosen, "rows": result.rows, "seconds": result.seconds, "window": span}
        typer.echo(json.dumps({**out, "batches": batches}))
        return
    for batch in result.batches:
        state = "landed" if batch.manifest_key else "no rows"
        typer.echo(f"  {batch.table:<32} batch={batch.batch_id} rows={batch.rows} files={len(batch.files)} {state}")
    typer.echo(f"{source}: {result.rows} rows in {len(result.batches)} tables, {result.seconds:.1f}s")


def register(app: typer.Typer) -> None:
    app.command("extract")(extract)
