"""Shared CLI plumbing: environment option and turning platform errors into clear exits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer

from finsight.cli.errors import STACK_DOWN
from finsight.config import ConfigError, Environment, load_environment
from finsight.local.process import port_open

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


# -- errors of the commands that reach AWS / Snowflake ------------------------------------------------------------
def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(message, fg="red", err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def platform_errors(env: Environment) -> Iterator[None]:
    """Expected failures exit with one clear line: no traceback (whose locals or messages could hold secrets)."""
    # imported here, not at module level: a command that finds the stack down answers before loading these (~6 s)
    import snowflake.connector.errors
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from finsight import migrate
    from finsight.secrets import SecretNotFound

    with exits_cleanly():
        try:
            yield
        except migrate.MigrationError as exc:
            raise fail(f"migration failed: {exc}") from None
        except SecretNotFound as exc:
            raise fail(f"{exc}: check the environment's `secrets:` names (on local: `finsight local up`)") from None
        except NoCredentialsError:
            raise fail(
                f"no AWS credentials for {env.name}: the Snowflake key is read from AWS Secrets Manager. In CI the job "
                "assumes the environment's deploy role (OIDC); on a laptop use `aws sso login` / AWS_PROFILE."
            ) from None
        except (BotoCoreError, ClientError) as exc:
            raise fail(f"AWS error for {env.name}: {exc}") from None
        except snowflake.connector.errors.Error as exc:
            raise fail(f"Snowflake error for {env.name}: {exc.msg or exc}") from None


def require_local_stack(env: Environment) -> None:
    """Local commands use the stack as it is; starting it is `finsight local up`'s job (seeding takes a while)."""
    if not env.is_local:
        return
    assert env.local is not None
    needed = {"moto": env.local.moto_port, "fakesnow": env.local.fakesnow_port}
    down = [f"{name} (127.0.0.1:{port})" for name, port in needed.items() if not port_open(port)]
    if down:
        raise fail(STACK_DOWN)  # the same line every command gives (finsight.cli.errors)
