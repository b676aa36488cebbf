"""`finsight migrate` and `finsight sql ...`: schemachange deploys, and every SQL text we ship rendered and linted.

What ships: the migrations (rendered exactly as schemachange renders them), the Task DAG and the procedure DDL.
`sql lint` runs sqlfluff on those rendered files, so reviewers and CI see the SQL Snowflake will run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import typer

from finsight import migrate, snowflake_dmf
from finsight.cli.common import EnvOption, environment, exits_cleanly, fail, platform_errors, require_local_stack
from finsight.config import Environment, repo_root
from finsight.conformance.check import Finding, check_log, check_scripts
from finsight.conformance.model import Model
from snowpark import procedures
from tasks import dag

sql_app = typer.Typer(help="Render and lint the SQL we ship (migrations, Task DAG, procedures).", no_args_is_help=True)

# rendered migrations go below these folders of --out (the names of the source folders); DAG + procedures beside them
MIGRATIONS_FOLDER, GOVERNANCE_FOLDER = migrate.MIGRATIONS_FOLDER, migrate.GOVERNANCE_FOLDER
TASKS_FILE, PROCEDURES_FILE = "tasks.sql", "procedures.sql"


# -- rendering -------------------------------------------------------------------------------------------------
def procedures_sql() -> str:
    return "\n".join(p.create_sql() + ";\n" for p in procedures.ALL)


def rendered_files(env: Environment) -> dict[str, str]:
    """Relative path -> SQL text of everything shipped to Snowflake for `env` (deterministic: config only)."""
    # schemachange strips a script's trailing newline; files end with one
    files = {
        f"{folder}/{name}": sql + "\n"
        for folder in (MIGRATIONS_FOLDER, GOVERNANCE_FOLDER)
        for name, sql in migrate.render_all(env, folder).items()
    }
    files[TASKS_FILE] = dag.render_sql(env)
    files[PROCEDURES_FILE] = procedures_sql()
    files.update(marts_files(env))
    return files


def marts_files(env: Environment) -> dict[str, str]:
    """Every mart query, once per combination of optional upstreams (what BUILD_MART may run)."""
    from finsight import marts

    files = {}
    for mart in marts.marts():
        for present, sql in marts.variants(mart, env).items():
            suffix = "" if not present else "__with_" + present.lower().replace(",", "_")
            files[f"marts/{mart.name}{suffix}.sql"] = sql + "\n"
    return files


def write_files(files: dict[str, str], out: Path) -> list[Path]:
    paths = []
    for name, text in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    return paths


# -- linting ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    position: int
    code: str
    description: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.position}: {self.code} {self.description}"


def lint_files(files: dict[str, str]) -> list[Violation]:
    """sqlfluff with the repo's .sqlfluff only (no user/home config): the same verdict on every machine."""
    with tempfile.TemporaryDirectory(prefix="finsight-sql-") as tmp:
        write_files(files, Path(tmp))
        sqlfluff = str(Path(sys.executable).with_name("sqlfluff"))
        argv = [sqlfluff, "lint", ".", "--config", str(repo_root() / ".sqlfluff"), "--ignore-local-config",
                "--format", "json", "--nofail", "--disable-progress-bar", "--processes", "0"]  # fmt: skip
        proc = subprocess.run(argv, cwd=tmp, capture_output=True, text=True)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"sqlfluff failed (exit {proc.returncode}):\n{proc.stderr.strip()}") from None
    return [
        Violation(
            f["filepath"].removeprefix("./"),
            v.get("start_line_no", 0),
            v.get("start_line_pos", 0),
            v["code"],
            v["description"],
        )
        for f in report
        for v in f["violations"]
    ]


# -- Snowflake conformance -------------------------------------------------------------------------------------
def deploy_order(files: dict[str, str]) -> list[tuple[str, str]]:
    """The rendered files in the order Snowflake meets them: per migrations folder (the pipeline's, then the
    governance one, as `finsight migrate` runs them), versioned scripts by version, then repeatable ones, then always
    ones (schemachange's order); then everything else as rendered."""

    def version(name: str) -> tuple[int, ...]:
        head = Path(name).name.split("__", 1)[0].lstrip("V")
        return tuple(int(p) for p in head.split(".") if p.isdigit())

    ordered: list[str] = []
    for folder in (MIGRATIONS_FOLDER, GOVERNANCE_FOLDER):
        prefix = f"{folder}/"
        ordered += sorted((n for n in files if n.startswith(prefix + "V")), key=version)
        ordered += sorted(n for n in files if n.startswith(prefix + "R__"))
        ordered += sorted(n for n in files if n.startswith(prefix + "A__"))
    rest = [n for n in files if n not in ordered]
    return [(n, files[n]) for n in [*ordered, *rest]]


def dag_deploy_script(env: Environment) -> str:
    """What `finsight dag deploy` sends, as one script (its statements, then the task SQL)."""
    from finsight.cli.dag_cmd import CODE_ZIP, deploy_statements

    head = "".join(f"{sql};\n" for sql in deploy_statements(env, Path(CODE_ZIP)))  # the path only names the PUT
    return head + dag.render_sql(env)


def conformance_findings(env: Environment) -> list[Finding]:
    """Every rendered file in deploy order, then `dag deploy` twice (a redeploy meets the graphs the first one
    resumed), through the Snowflake rules with one account model."""
    model = conformance_model(env)
    deploy = dag_deploy_script(env)  # holds the task SQL and the procedure DDL: not checked twice
    files = {n: t for n, t in rendered_files(env).items() if n not in (TASKS_FILE, PROCEDURES_FILE)}
    scripts = deploy_order(files)
    scripts += [("dag-deploy (first)", deploy), ("dag-deploy (redeploy)", deploy)]
    return check_scripts(scripts, model)


def conformance_model(env: Environment) -> Model:
    """The account as the rules start from it: the owner role of the platform's objects, holding the account-level
    grants cdktf's Snowflake stack gives it (the same OWNER_ROLE_GRANTS it synthesizes; local: `local up` runs them)."""
    model = Model(owner_role=env.snowflake.role)
    for grant in snowflake_dmf.OWNER_ROLE_GRANTS:
        model.observe(grant.sql(env.snowflake.role))
    return model


# -- commands --------------------------------------------------------------------------------------------------
def migrate_command(
    env: str = EnvOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what schemachange would apply; change nothing."),
) -> None:
    """Apply migrations/ with schemachange (real Snowflake, or fakesnow on `local`)."""
    cfg = environment(env)
    require_local_stack(cfg)
    with platform_errors(cfg):
        result = migrate.deploy(cfg, dry_run=dry_run)
        if not dry_run:  # explicit deploys always run; the recorded fingerprint lets the hourly cycle skip its own
            from finsight import deploy_fingerprint

            deploy_fingerprint.record(cfg, deploy_fingerprint.fingerprint(cfg))
    verb = "would apply" if dry_run else "applied"
    typer.echo(f"{cfg.name}: {verb} {len(result.applied)} script(s), {result.skipped} skipped")
    for script in result.applied:
        typer.echo(f"  {script}")
    for change in result.widened:  # the deploy step before schemachange (snowpark.schema_evolution)
        typer.echo(f"  {'would widen' if dry_run else 'widened'} {change}")


@sql_app.command("render")
def render(
    env: str = EnvOption,
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the files to this folder instead of printing."),
) -> None:
    """Render migrations, the Task DAG and procedure DDL for an environment (no connection needed)."""
    cfg = environment(env)
    with exits_cleanly():
        files = rendered_files(cfg)
    if out is None:
        for name, text in files.items():
            typer.echo(f"-- ==== {name} ====\n{text}")
        return
    for path in write_files(files, out):
        typer.echo(str(path))


@sql_app.command("lint")
def lint(env: str = EnvOption) -> None:
    """sqlfluff (snowflake dialect, repo .sqlfluff) over the rendered SQL; exit 1 on any violation."""
    cfg = environment(env)
    with exits_cleanly():
        files = rendered_files(cfg)
    try:
        violations = lint_files(files)
    except RuntimeError as exc:
        raise fail(str(exc), 2) from None
    for v in violations:
        typer.echo(str(v))
    if violations:
        raise fail(f"{cfg.name}: {len(violations)} sqlfluff violation(s) in the rendered SQL")
    typer.echo(f"{cfg.name}: {len(files)} files, sqlfluff clean")


@sql_app.command("check")
def check(
    env: str = EnvOption,
    log: Path | None = typer.Option(
        None,
        "--log",
        help="Check this statement log (JSON lines, e.g. .local/logs/snowflake-statements.jsonl) "
        "instead of the rendered files.",
    ),
) -> None:
    """Snowflake's rules that DuckDB does not enforce, over every rendered file (or a statement log): one line per
    violation (file and statement, rule, docs page); exit 1 on any."""
    cfg = environment(env)
    with exits_cleanly():
        if log is not None:
            if not log.is_file():
                raise fail(f"statement log {log} does not exist", 2)
            try:
                findings = check_log(log, conformance_model(cfg))
            except ValueError as exc:  # a line of the log is not an entry: named with its line number
                raise fail(str(exc), 2) from None
            what = f"statement log {log}"
        else:
            findings = conformance_findings(cfg)
            what = "rendered SQL and the DAG deploy"
    for f in findings:
        typer.echo(str(f))
    if findings:
        raise fail(f"{cfg.name}: {len(findings)} Snowflake conformance violation(s) in the {what}")
    typer.echo(f"{cfg.name}: {what}: 0 Snowflake conformance violations")


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate_command)
    app.add_typer(sql_app, name="sql")
