"""`finsight connectors config --env E --source S [--resolve-secrets] [--out F]`: one source's Airbyte config."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from finsight.cli.common import EnvOption, environment
from finsight.connector_config import ConnectorConfigError, connector_config
from finsight.private_file import write_private

connectors_app = typer.Typer(help="Airbyte connectors: the --config a source's protocol verbs read.")


@connectors_app.command("config")
def config_cmd(
    env: str = EnvOption,
    source: str = typer.Option(..., "--source", help="a postgres_sources or api_sources entry of the environment"),
    resolve_secrets: bool = typer.Option(
        False, "--resolve-secrets", help="put the credentials from Secrets Manager in the file (else a reference)"
    ),
    out: Path | None = typer.Option(None, "--out", help="write here (mode 0600) instead of stdout"),
) -> None:
    """Write the source's config JSON from environments/<env>.yaml (run one verb by hand with it)."""
    try:
        config = connector_config(environment(env), source, resolve_secrets)
    except ConnectorConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    text = json.dumps(config, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    write_private(out, text)  # may hold a password or API key: owner only


def register(app: typer.Typer) -> None:
    app.add_typer(connectors_app, name="connectors")
