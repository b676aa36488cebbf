"""`finsight config ...`: validate and inspect environment files."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from finsight.cli.common import EnvOption, exits_cleanly
from finsight.config import ENVIRONMENTS, load_environment

config_app = typer.Typer(help="Validate and inspect environments/<env>.yaml.", no_args_is_help=True)


@config_app.command("validate")
def validate(
    env: str = EnvOption,
    all_envs: bool = typer.Option(False, "--all", help="Validate every environment."),
    directory: Path | None = typer.Option(None, "--dir", help="Another environments/ folder (e.g. a branch copy)."),
) -> None:
    """Validate one environment file (or all); exit 2 naming the file and field on error."""
    for name in ENVIRONMENTS if all_envs else (env,):
        with exits_cleanly():
            cfg = load_environment(name, directory)
        typer.echo(
            f"{name}: ok ({len(cfg.postgres_sources)} PostgreSQL sources, {len(cfg.tables())} tables, "
            f"{len(cfg.api_sources)} API sources)"
        )


@config_app.command("show")
def show(env: str = EnvOption) -> None:
    """Print the fully merged environment as JSON (secret *names* only; values never live in config)."""
    with exits_cleanly():
        typer.echo(json.dumps(load_environment(env).model_dump(mode="json"), indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
