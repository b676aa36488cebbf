"""Shared CLI plumbing: environment option and turning platform errors into clear exits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from finsight.config import ConfigError, Environment, load_environment

EnvOption = typer.Option("local", "--env", "-e", help="Environment: local, dev, staging or prod.")


@contextlib.contextmanager
def exits_cleanly() -> Iterator[None]:
    """Config errors exit 2 with the message alone: no traceback for a typo in YAML."""
    try:
        yield
    except ConfigError as exc:
        typer.secho(f"config error:\n{exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def environment(name: str) -> Environment:
    with exits_cleanly():
        return load_environment(name)
