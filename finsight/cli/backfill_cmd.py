"""`finsight backfill`: re-extract a cursor window in resumable chunks; `finsight backfill status` follows them.

  finsight backfill --env E --source S [--table T] --start D --end D [--chunk 1d] [--parallel N] [--json]
  finsight backfill --env prod --source S ... --print-ecs-overrides     # one RunTask overrides JSON per window
  finsight backfill status --env E [--source S] [--json]

Chunks run here (threads) through the same extract_source as the ECS task; checkpoints live in S3, so rerunning
the same command after a crash or a failure runs only the unfinished chunks. On `local` the landed batches are then
loaded and the run ends with OPS.BACKFILL(table, start, end) per table (the procedure Snowflake runs): the window
is merged into CURATED and the mart dates it touched are rebuilt.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from connectors.backfill import (
    DEFAULT_CHUNK,
    BackfillError,
    BackfillPlan,
    BackfillRun,
    BackfillStatus,
    CheckpointStore,
    ChunkOutcome,
    backfill_status,
    ecs_overrides,
    list_backfills,
    make_plan,
    run_backfill,
)
from finsight.cli.common import EnvOption, environment, fail, platform_errors, require_local_stack
from finsight.config import Environment

app = typer.Typer()  # help: the callback docstring below


class RowRate(ProgressColumn):
    """Rows landed per second since the run started."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.fields.get("rows", 0) / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.0f} rows/s", style="progress.data.speed")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TextColumn("{task.fields[rows]:,} rows"),
        RowRate(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


def _usage(exc: BackfillError) -> typer.Exit:
    return fail(f"usage error: {exc}", 2)


def _print_run(run: BackfillRun, load: Any | None, local: bool) -> None:
    plan = run.plan
    scope = f"{plan.source}.{plan.table}" if plan.table else f"{plan.source} (all {len(plan.tables)} tables)"
    typer.echo(f"backfill {plan.backfill_id}")
    window = f"{plan.start.isoformat()} .. {plan.end.isoformat()} (UTC)"
    typer.echo(f"  scope    : {scope}, {window}, chunk {plan.to_json()['chunk']}")
    done = sum(o.status == "done" for o in run.outcomes)
    typer.echo(f"  chunks   : {done} run now, {run.skipped} already finished (skipped), {len(run.failed)} failed")
    batches = sum(len(o.batch_ids) for o in run.outcomes)
    typer.echo(f"  rows     : {run.rows} in {batches} batches (mode backfill; the hourly watermark did not move)")
    if load is not None:
        pipe = load.pipe
        typer.echo(f"  loaded   : {pipe.rows_loaded} rows in {pipe.files_loaded} files into RAW (manifests included)")
        tables = ", ".join(r["table"] for r in load.results)
        typer.echo(f"  merged   : {load.merged_rows()} rows of the window into CURATED by OPS.BACKFILL ({tables})")
        built = [f"{m['mart']} ({m['mode']}, {m['partitions']} dates)" for m in load.marts()]
        typer.echo(f"  marts    : {', '.join(built) or 'none reads these tables'}")
        for err in load.errors:
            typer.secho(f"  OPS.BACKFILL FAILED: {err}", fg="red", err=True)
        for err in load.pipe.errors:
            typer.secho(f"  load error: {err}", fg="red", err=True)
    elif not local and run.rows:
        typer.echo("  merge    : Snowpipe loads these batches as they land; the next hourly graph run merges them")
    typer.echo(f"  seconds  : {run.seconds:.1f}")
    for o in run.failed:
        typer.secho(f"  failed chunk: {o.chunk.label(plan.source)}: {o.error}", fg="red", err=True)
    if run.failed:
        typer.secho(f"rerun the same command to retry the {len(run.failed)} unfinished chunk(s)", fg="red", err=True)


def _run(cfg: Environment, plan: BackfillPlan, parallel: int, as_json: bool) -> None:
    console = Console(stderr=True)
    progress = _progress(console)
    task_id = progress.add_task(f"{plan.source} backfill", total=None, rows=0, visible=not as_json)

    def on_start(pending: int, skipped: int) -> None:
        if skipped and not as_json:
            console.print(f"skipping {skipped} chunk(s) finished by an earlier run of {plan.backfill_id}")
        progress.update(task_id, total=pending)
        if pending and not as_json:
            progress.start()

    def on_chunk(outcome: ChunkOutcome) -> None:
        rows = progress.tasks[0].fields["rows"] + outcome.rows
        progress.update(task_id, advance=1, rows=rows)
        if outcome.status == "failed":
            progress.console.print(f"[red]chunk failed: {outcome.chunk.label(plan.source)}: {outcome.error}")

    try:
        run = run_backfill(cfg, plan, parallel, on_start=on_start, on_chunk=on_chunk)
    finally:
        progress.stop()
    load = None
    if cfg.is_local and run.tables_landed():
        from finsight.local.backfill import load_and_merge

        tables = [cfg.postgres_sources[plan.source].tables[t] for t in run.tables_landed()]
        load = load_and_merge(cfg, tables, (plan.start, plan.end))
    if as_json:
        summary = run.to_json()
        if load is not None:
            summary["load"] = {
                "files": load.pipe.files_loaded,
                "rows": load.pipe.rows_loaded,
                "errors": load.pipe.errors,
            }
            summary["merge"] = {  # what CALL OPS.BACKFILL(table, start, end) did, per table
                "rows": load.merged_rows(),
                "backfills": load.results,
                "errors": load.errors,
            }
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_run(run, load, cfg.is_local)
    if not run.ok or (load is not None and not load.ok):
        raise typer.Exit(1)


@app.callback(invoke_without_command=True)
def backfill(
    ctx: typer.Context,
    env: str = EnvOption,
    source: str | None = typer.Option(None, "--source", "-s", help="A PostgreSQL source, e.g. payments."),
    table: str | None = typer.Option(None, "--table", "-t", help="Only this table (default: every table)."),
    start: str | None = typer.Option(None, "--start", help="Window start (inclusive), ISO date/datetime, UTC."),
    end: str | None = typer.Option(None, "--end", help="Window end (exclusive), ISO date/datetime, UTC."),
    chunk: str = typer.Option(DEFAULT_CHUNK, "--chunk", help="Chunk length: 6h, 1d, 7d ..."),
    parallel: int = typer.Option(1, "--parallel", "-p", min=1, max=64, help="Chunks extracted at once (threads)."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary instead of progress."),
    print_ecs_overrides: bool = typer.Option(
        False, "--print-ecs-overrides", help="Record the plan, print one ECS RunTask overrides JSON per window."
    ),
) -> None:
    """Re-extract [--start, --end) of a source in chunks (at most 2 years), resumable: a rerun skips finished chunks.

    Batches land with mode 'backfill' and their own batch ids; the hourly watermark never moves. Exit 1 when a chunk
    failed (rerun to retry it), 2 on a usage error.
    """
    if ctx.invoked_subcommand is not None:
        return
    cfg = environment(env)
    for option, value in (("--source", source), ("--start", start), ("--end", end)):
        if value is None:
            raise fail(f"usage error: {option} is required (finsight backfill --help)", 2)
    assert source is not None and start is not None and end is not None
    try:
        plan = make_plan(cfg, source, table, start, end, chunk)
    except BackfillError as exc:
        raise _usage(exc) from None
    with platform_errors(cfg):
        if print_ecs_overrides:
            # recorded so `finsight backfill status` follows the chunks the ECS tasks checkpoint
            CheckpointStore(cfg, plan.source, plan.backfill_id).save_plan(plan)
            for overrides in ecs_overrides(cfg, plan):
                typer.echo(json.dumps(overrides, separators=(",", ":")))
            return
        require_local_stack(cfg)
        _run(cfg, plan, parallel, as_json)


def _print_status(status: BackfillStatus) -> None:
    plan = status.plan or {}
    total = status.total if status.total is not None else "?"
    window = f"{plan.get('start', '?')} .. {plan.get('end', '?')}" if plan else "(no plan recorded)"
    typer.echo(f"{status.source:<14} {status.backfill_id:<60} {status.state:<10} "
               f"{status.done}/{total} chunks  {status.rows} rows  {window}")  # fmt: skip
    for record in status.failed:
        typer.echo(f"    failed  {record['table']} [{record['start']} .. {record['end']}) at {record['at']}: "
                   f"{record.get('error')}")  # fmt: skip
    for record in status.running:
        typer.echo(f"    started {record['table']} [{record['start']} .. {record['end']}) at {record['at']} "
                   f"by {record.get('host')} pid {record.get('pid')} (running, or killed)")  # fmt: skip


@app.command("status")
def status(
    env: str = EnvOption,
    source: str | None = typer.Option(None, "--source", "-s", help="Only this source."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List backfills and their chunk progress, read from the checkpoints in S3."""
    cfg = environment(env)
    if source is not None and source not in cfg.postgres_sources:
        raise fail(f"usage error: --source: unknown source {source!r}; sources: {', '.join(cfg.postgres_sources)}", 2)
    with platform_errors(cfg):
        require_local_stack(cfg)
        statuses = [
            backfill_status(cfg, src, backfill_id)
            for src in ([source] if source else list(cfg.postgres_sources))
            for backfill_id in list_backfills(cfg, src)
        ]
    if as_json:
        typer.echo(json.dumps([s.to_json() for s in statuses], indent=2, default=str))
        return
    if not statuses:
        typer.echo("no backfills recorded" + (f" for {source}" if source else ""))
        return
    for s in statuses:
        _print_status(s)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="backfill")
