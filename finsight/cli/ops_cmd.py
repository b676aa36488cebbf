"""`finsight status | slo | alerts | metrics | dashboard`: what both teams read when something is late."""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from finsight.cli.common import EnvOption, environment, platform_errors, require_local_stack

JsonOption = typer.Option(False, "--json", help="Machine-readable output.")


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def status(env: str = EnvOption, as_json: bool = JsonOption) -> None:
    """Per source and table: last success, freshness, lag vs SLA, last error, owner, next action (exit 1 if any
    table is failing or late)."""
    cfg = environment(env)
    require_local_stack(cfg)  # before the heavy imports: a stopped stack is reported at once
    from finsight import warehouse
    from finsight.ops.status import table_status

    with platform_errors(cfg), warehouse.connect(cfg) as conn:
        rows = table_status(cfg, conn.cursor())
    bad = [r for r in rows if r.state in ("failing", "late")]
    if as_json:
        _echo_json([r.as_dict() for r in rows])
    else:
        typer.echo(f"{'TABLE':<34} {'STATE':<8} {'LAST SUCCESS':<19} {'LAG':>7}/{cfg.schedule.sla_minutes}m  "
                   f"{'OWNER':<28} NEXT ACTION / LAST ERROR")  # fmt: skip
        for r in rows:
            lag = "-" if r.lag_minutes is None else f"{r.lag_minutes:.0f}m"
            line = f"{r.table:<34} {r.state:<8} {r.last_success or '-':<19} {lag:>7}      {r.owner:<28} {r.next_action}"
            typer.echo(typer.style(line, fg="red") if r in bad else line)
            if r.last_error:
                typer.secho(f"{'':<34} error: {r.last_error}", fg="red")
    if bad:
        raise typer.Exit(1)


def slo(env: str = EnvOption, as_json: bool = JsonOption) -> None:
    """Monthly DAG success rate (target 99.9 %) and end-to-end latency p50 / p95 (target 30 min) from the run log."""
    cfg = environment(env)
    require_local_stack(cfg)
    from finsight import warehouse
    from finsight.ops.slo import monthly

    with platform_errors(cfg), warehouse.connect(cfg) as conn:
        months = monthly(cfg, conn.cursor())
    if as_json:
        _echo_json([m.as_dict() for m in months])
        return
    if not months:
        typer.echo("no graph run in the run log yet")
        return
    typer.echo(f"{'MONTH':<8} {'RUNS':>5} {'SUCCESS':>8} (target 99.9%)  {'P50':>7} {'P95':>7} (target 30m)  "
               "ERROR BUDGET BURNED")  # fmt: skip
    for m in months:
        p50 = "-" if m.latency_p50_minutes is None else f"{m.latency_p50_minutes:.1f}m"
        p95 = "-" if m.latency_p95_minutes is None else f"{m.latency_p95_minutes:.1f}m"
        line = (f"{m.month:<8} {m.runs:>5} {m.success_rate * 100:>7.2f}%                 {p50:>7} {p95:>7}"
                f"                {m.budget_burned * 100:.0f}%")  # fmt: skip
        typer.echo(line if m.met else typer.style(line, fg="red"))


def _alert_line(m: dict[str, Any]) -> str:
    return (f"{m.get('at', '')[:19]:<19} {m['state']:<8} {m['alert_type']:<17} {m['key'][:48]:<48} "
            f"{m['team_name']:<16} {m['owner']:<28} {m['runbook']}\n{'':<20}{m['message'][:200]}")  # fmt: skip


def alerts(
    env: str = EnvOption,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep watching the topics (Ctrl-C to stop)."),
    as_json: bool = JsonOption,
    show_all: bool = typer.Option(False, "--all", help="Every message received, resolved ones included."),
    check: bool = typer.Option(True, help="Evaluate the alert conditions first and publish what changed."),
    interval: float = typer.Option(5.0, min=0.5, help="Seconds between checks with --follow."),
) -> None:
    """Alerts on the data-engineering and DevOps topics, with owner and runbook; open ones by default."""
    cfg = environment(env)
    require_local_stack(cfg)
    from finsight import warehouse
    from finsight.ops import alerts as ops_alerts

    def poll() -> list[dict[str, Any]]:
        with platform_errors(cfg):
            if check:
                with warehouse.connect(cfg) as conn:
                    ops_alerts.sync(cfg, conn)
            if not cfg.is_local:  # in AWS the topics page on-call: show what is open in OPS.ALERTS
                with warehouse.connect(cfg) as conn:
                    return ops_alerts.open_alerts(cfg, conn)
            return ops_alerts.drain_inboxes(cfg)

    new = poll()
    if cfg.is_local:
        messages = ops_alerts.received(cfg)
        shown = messages if show_all else [
            m for m in ops_alerts.latest_by_alert(messages).values() if m["state"] == "FIRING"
        ]  # fmt: skip
    else:
        shown = new
    if as_json and not follow:
        _echo_json(shown)
    else:
        for m in shown:
            typer.echo(json.dumps(m, default=str) if as_json else _alert_line(m))
        if not shown and not as_json:
            typer.echo("no open alert")
    while follow and cfg.is_local:
        try:
            time.sleep(interval)
            for m in poll():
                typer.echo(json.dumps(m, default=str) if as_json else _alert_line(m))
        except KeyboardInterrupt:
            break


def metrics(
    env: str = EnvOption,
    as_json: bool = JsonOption,
    last: int = typer.Option(50, "--last", "-n", min=1, help="Newest N records."),
) -> None:
    """Pipeline metrics (rows, bytes, seconds, lag, failures) from the local sink: CloudWatch EMF records."""
    from finsight.ops.telemetry import read_sink

    cfg = environment(env)
    if not cfg.is_local:
        typer.echo(f"in AWS the metrics are in CloudWatch, namespace FinSight (env={cfg.name})")
        return
    records = read_sink(cfg)[-last:]
    if as_json:
        _echo_json(records)
        return
    for r in records:
        ids = " ".join(f"{k}={r[k]}" for k in ("run_id", "task", "source", "table", "batch_id") if k in r)
        values = " ".join(f"{m['Name']}={r[m['Name']]}" for m in r["_aws"]["CloudWatchMetrics"][0]["Metrics"])
        typer.echo(f"{r['event']:<20} {values:<40} {ids}")


def dashboard(
    env: str = EnvOption,
    port: int = typer.Option(0, help="Port on 127.0.0.1 (default: the local stack's ports + 10)."),
    deploy: bool = typer.Option(False, "--deploy", help="Stage the app and create it as Streamlit in Snowflake."),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --deploy: print the statements; do not connect."),
) -> None:
    """Run the ops dashboard (Streamlit) against the environment's warehouse; `--deploy` makes it a Streamlit in
    Snowflake app (@OPS.DASHBOARD, OPS.FINSIGHT_OPS_DASHBOARD)."""
    import os
    import subprocess
    import sys

    from finsight.config import repo_root

    cfg = environment(env)
    if deploy:
        _deploy_dashboard(cfg, dry_run)
        return
    require_local_stack(cfg)
    app = repo_root() / "finsight" / "ops" / "dashboard.py"
    port = port or ((cfg.local.mock_api_port + 10) if cfg.local else 8501)
    typer.echo(f"ops dashboard on http://127.0.0.1:{port}")
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]  # fmt: skip
    raise typer.Exit(subprocess.call(cmd, env={**os.environ, "FINSIGHT_ENV": cfg.name}))


def _deploy_dashboard(cfg: Any, dry_run: bool) -> None:
    import tempfile
    from pathlib import Path

    from finsight import warehouse
    from finsight.ops import dashboard_deploy

    with tempfile.TemporaryDirectory(prefix="finsight-dashboard-") as tmp:
        files = dashboard_deploy.build_bundle(cfg, Path(tmp))
        if cfg.is_local or dry_run:
            why = "local: fakesnow has no Streamlit (run `finsight dashboard`)" if cfg.is_local else "dry run"
            typer.echo(f"-- {why}; nothing is executed. The bundle holds {len(files)} files; Snowflake gets:")
            for sql in dashboard_deploy.deploy_statements(cfg, Path("<bundle>"), files):
                typer.echo(f"{sql};")
            return
        with platform_errors(cfg), warehouse.connect(cfg) as conn:
            cursor = conn.cursor()
            for sql in dashboard_deploy.deploy_statements(cfg, Path(tmp), files):
                typer.echo(sql.split(" AUTO_COMPRESS")[0])
                cursor.execute(sql)
    typer.echo(f"{cfg.name}: ops dashboard deployed as {dashboard_deploy.app_name(cfg)}")


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("slo")(slo)
    app.command("alerts")(alerts)
    app.command("metrics")(metrics)
    app.command("dashboard")(dashboard)
