"""`finsight run`: the main job, one full hourly cycle (extract -> load -> merge), with a short summary."""

from __future__ import annotations

import json
from typing import Any

import typer

from finsight.cli.common import EnvOption, environment
from finsight.config import Environment
from finsight.local.cycle import CycleSummary, hourly_cycle
from finsight.local.stack import LocalStack
from tasks.runner import DagRun


def print_summary(summary: CycleSummary, cfg: Environment | None = None) -> None:
    pipe, dag = summary.pipe, summary.dag
    typer.echo(f"run {summary.run_id}")
    typer.echo(f"  migrations applied : {summary.migrations_applied}")
    typer.echo(f"  rows extracted     : {summary.rows_extracted} from {len(summary.sources)} sources")
    if cfg is not None:
        apis = [s for s in summary.sources if s.source in cfg.api_sources]
        typer.echo(
            f"    of which APIs    : {sum(s.rows for s in apis)} from "
            + (", ".join(f"{s.source} {s.rows}" for s in apis) or "none")
        )
    if pipe:
        typer.echo(f"  rows loaded (RAW)  : {pipe.rows_loaded} in {pipe.files_loaded} files, incl. PK snapshots and "
                   f"manifests ({pipe.files_skipped} already loaded)")  # fmt: skip
    if dag:
        failed = [t.name for t in dag.tasks if t.state != "SUCCEEDED"]
        typer.echo(f"  rows merged        : {dag.merged_rows()} (deleted {dag.deleted_rows()})")
        typer.echo(f"  tasks              : {len(dag.tasks)} run, {len(failed)} failed {' '.join(failed)}")
        latency = dag.latency_seconds()
        typer.echo(f"  state              : {dag.state}" + ("" if latency is None else f" (source snapshot -> marts "
                   f"published in {latency:.0f}s)"))  # fmt: skip
    for line in quality_lines(dag):
        typer.secho(line, fg="red" if "FAILED" in line else "yellow", err=True)
    typer.echo("  seconds            : " + ", ".join(f"{k} {v:.1f}" for k, v in summary.seconds.items()))
    for source in summary.sources:
        for batch in source.batches:
            for change in batch.schema_changes:
                typer.secho(f"  schema drift: {batch.table}: {change}", fg="yellow", err=True)
    for err in summary.extract_errors:
        typer.secho(f"  extract error: {err}", fg="red", err=True)
    for err in pipe.errors if pipe else []:
        typer.secho(f"  load error: {err}", fg="red", err=True)


def summary_json(summary: CycleSummary) -> dict[str, Any]:
    pipe, dag = summary.pipe, summary.dag
    return {
        "run_id": summary.run_id,
        "ok": summary.ok,
        "state": dag.state if dag else None,
        "migrations_applied": summary.migrations_applied,
        "rows_extracted": summary.rows_extracted,
        "sources": {s.source: s.rows for s in summary.sources},
        "rows_loaded": pipe.rows_loaded if pipe else None,
        "files_loaded": pipe.files_loaded if pipe else None,
        "rows_merged": dag.merged_rows() if dag else None,
        "tasks": {t.name: t.state for t in dag.tasks} if dag else {},
        "latency_seconds": dag.latency_seconds() if dag else None,
        "seconds": summary.seconds,
        "extract_errors": summary.extract_errors,
        "load_errors": list(pipe.errors) if pipe else [],
    }


def quality_lines(dag: DagRun | None) -> list[str]:
    """Quality failures (CHECK_ tasks that failed: their marts were not published) and warnings of the run."""
    out = []
    for t in dag.tasks if dag else []:
        if not t.name.startswith("CHECK_"):
            continue
        if t.state == "FAILED":
            out.append(f"  quality FAILED     : {t.error} (`finsight dq explain <check id>`)")
        for warning in t.output.get("warnings", []):
            out.append(f"  quality warning    : {warning}")
    return out


def run(
    env: str = EnvOption,
    mutate: int = typer.Option(0, min=0, help="Local only: simulate N hours of source changes first."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable summary (progress goes to stderr)."),
) -> None:
    """Run one full hourly cycle. On `local` the stack is brought up first if needed."""
    cfg = environment(env)
    if not cfg.is_local:
        typer.secho("in AWS the cycle runs on its schedules (EventBridge + Snowflake Tasks); "
                    "use `finsight dag deploy` / `finsight extract`", fg="red", err=True)  # fmt: skip
        raise typer.Exit(2)
    stack = LocalStack(cfg)
    if not stack.running():
        stack.up()
    for step in range(mutate):
        stack.mutate(step)
    from finsight.cli.progress import stages
    from finsight.local.cycle import STAGES

    with stages(f"hourly cycle ({cfg.name})", STAGES) as progress:
        summary = hourly_cycle(cfg, progress=progress)
    if as_json:
        typer.echo(json.dumps(summary_json(summary)))
    else:
        print_summary(summary, cfg)
    publish_ops_signals(cfg, summary)
    if not summary.ok:
        raise typer.Exit(1)


def publish_ops_signals(cfg: Environment, summary: CycleSummary) -> None:
    """Metrics of the cycle to the local sink (EMF) and alerts to the teams' topics (FIRING / RESOLVED)."""
    from finsight import warehouse
    from finsight.ops import alerts, telemetry

    telemetry.record_cycle(cfg, summary)
    with warehouse.connect(cfg) as conn:
        for message in alerts.sync(cfg, conn):
            color = "red" if message["state"] == "FIRING" else "green"
            text = f"{message['state']}: {message['alert_type']} {message['key']} -> {message['topic']}"
            typer.secho(f"  alert {text} ({message['runbook']})", fg=color, err=True)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
