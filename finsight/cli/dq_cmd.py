"""`finsight dq`: data-quality results (OPS.QUALITY_RESULTS), one check explained, held batches released.

finsight dq --env E [--table T] [--json] [--history]   latest result of every check (or its history)
finsight dq explain <check id> --env E                 the SQL, what it observed and sample offending keys
finsight dq release <batch id> --env E                 let a batch a `quarantine` check holds merge again
"""

from __future__ import annotations

import json
from typing import Any

import typer

from finsight import quality, warehouse
from finsight.cli.common import EnvOption, environment, fail, platform_errors, require_local_stack

dq_app = typer.Typer(help="Data-quality checks: latest results, history, explain, release held batches.")
COLUMNS = ["RUN_ID", "CHECK_ID", "CHECK_NAME", "TABLE_NAME", "COLUMN_NAME", "OBSERVED", "EXPECTED", "SEVERITY",
           "STATUS", "SAMPLE_KEYS", "SQL_TEXT", "DETAIL", "CHECKED_AT"]  # fmt: skip
COLOURS = {"PASS": "green", "FAIL": "red"}


def _table(cfg: Any, name: str) -> str:
    return f"{cfg.snowflake.schemas['ops']}.{name}"


def _query(cfg: Any, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    with platform_errors(cfg), warehouse.connect(cfg) as conn:
        rows = conn.cursor().execute(sql, params).fetchall()
    return [dict(zip(COLUMNS, r, strict=True)) for r in rows]


@dq_app.callback(invoke_without_command=True)
def dq(
    ctx: typer.Context,
    env: str = EnvOption,
    table: str | None = typer.Option(None, "--table", "-t", help="<source>.<table>: only this table's checks."),
    history: bool = typer.Option(False, "--history", help="Every result, newest first, not just the latest."),
    limit: int = typer.Option(200, "--limit", "-n", min=1, help="At most N rows."),
    as_json: bool = typer.Option(False, "--json", help="Rows as JSON (OPS.QUALITY_RESULTS's columns)."),
) -> None:
    """Latest result of every check (failures first); exit 1 when an error or quarantine check is failing."""
    if ctx.invoked_subcommand:
        return
    cfg = environment(env)
    if table is not None:
        try:
            cfg.table(table)
        except KeyError as exc:
            raise fail(str(exc.args[0]), 2) from None
    require_local_stack(cfg)
    where = "WHERE TABLE_NAME = %s" if table else ""
    latest = "" if history else "QUALIFY ROW_NUMBER() OVER (PARTITION BY CHECK_ID ORDER BY CHECKED_AT DESC) = 1"
    order = "CHECKED_AT DESC" if history else "CASE STATUS WHEN 'FAIL' THEN 0 ELSE 1 END, TABLE_NAME, CHECK_ID"
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM {_table(cfg, quality.QUALITY_RESULTS_TABLE)} {where} {latest} "
        f"ORDER BY {order} LIMIT {limit}"
    )
    rows = _query(cfg, sql, (table,) if table else ())
    if as_json:
        typer.echo(json.dumps(rows, default=str, indent=1))
    elif not rows:
        typer.echo("no quality results yet: run the hourly graph (`finsight run` / `finsight dag run`)")
    else:
        typer.echo(f"{'CHECKED_AT':<19}  {'STATUS':<6} {'SEVERITY':<10} {'CHECK_ID':<52} OBSERVED / EXPECTED")
        for r in rows:
            line = (f"{str(r['CHECKED_AT'])[:19]:<19}  {r['STATUS']:<6} {r['SEVERITY']:<10} {r['CHECK_ID']:<52} "
                    f"{r['OBSERVED']} / {r['EXPECTED']}")  # fmt: skip
            typer.secho(line, fg=COLOURS.get(r["STATUS"]) if r["STATUS"] == "FAIL" else None)
    failing = [r for r in rows if r["STATUS"] == "FAIL" and r["SEVERITY"] in ("error", "quarantine")]
    if failing and not history:
        raise typer.Exit(1)


@dq_app.command("explain")
def explain(
    check_id: str = typer.Argument(..., help="e.g. payments.payments:null_spike:amount (see `finsight dq`)."),
    env: str = EnvOption,
    run_id: str | None = typer.Option(None, "--run", help="That run's result (default: the latest)."),
) -> None:
    """The check's SQL, what it observed against what it expected, and sample offending keys."""
    cfg = environment(env)
    require_local_stack(cfg)
    sql = f"SELECT {', '.join(COLUMNS)} FROM {_table(cfg, quality.QUALITY_RESULTS_TABLE)} WHERE CHECK_ID = %s"
    params: tuple = (check_id,)
    if run_id:
        sql, params = sql + " AND RUN_ID = %s", (check_id, run_id)
    rows = _query(cfg, sql + " ORDER BY CHECKED_AT DESC LIMIT 1", params)
    if not rows:
        raise fail(f"no result for check {check_id!r}" + (f" in run {run_id}" if run_id else "") +
                   "; `finsight dq --env ...` lists the check ids", 2)  # fmt: skip
    r = rows[0]
    typer.echo(f"check    : {r['CHECK_ID']} ({r['CHECK_NAME']}, severity {r['SEVERITY']})")
    typer.secho(f"status   : {r['STATUS']} in run {r['RUN_ID']} at {r['CHECKED_AT']}", fg=COLOURS.get(r["STATUS"]))
    typer.echo(f"observed : {r['OBSERVED']}")
    typer.echo(f"expected : {r['EXPECTED']}")
    if r["DETAIL"]:
        typer.echo(f"detail   : {r['DETAIL']}")
    typer.echo(f"samples  : {r['SAMPLE_KEYS'] or '-'}")
    typer.echo("sql      :")
    for line in (r["SQL_TEXT"] or "-").splitlines():
        typer.echo(f"  {line}")


@dq_app.command("release")
def release(
    batch_id: str = typer.Argument(..., help="A batch a quarantine check holds (see `finsight dq`)."),
    env: str = EnvOption,
) -> None:
    """Release a held batch: the next merge takes it (the operator decided it is right, or fixed RAW)."""
    from snowpark.quality.gate import release as release_batch

    cfg = environment(env)
    require_local_stack(cfg)
    with platform_errors(cfg):
        session = warehouse.snowpark_session(cfg)
        try:
            n = release_batch(session, None, batch_id)
        finally:
            session.close()
    if not n:
        raise fail(f"batch {batch_id!r} is not held by any quality check", 2)
    typer.echo(f"released {batch_id} ({n} hold(s)): the next run merges it")


def register(app: typer.Typer) -> None:
    app.add_typer(dq_app, name="dq")
