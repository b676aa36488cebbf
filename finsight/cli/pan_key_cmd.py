"""`finsight pan-key status|rotate --env E`: the versioned PAN tokenization key (values are never shown)."""

from __future__ import annotations

import typer

from finsight import pan_key
from finsight.cli.common import EnvOption, environment

pan_key_app = typer.Typer(help="PAN tokenization key: status and rotation (new version, old ones kept).")


def _show(s: pan_key.KeyStatus) -> None:
    typer.echo(f"{s.secret}: current version {s.current_version}; versions kept: {', '.join(s.versions)}")


@pan_key_app.command("status")
def status_cmd(env: str = EnvOption) -> None:
    """Current key version and the versions kept for verifying older tokens."""
    try:
        _show(pan_key.status(environment(env)))
    except pan_key.PanKeyError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None


@pan_key_app.command("rotate")
def rotate_cmd(env: str = EnvOption) -> None:
    """Add a new key version and make it current (run under the MFA-gated rotator role)."""
    try:
        _show(pan_key.rotate(environment(env)))
    except pan_key.PanKeyError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    app.add_typer(pan_key_app, name="pan-key")
