"""Apply `migrations/` and then `migrations-governance/` with the real schemachange CLI, rendered with the catalog's
variables: two runs, two identities, two change histories.

  migrations/             the pipeline's service user, as the pipeline role: every data object and its grants;
  migrations-governance/  the governance deploy user, as the governance role: the masking, row-access and password
                          policies and their attachments. The pipeline's user is never granted that role, so
                          neither the pipeline nor its key can create, alter or detach a policy (docs/security.md).

CI runs exactly this (`finsight migrate --env E`); locally both run against the fakesnow server, whose column
policies (finsight/local/column_policies.py) learn the masking policies from the governance run's statements.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from schemachange.JinjaTemplateProcessor import JinjaTemplateProcessor

from finsight import catalog, keypair, migration_vars, time_zone, warehouse
from finsight.config import Environment, repo_root
from finsight.secrets import read_secret

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_APPLIED = re.compile(r"Applying .*? change script\s+a_script_name=(\S+)")
_SKIPPED = re.compile(r"scripts_skipped=(\d+)")


class MigrationError(RuntimeError):
    """schemachange failed; the message carries its last output lines (never credentials)."""


@dataclass(frozen=True)
class MigrationResult:
    applied: list[str]
    skipped: int
    output: str
    widened: list[str] = field(default_factory=list)  # `TABLE.COLUMN: change` run (or, dry run, due) before it


MIGRATIONS_FOLDER = "migrations"
GOVERNANCE_FOLDER = "migrations-governance"


@dataclass(frozen=True)
class Identity:
    """Who runs one migrations folder: user, role, the secret holding its key (locally a password) and its history."""

    folder: str
    user: str
    role: str
    secret: str
    change_history: str


def identities(env: Environment) -> tuple[Identity, Identity]:
    """(pipeline, governance), in deploy order: the policies attach to objects the pipeline's scripts create."""
    s = env.snowflake
    pipeline = Identity(
        MIGRATIONS_FOLDER, s.user, s.role, env.secrets.snowflake_service_user, change_history_table(env)
    )
    governance = Identity(
        GOVERNANCE_FOLDER,
        catalog.governance_deploy_user(env),
        catalog.access_roles(env)["governance"],
        env.secrets.snowflake_governance_user,
        catalog.governance_change_history_table(env),
    )
    return pipeline, governance


def migrations_dir(folder: str = MIGRATIONS_FOLDER) -> Path:
    return repo_root() / folder


def change_history_table(env: Environment) -> str:
    return f"{env.snowflake.database}.{env.snowflake.change_history_schema}.CHANGE_HISTORY"


def render_all(env: Environment, folder: str = MIGRATIONS_FOLDER) -> dict[str, str]:
    """Every script of one folder rendered exactly as schemachange would (for sqlfluff and for reviewing a change)."""
    return render_with(migration_vars.migration_vars(env), folder)


def render_with(variables: dict[str, Any], folder: str = MIGRATIONS_FOLDER) -> dict[str, str]:
    """Every script of one folder rendered with these variables (the catalog's, or `live_migration_vars`)."""
    processor = JinjaTemplateProcessor(project_root=migrations_dir(folder))
    return {
        script: processor.render(script, variables) for script in sorted(processor.list()) if script.endswith(".sql")
    }


def live_migration_vars(env: Environment, dry_run: bool = False) -> dict[str, Any]:
    """The catalog's variables plus the columns schema evolution added to archived tables at run time, so the archive
    tables and the HISTORY views (re-created, their policies re-attached, whenever the rendering changes) carry them.

    The archive tables gain any such column they lack first (as OPS.ARCHIVE_CURATED does before each move), so the
    views can read it from both sides. `render_all` stays the catalog's alone: lint and review need no warehouse.
    """
    variables = migration_vars.migration_vars(env)
    archive_vars = variables.get("archive")
    if not archive_vars:
        return variables
    from snowpark import archive  # the move's own rules: Iceberg types, the ALTER
    from snowpark.schema_evolution import columns_of

    session = warehouse.snowpark_session(env)
    try:
        live = columns_of(session, [n for t in archive_vars["tables"] for n in (t["hot"], t["archive"])])
        tables = []
        for t in archive_vars["tables"]:
            names = [c["name"] for c in t["columns"]]
            evolved = archive.evolved_columns(session, t["hot"], t["archive"], names, live, alter=not dry_run)
            tables.append({**t, "columns": [*t["columns"], *evolved]})
    finally:
        session.close()
    return {**variables, "archive": {**archive_vars, "tables": tables}}


def declared_numbers(env: Environment) -> dict[str, dict[str, str]]:
    """RAW and CURATED tables -> {column: NUMBER type} as the catalog declares them (what RAW is created with)."""
    schemas = env.snowflake.schemas
    out: dict[str, dict[str, str]] = {}
    for t in env.warehouse_tables():
        numbers = {
            name.upper(): typ
            for name, col in t.landed_columns().items()
            if (typ := catalog.snowflake_type(col.type)).startswith("NUMBER(")
        }
        out[f"{schemas['raw']}.{t.raw_name}"] = numbers
        out[f"{schemas['curated']}.{t.curated_name}"] = numbers
    return out


def widen_declared_numbers(env: Environment, dry_run: bool = False) -> list[str]:
    """The deploy step that widens RAW (and CURATED) before a load needs it: Snowpipe's schema evolution never widens
    a column, so a NUMBER the catalog now declares wider is widened here, precision only (ScaleChangeError for a
    grown scale: docs/runbooks/source-schema-change.md)."""
    from snowpark.schema_evolution import widen_to_declared

    session = warehouse.snowpark_session(env)
    try:
        return widen_to_declared(session, declared_numbers(env), "deploy (finsight migrate)", apply=not dry_run)
    finally:
        session.close()


def _bootstrap_local_database(env: Environment) -> None:
    # Real accounts get the database from cdktf/ (account level); fakesnow needs it and the history schema first.
    with warehouse.connect(env) as conn:
        conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {env.snowflake.database}")
        for table in (change_history_table(env), catalog.governance_change_history_table(env)):
            conn.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {table.rsplit('.', 1)[0]}")


def schemachange_argv(
    env: Environment, variables: dict[str, Any], dry_run: bool = False, identity: Identity | None = None
) -> list[str]:
    """The schemachange command line of one identity (default: the pipeline's): names, paths and session
    parameters, never a credential."""
    s = env.snowflake
    who = identity or identities(env)[0]
    argv = [
        str(Path(sys.executable).with_name("schemachange")), "deploy",
        "-f", str(migrations_dir(who.folder)),
        "--vars", json.dumps(variables),
        "-a", s.account, "-u", who.user, "-r", who.role, "-d", s.database,
        "-w", s.warehouse_name("transform"),
        "-c", who.change_history, "--create-change-history-table",
        # connect(session_parameters=...): migrations run in UTC like every other session (finsight/time_zone.py)
        "--snowflake-session-parameters", json.dumps(dict(time_zone.SESSION_PARAMETERS)),
        "-L", "INFO",
    ]  # fmt: skip
    if not env.is_local:
        argv += ["--snowflake-authenticator", "snowflake_jwt"]
    if dry_run:
        argv.append("--dry-run")
    return argv


def child_environment(
    env: Environment,
    parent: Mapping[str, str],
    *,
    password: SecretStr | None = None,
    key: keypair.KeyFile | None = None,
) -> dict[str, str]:
    """The schemachange process's environment: the parent's without any SNOWFLAKE_* variable, plus how to log in.

    Locally the fakesnow address and a password; elsewhere the key file's path (and its passphrase).
    """
    child = {k: v for k, v in parent.items() if not k.startswith("SNOWFLAKE_")}
    if env.is_local:
        assert env.local is not None and password is not None
        # schemachange's CLI ignores host/port from connections.toml; the connector honours these variables
        return child | {
            "SNOWFLAKE_HOST": "127.0.0.1",
            "SNOWFLAKE_PORT": str(env.local.fakesnow_port),
            "SNOWFLAKE_PROTOCOL": "http",
            "SNOWFLAKE_PASSWORD": password.get_secret_value(),
        }
    if key is None:
        raise ValueError(f"{env.name} uses key-pair auth: pass the key file (keypair.private_key_file)")
    return child | key.schemachange_environment()


@contextmanager
def schemachange_login(env: Environment, identity: Identity | None = None) -> Iterator[dict[str, str]]:
    """The child environment of one identity (default: the pipeline's), valid inside the block (the key file is
    removed when it ends). Each identity logs in with its own secret: the pipeline's key cannot run governance."""
    secret_name = (identity or identities(env)[0]).secret
    if env.is_local:
        secret = read_secret(env, secret_name)
        yield child_environment(env, os.environ, password=secret["password"])
        return
    with keypair.private_key_file(env, secret_name) as key:
        yield child_environment(env, os.environ, key=key)


def deploy(env: Environment, dry_run: bool = False) -> MigrationResult:
    if env.is_local:
        _bootstrap_local_database(env)
    from snowpark.schema_evolution import ScaleChangeError

    try:
        widened = widen_declared_numbers(env, dry_run)
    except ScaleChangeError as exc:  # refused before any change: nothing deployed
        raise MigrationError(f"{env.name}: {exc}") from None
    variables = live_migration_vars(env, dry_run)
    applied: list[str] = []
    skipped, outputs = 0, []
    for identity in identities(env):  # pipeline first: the governance run attaches policies to its objects
        argv = schemachange_argv(env, variables, dry_run, identity)
        with schemachange_login(env, identity) as child_env:
            proc = subprocess.run(argv, env=child_env, capture_output=True, text=True, cwd=repo_root())
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-15:])
            raise MigrationError(
                f"schemachange deploy of {identity.folder}/ failed for {env.name} (exit {proc.returncode}):\n{tail}"
            )
        plain = _ANSI.sub("", output)
        outputs.append(plain)
        prefix = "" if identity.folder == MIGRATIONS_FOLDER else f"{identity.folder}/"
        applied += [prefix + name for name in _APPLIED.findall(plain)]
        skipped += int(m.group(1)) if (m := _SKIPPED.search(plain)) else 0
    return MigrationResult(applied=applied, skipped=skipped, output="".join(outputs), widened=widened)
