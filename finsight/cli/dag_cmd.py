"""`finsight dag ...` and `finsight replay`: deploy, play and inspect the hourly Snowflake Task DAG.

In Snowflake the DAG is Task objects calling Snowpark procedures (code in the @OPS.CODE stage); locally the
runner in tasks/runner.py plays the same nodes in-process against fakesnow and logs to OPS.PIPELINE_RUNS.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from finsight import catalog, marts, warehouse
from finsight.cli.common import EnvOption, environment, fail, platform_errors, require_local_stack
from finsight.config import Environment, repo_root
from finsight.ops import task_runs
from snowpark import merge, procedures
from snowpark.run_log import record_task
from snowpark.sql_text import literal
from tasks import dag
from tasks.runner import DagRun, NothingToRetryError, retry_last, run_dag

dag_app = typer.Typer(help="The hourly Task DAG: render, deploy, run locally, read its history.", no_args_is_help=True)

CODE_ZIP = "snowpark.zip"
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same code always zips to the same bytes


def _stamp() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}"


def build_code_zip(target: Path) -> list[str]:
    """Zip the `snowpark/` package (sources only) as the procedures import it: `snowpark/<module>.py`."""
    package = repo_root() / "snowpark"
    names = sorted(p.relative_to(package.parent).as_posix() for p in package.rglob("*.py"))
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, (package.parent / name).read_bytes())
    return names


def deploy_statements(env: Environment, zip_path: Path) -> list[str]:
    """Everything `dag deploy` runs, in order (the task SQL is one script: run with execute_string)."""
    return [
        f"CREATE STAGE IF NOT EXISTS {procedures.CODE_STAGE}",
        f"PUT 'file://{zip_path.as_posix()}' @{procedures.CODE_STAGE} AUTO_COMPRESS = FALSE OVERWRITE = TRUE",
        *[p.create_sql() for p in procedures.ALL],
        *procedure_ownership(env),
        *catalog_statements(env),
        # Snowflake refuses to change a task of a graph whose root is started: suspend every graph's root;
        # render_sql resumes each graph, children before root
        *dag.suspend_statements(env),
    ]


def procedure_ownership(env: Environment) -> list[str]:
    """Procedures owned by another access role than the pipeline's (snowpark.procedures.Procedure.owner). Locally
    procedures are played in-process, and the player switches to the owner role instead (tasks/runner.py)."""
    if env.is_local:
        return []
    roles = catalog.access_roles(env)
    return [sql for p in procedures.ALL if p.owner for sql in p.ownership_sql(roles[p.owner], roles["pipeline"])]


def catalog_statements(env: Environment) -> list[str]:
    """OPS.PIPELINE_CATALOG rows (table and mart specs) that BACKFILL, BUILD_MART and retention read.

    One transaction: Snowflake autocommits each statement outside BEGIN ... COMMIT (docs: Transactions), so a failed
    INSERT after an autocommitted DELETE would leave the procedures an empty catalog. `run_statements` rolls back."""
    table = f"{env.snowflake.schemas['ops']}.{catalog.PIPELINE_CATALOG_TABLE}"
    rows = ", ".join(f"({literal(k)}, {literal(n)}, {literal(s)})" for k, n, s in marts.pipeline_catalog(env))
    return ["BEGIN", f"DELETE FROM {table}", f"INSERT INTO {table} (KIND, NAME, SPEC) VALUES {rows}", "COMMIT"]


def run_statements(cursor: Any, statements: list[str], echo: Callable[[str], None] = typer.echo) -> None:
    """Execute in order; on a failure roll back an open transaction (a no-op outside one), then raise."""
    try:
        for sql in statements:
            echo(sql.splitlines()[0])
            cursor.execute(sql)
    except Exception:
        cursor.execute("ROLLBACK")
        raise


def _print_plan(env: Environment, zip_path: Path, modules: list[str]) -> None:
    typer.echo(f"-- {CODE_ZIP} holds: {', '.join(modules)}")
    # the zip lives in a temp folder only while deploying
    for sql in deploy_statements(env, Path("<build-dir>") / zip_path.name):
        typer.echo(f"{sql};\n")
    typer.echo(dag.render_sql(env), nl=False)


@dag_app.command("render")
def render(env: str = EnvOption) -> None:
    """Print the CREATE TASK statements of the DAG (no connection needed)."""
    typer.echo(dag.render_sql(environment(env)), nl=False)


@dag_app.command("deploy")
def deploy(
    env: str = EnvOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be executed; do not connect."),
) -> None:
    """Upload the Snowpark code to @OPS.CODE, create the procedures, then create and resume the Task DAG."""
    cfg = environment(env)
    with tempfile.TemporaryDirectory(prefix="finsight-dag-") as tmp:
        zip_path = Path(tmp) / CODE_ZIP
        modules = build_code_zip(zip_path)
        if cfg.is_local:
            typer.echo("-- local: fakesnow has no tasks or procedures. `finsight dag run --env local` plays this DAG")
            typer.echo("-- in-process with the same nodes and handlers; nothing is deployed. What Snowflake gets:")
            _print_plan(cfg, zip_path, modules)
            return
        if dry_run:
            typer.echo(f"-- dry run for {cfg.name}: nothing is executed, no connection is made")
            _print_plan(cfg, zip_path, modules)
            return
        with platform_errors(cfg), warehouse.connect(cfg) as conn:
            run_statements(conn.cursor(), deploy_statements(cfg, zip_path))
            for cur in conn.execute_string(dag.render_sql(cfg)):
                typer.echo(f"  {cur.query.splitlines()[0]}")
    typer.echo(f"{cfg.name}: {len(procedures.ALL)} procedures and {len(dag.build_dag(cfg))} tasks deployed")


def _task_names(env: Environment, requested: list[str]) -> list[str]:
    """MERGE task names, or `<source>.<table>` for its task; unknown names exit 2 listing the known ones."""
    known = [n.name for n in dag.build_dag(env) if n.name not in (dag.ROOT, dag.FINALIZER)]
    names = []
    for item in requested:
        if "." in item:
            try:
                item = f"MERGE_{env.table(item).raw_name}"
            except KeyError as exc:
                raise fail(str(exc.args[0]), 2) from None
        if item.upper() not in known:
            raise fail(f"unknown task {item!r}; MERGE tasks: {', '.join(known)}", 2)
        names.append(item.upper())
    return names


def _local_only(env: Environment, what: str) -> None:
    if not env.is_local:
        raise fail(f"{what} runs on `local` only; in Snowflake the graph runs on its schedule (EXECUTE TASK).", 2)


@dag_app.command("run")
def run(
    env: str = EnvOption,
    task: list[str] | None = typer.Option(None, "--task", "-t", help="Only this MERGE task (repeatable)."),
    config: str | None = typer.Option(
        None, "--config", help="The graph CONFIG as in EXECUTE TASK ... USING CONFIG, e.g. '{\"full_refresh\": true}'."
    ),
) -> None:
    """Play the DAG locally (root, merges, marts, checks, finalizer); exit 1 unless it SUCCEEDED."""
    cfg = environment(env)
    _local_only(cfg, "`dag run`")
    only = _task_names(cfg, task or [])
    graph_config = _parse_config(config)
    require_local_stack(cfg)
    run_id = f"manual-{_stamp()}"
    with platform_errors(cfg):
        session = warehouse.snowpark_session(cfg)
        try:
            result = run_dag(cfg, session, run_id, only=only or None, config=graph_config)
        finally:
            session.close()
    _print_run(result)


def _parse_config(config: str | None) -> dict[str, Any]:
    if not config:
        return {}
    try:
        value = json.loads(config)
    except json.JSONDecodeError as exc:
        raise fail(f"--config is not valid JSON: {exc}", 2) from None
    if not isinstance(value, dict):
        raise fail("--config must be a JSON object, e.g. '{\"full_refresh\": true}'", 2)
    for b in [value["backfill"]] if isinstance(value.get("backfill"), dict) else value.get("backfill") or []:
        missing = [k for k in ("table", "start", "end") if not b.get(k)]
        if missing:
            raise fail(f"--config backfill entry {b!r} lacks {', '.join(missing)}", 2)
    return value


def _print_run(result: DagRun) -> None:
    typer.echo(f"run {result.run_id} (attempt {result.attempt}): {result.state}")
    for t in result.tasks:
        colour = "green" if t.state == "SUCCEEDED" else "red"
        detail = t.error or json.dumps(t.output)
        if len(detail) > 160:
            detail = detail[:157] + "..."
        typer.echo(f"  {t.name:<40} {typer.style(f'{t.state:<10}', fg=colour)} {t.seconds:6.2f}s  {detail}")
    if result.latency_seconds() is not None:
        typer.echo(f"  end-to-end latency (source snapshot -> mart published): {result.latency_seconds():.0f}s")
    if not result.succeeded:
        raise fail(f"run {result.run_id}: {result.state}, {sum(t.state != 'SUCCEEDED' for t in result.tasks)} task(s) "
                   "not succeeded")  # fmt: skip


@dag_app.command("retry-last")
def retry_last_cmd(env: str = EnvOption) -> None:
    """Retry the failed and skipped tasks of the last graph run (EXECUTE TASK <root> RETRY LAST)."""
    cfg = environment(env)
    _local_only(cfg, "`dag retry-last`")
    require_local_stack(cfg)
    with platform_errors(cfg):
        session = warehouse.snowpark_session(cfg)
        try:
            result = retry_last(cfg, session)
        except NothingToRetryError as exc:
            raise fail(str(exc)) from None
        finally:
            session.close()
    _print_run(result)


@dag_app.command("task-history")
def task_history(
    env: str = EnvOption,
    limit: int = typer.Option(40, "--limit", "-n", min=1, help="Newest N attempts."),
    as_json: bool = typer.Option(False, "--json", help="Rows as JSON (TASK_HISTORY's column names)."),
) -> None:
    """Task attempts newest first, Snowflake TASK_HISTORY's columns and states: the graph tasks from Snowflake's
    INFORMATION_SCHEMA.TASK_HISTORY (last 6 days), the extract and load stages from OPS.TASK_HISTORY."""
    cfg = environment(env)
    require_local_stack(cfg)
    table = f"{task_runs.attempts(cfg)} AS t"
    columns = ["NAME", "STATE", "SCHEDULED_TIME", "QUERY_START_TIME", "COMPLETED_TIME", "ERROR_CODE", "ERROR_MESSAGE",
               "ATTEMPT_NUMBER", "GRAPH_RUN_GROUP_ID", "RUN_ID", "RETURN_VALUE"]  # fmt: skip
    sql = f"SELECT {', '.join(columns)} FROM {table} ORDER BY QUERY_START_TIME DESC, COMPLETED_TIME DESC LIMIT {limit}"
    with platform_errors(cfg), warehouse.connect(cfg) as conn:
        rows = conn.cursor().execute(sql).fetchall()
    if as_json:
        typer.echo(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=1))
        return
    typer.echo(f"{'QUERY_START_TIME':<19}  {'NAME':<36} {'STATE':<9} {'ATT':>3}  {'GRAPH_RUN_GROUP_ID':<28} ERROR")
    for r in rows:
        line = f"{str(r[3])[:19]:<19}  {r[0]:<36} {r[1]:<9} {r[7]:>3}  {r[8]:<28} {r[6] or ''}".rstrip()
        typer.echo(typer.style(line, fg="red") if r[1] == "FAILED" else line)


@dag_app.command("history")
def history(
    env: str = EnvOption,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Newest N rows."),
    full: bool = typer.Option(False, "--full", help="Do not shorten the DETAIL column."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The run log (OPS.PIPELINE_RUNS), newest first: what to read during an incident."""
    cfg = environment(env)
    require_local_stack(cfg)
    table = f"{cfg.snowflake.schemas['ops']}.{catalog.RUN_LOG_TABLE}"
    # every state is its own row: a task's duration runs from its first (RUNNING) row to this row's FINISHED_AT.
    # Computed in SQL: fakesnow's server returns a NULL timestamp as 1970-01-01.
    sql = (
        "SELECT STARTED_AT, RUN_ID, TASK_NAME, STATE, CASE WHEN FINISHED_AT IS NOT NULL THEN "
        "DATEDIFF('millisecond', MIN(STARTED_AT) OVER (PARTITION BY RUN_ID, TASK_NAME), FINISHED_AT) END, DETAIL "
        f"FROM {table} ORDER BY STARTED_AT DESC LIMIT {limit}"
    )
    with platform_errors(cfg), warehouse.connect(cfg) as conn:
        rows = conn.cursor().execute(sql).fetchall()
    if as_json:
        keys = ("started_at", "run_id", "task_name", "state", "millis", "detail")
        typer.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], default=str))
        return
    if not rows:
        typer.echo(f"{table} is empty: no DAG run yet")
        return
    typer.echo(f"{'STARTED_AT':<19}  {'RUN_ID':<26} {'TASK':<40} {'STATE':<9} {'SECONDS':>7}  DETAIL")
    for started, run_id, task_name, state, millis, detail in rows:
        seconds = "-" if millis is None else f"{millis / 1000:.1f}"
        text = detail or ""
        if not full and state != "FAILED" and len(text) > 80:  # failures are shown whole: that is the point
            text = text[:77] + "..."
        line = f"{str(started)[:19]:<19}  {run_id:<26} {task_name:<40} {state:<9} {seconds:>7}  {text}"
        line = line.rstrip()
        typer.echo(typer.style(line, fg="red") if state == "FAILED" else line)


def replay(
    env: str = EnvOption,
    table: str = typer.Option(..., "--table", help="<source>.<table>, e.g. payments.payments."),
    batch: str = typer.Option(..., "--batch", help="The landed batch id to merge again."),
) -> None:
    """Merge one landed batch of one table again (idempotent: CURATED never moves backwards)."""
    cfg = environment(env)
    try:
        spec = marts.merge_spec(cfg, cfg.table(table))
    except KeyError as exc:
        raise fail(str(exc.args[0]), 2) from None
    require_local_stack(cfg)
    run_id = f"replay-{_stamp()}"
    with platform_errors(cfg):
        session = warehouse.snowpark_session(cfg)
        try:
            output = _replay(cfg, session, spec, run_id, batch)
        finally:
            session.close()
    typer.echo(f"replay {run_id}: {output}")


def _replay(env: Environment, session: Any, spec: dict[str, Any], run_id: str, batch: str) -> str:
    """The parameterized MERGE path: in-process handler locally, the deployed procedure in Snowflake."""
    spec_json = json.dumps(spec, separators=(",", ":"))
    if not env.is_local:
        row = session.sql(
            f"CALL {procedures.MERGE_TABLE.name}({literal(spec_json)}, {literal(run_id)}, {literal(batch)})"
        ).collect()
        return str(row[0][0])
    # locally the run log is the task history: a replay shows up in `finsight dag history`
    task_name = f"REPLAY_{spec['raw']}"
    record_task(session, run_id, task_name, "RUNNING")
    try:
        output = merge.merge_table(session, spec_json, run_id, replay_batch=batch)
    except ValueError as exc:  # the batch has no complete manifest + data in RAW
        record_task(session, run_id, task_name, "FAILED", str(exc))
        raise fail(str(exc)) from None
    record_task(session, run_id, task_name, "SUCCEEDED", output)
    return output


def register(app: typer.Typer) -> None:
    app.add_typer(dag_app, name="dag")
    app.command("replay")(replay)
