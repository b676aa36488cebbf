"""`finsight load | batches | quarantine | reconcile`: what landed, what loaded, what is stuck, and does CURATED match.

`load` and `quarantine release` drive the local Snowpipe player (in AWS, Snowpipe loads on its own and a released
file triggers it again); `batches` and `reconcile` read S3 and the warehouse of any environment.
"""

from __future__ import annotations

import json

import typer

from finsight import warehouse
from finsight.cli.common import EnvOption, environment, exits_cleanly, fail, platform_errors, require_local_stack

batches_app = typer.Typer(help="Landed batches: landed / loaded / merged / waiting, and why.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Files a pipe could not load (OPS.LOAD_ERRORS).", no_args_is_help=True)
marts_app = typer.Typer(help="The marts catalog (snowpark/marts/<mart>/).", no_args_is_help=True)


@marts_app.command("list")
def marts_list(env: str = EnvOption) -> None:
    """Every mart: grain, owner, SLA, upstreams (checks that required upstreams are catalog tables)."""
    from finsight import marts

    cfg = environment(env)
    with exits_cleanly():
        marts.check_upstreams(cfg)
        for m in marts.marts():
            ups = ", ".join(u.table + ("?" if u.optional else "") for u in m.upstreams)
            typer.echo(f"{m.name:<28} {m.grain:<52} {m.owner:<30} {m.freshness_sla_minutes:>3} min  {ups}")


@marts_app.command("docs")
def marts_docs(
    env: str = EnvOption,
    write: bool = typer.Option(False, "--write", help="Write docs/marts.md instead of printing it."),
) -> None:
    """docs/marts.md generated from the marts' metadata."""
    from finsight import marts
    from finsight.config import repo_root

    cfg = environment(env)
    with exits_cleanly():
        text = marts.render_docs(cfg)
    if write:
        (repo_root() / "docs" / "marts.md").write_text(text)
        typer.echo("wrote docs/marts.md")
    else:
        typer.echo(text, nl=False)


def load(
    env: str = EnvOption,
    trigger: bool = typer.Option(True, "--trigger/--no-trigger", help="Run the graph when batches landed."),
) -> None:
    """Drain the landing queue through the pipes (local Snowpipe); then, as the triggered root does, run the graph."""
    cfg = environment(env)
    if not cfg.is_local:
        raise fail("in AWS Snowpipe loads on its own (auto-ingest); `finsight batches list` shows what it loaded", 2)
    require_local_stack(cfg)
    from finsight.local.graph import on_landed
    from finsight.local.snowpipe import load_landed

    with platform_errors(cfg):
        if trigger:
            pipe, run = on_landed(cfg)
        else:
            pipe, run = load_landed(cfg), None
    typer.echo(f"loaded {pipe.files_loaded} file(s), {pipe.rows_loaded} row(s); {pipe.files_skipped} already loaded")
    for key in pipe.quarantined:
        typer.secho(f"  quarantined: {key}", fg="red", err=True)
    for key in pipe.retry:
        typer.secho(f"  left queued for retry: {key}", fg="yellow", err=True)
    if run is not None:
        typer.echo(f"graph run {run.run_id}: {run.state}")
    elif trigger:
        typer.echo("no new batch landed: the graph was not triggered")
    if pipe.errors or (run is not None and run.state != "SUCCEEDED"):
        raise typer.Exit(1)


@batches_app.command("list")
def batches_list(
    env: str = EnvOption,
    limit: int = typer.Option(30, "--limit", "-n", min=1),
    state: str | None = typer.Option(None, "--state", help="Only landed, loaded, merged or waiting."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Newest batches first, with their state and, when not merged, why."""
    from finsight.batches import statuses

    cfg = environment(env)
    require_local_stack(cfg)
    with platform_errors(cfg):
        rows = [s for s in statuses(cfg) if state is None or s.state == state][:limit]
    if as_json:
        typer.echo(json.dumps([s.as_dict() for s in rows], indent=1, default=str))
        return
    typer.echo(f"{'BATCH_ID':<28} {'TABLE':<32} {'STATE':<8} {'ROWS':>7}  WHY")
    for s in rows:
        line = f"{s.batch_id:<28} {s.table:<32} {s.state:<8} {s.rows if s.rows is not None else '-':>7}  {s.why}"
        typer.echo(typer.style(line.rstrip(), fg="red") if s.state == "waiting" else line.rstrip())


@batches_app.command("show")
def batches_show(
    batch_id: str = typer.Argument(..., help="A batch id (see `batches list`)."), env: str = EnvOption
) -> None:
    """Everything about one batch: manifest, files, load errors, merge."""
    from finsight.batches import statuses

    cfg = environment(env)
    require_local_stack(cfg)
    with platform_errors(cfg):
        found = statuses(cfg, batch_id=batch_id)
    if not found:
        raise fail(f"batch {batch_id!r} not found in OPS.LANDED_BATCHES nor among the manifests in S3", 2)
    typer.echo(json.dumps(found[0].as_dict(), indent=1, default=str))


@quarantine_app.command("list")
def quarantine_list(
    env: str = EnvOption,
    all_: bool = typer.Option(False, "--all", help="Released files too."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Files in quarantine: pipe, original key, error."""
    from finsight.local.snowpipe import load_errors

    cfg = environment(env)
    require_local_stack(cfg)
    with platform_errors(cfg), warehouse.connect(cfg) as conn:
        errors = load_errors(cfg, conn.cursor(), include_released=all_)
    if as_json:
        typer.echo(json.dumps([e.__dict__ for e in errors], indent=1, default=str))
        return
    if not errors:
        typer.echo("quarantine is empty")
    for e in errors:
        released = f" (released {e.released_at})" if e.released_at else ""
        typer.echo(f"{str(e.failed_at)[:19]}  {e.pipe}  {e.key}{released}\n    {e.error}")


@quarantine_app.command("release")
def quarantine_release(
    key: str = typer.Argument(..., help="The original (or quarantine) key of the file."), env: str = EnvOption
) -> None:
    """Put a fixed (or wrongly rejected) file back: its pipe loads it on the next `finsight load`."""
    from finsight.local.snowpipe import release

    cfg = environment(env)
    if not cfg.is_local:
        raise fail("release runs on `local`; in AWS copy the object back under its key (the S3 event re-triggers)", 2)
    require_local_stack(cfg)
    with platform_errors(cfg), warehouse.connect(cfg) as conn:
        try:
            original = release(cfg, conn.cursor(), key)
        except KeyError as exc:
            raise fail(str(exc.args[0]), 2) from None
    typer.echo(f"released {original}: `finsight load --env {cfg.name}` loads it")


def reconcile(
    env: str = EnvOption,
    table: list[str] | None = typer.Option(None, "--table", "-t", help="Only <source>.<table> (repeatable)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Compare every source table with CURATED by primary key and a hash of all columns; exit 1 on a difference."""
    from finsight.reconcile import reconcile as run

    cfg = environment(env)
    try:
        tables = [cfg.table(t) for t in table or []] or None
    except KeyError as exc:
        raise fail(str(exc.args[0]), 2) from None
    require_local_stack(cfg)
    with platform_errors(cfg):
        results = run(cfg, tables)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results], indent=1))
    else:
        typer.echo(f"{'TABLE':<32} {'SOURCE':>8} {'CURATED':>8} {'MISSING':>8} {'EXTRA':>6} {'DIFFERENT':>9}")
        for r in results:
            line = f"{r.table:<32} {r.source_rows:>8} {r.curated_rows:>8} {r.missing:>8} {r.extra:>6} {r.different:>9}"
            typer.echo(line if r.equal else typer.style(line, fg="red"))
    if not all(r.equal for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("load")(load)
    app.add_typer(batches_app, name="batches")
    app.add_typer(quarantine_app, name="quarantine")
    app.command("reconcile")(reconcile)
    app.add_typer(marts_app, name="marts")
