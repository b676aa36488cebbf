"""`finsight local ...`: the embedded local stack (PostgreSQL, moto, fakesnow, mock payment APIs)."""

from __future__ import annotations

import typer

from finsight.cli.common import environment, exits_cleanly
from finsight.local.process import ServiceError
from finsight.local.stack import LocalStack

local_app = typer.Typer(help="Run the whole platform on this machine (127.0.0.1 only).", no_args_is_help=True)


def stack() -> LocalStack:
    return LocalStack(environment("local"))


def _fail(exc: Exception) -> None:
    typer.secho(f"local stack error: {exc}", fg="red", err=True)
    raise typer.Exit(1)


@local_app.command("up")
def up(seed: bool = typer.Option(True, help="Create and seed the synthetic source databases.")) -> None:
    """Start every service not yet running (idempotent)."""
    with exits_cleanly():
        try:
            started = stack().up(seed_sources=seed)
        except ServiceError as exc:
            _fail(exc)
    typer.echo(f"started: {', '.join(started)}" if started else "already running")
    status(as_json=False)


@local_app.command("down")
def down() -> None:
    """Stop every service (idempotent); no process is left behind."""
    try:
        stopped = stack().down()
    except ServiceError as exc:
        _fail(exc)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@local_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show each service with its port and pid; exit 1 if any is down."""
    rows = stack().status()
    if as_json:
        import json

        typer.echo(json.dumps([{"name": r.name, "port": r.port, "running": r.running, "pid": r.pid} for r in rows]))
    for row in [] if as_json else rows:
        state = typer.style("up", fg="green") if row.running else typer.style("down", fg="red")
        typer.echo(f"{row.name:<10} 127.0.0.1:{row.port:<6} {state:<14} pid={row.pid or '-'}")
    if not all(r.running for r in rows):
        raise typer.Exit(1)


@local_app.command("mutate")
def mutate(steps: int = typer.Option(1, min=1, help="Simulated hours of source activity.")) -> None:
    """Simulate hours passing in the source databases (inserts, updates, hard deletes)."""
    st = stack()
    for step in range(steps):
        summary = st.mutate(step)
        typer.echo(f"step {step}: +{summary.inserted} ~{summary.updated} -{summary.deleted}")


@local_app.command("verify")
def verify() -> None:
    """Reconcile CURATED with the source databases (keys, cursors) and the mock APIs (records, no duplicate keys)."""
    from finsight.local.verify import reconcile, reconcile_apis

    st = stack()
    diffs = reconcile(st.env, st) + reconcile_apis(st.env)
    for d in diffs:
        mark = "ok " if d.equal else "DIFF"
        typer.echo(f"{mark} {d.table:<36} source={d.source_rows:<7} curated={d.curated_rows:<7} "
                   f"missing={d.missing} extra={d.extra}")  # fmt: skip
    if not all(d.equal for d in diffs):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(local_app, name="local")
