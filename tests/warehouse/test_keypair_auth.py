"""Key-pair auth end to end: one key file, read the same way by schemachange, the connector and Snowpark.

A real RSA key pair (encrypted PKCS#8 + passphrase) is stored in moto's Secrets Manager. A "remote" environment is
the local one renamed (so it takes the key-pair path) whose AWS is still moto; its sessions are pointed at the
fakesnow server, which accepts any login but only after the client has loaded the key and signed its JWT with it:
a key file the client cannot read or decrypt fails before any request. Snowflake's own check of the signature
against RSA_PUBLIC_KEY ("Key-pair authentication and key-pair rotation",
https://docs.snowflake.com/en/user-guide/key-pair-auth) needs an account.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from snowflake.connector.connection import _get_private_bytes_from_file

from finsight import keypair, migrate, time_zone, warehouse
from finsight.aws import client
from finsight.config import Environment
from finsight.local.stack import LocalStack

pytestmark = pytest.mark.stack
SCHEMACHANGE = str(Path(sys.executable).with_name("schemachange"))
PASSPHRASE = "correct horse $HOME battery"  # a `$` that a connections.toml would expand


class KeyPair:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSPHRASE.encode()),
        ).decode()
        self.public_der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def body_lines(self) -> list[str]:
        """The PEM's base64 lines: none may appear in an environment, argv, output or error."""
        return [line for line in self.pem.splitlines() if line and not line.startswith("-----")]


@pytest.fixture(scope="module")
def key_pair() -> KeyPair:
    return KeyPair()


@pytest.fixture
def make_secret(local_env: Environment, local_stack: LocalStack) -> Iterator[Callable[[dict[str, str]], str]]:
    sm = client(local_env, "secretsmanager")
    names: list[str] = []

    def make(value: dict[str, str]) -> str:
        name = f"finsight/test/keypair-{uuid.uuid4().hex[:8]}"
        sm.create_secret(Name=name, SecretString=json.dumps(value))
        names.append(name)
        return name

    yield make
    for name in names:
        sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


def _remote(local_env: Environment, secret_name: str) -> Environment:
    """Not local (key-pair auth), but Secrets Manager is still moto: the production code path on local parts."""
    secrets = local_env.secrets.model_copy(update={"snowflake_service_user": secret_name})
    env = local_env.model_copy(update={"name": "dev", "secrets": secrets})
    assert not env.is_local and env.aws.endpoint_url == local_env.aws.endpoint_url
    return env


@pytest.fixture
def remote_env(local_env: Environment, key_pair: KeyPair, make_secret: Callable[[dict[str, str]], str]) -> Environment:
    name = make_secret({"private_key": key_pair.pem, "private_key_passphrase": PASSPHRASE})
    return _remote(local_env, name)


def _fakesnow(local_env: Environment) -> dict[str, object]:
    """Only where to connect (host, port, protocol, timeouts): credentials stay those under test."""
    params = warehouse.connection_parameters(local_env)
    return {k: params[k] for k in ("host", "port", "protocol", "login_timeout", "network_timeout")}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_file_is_private_and_removed_after(remote_env: Environment, key_pair: KeyPair) -> None:
    with keypair.private_key_file(remote_env) as key:
        assert _mode(key.path) == 0o600 and _mode(key.path.parent) == 0o700
        assert key.path.read_text() == key_pair.pem
        assert key.passphrase is not None and key.passphrase.get_secret_value() == PASSPHRASE
        seen = key.path
    assert not seen.exists() and not seen.parent.exists()
    with pytest.raises(RuntimeError), keypair.private_key_file(remote_env) as key:
        seen = key.path
        raise RuntimeError("a failed login")
    assert not seen.parent.exists()  # removed on error too


def test_key_file_loads_with_the_passphrase_through_the_connectors_loader(
    remote_env: Environment, key_pair: KeyPair
) -> None:
    with keypair.private_key_file(remote_env) as key:
        params = key.connector_parameters()
        assert params == {
            "authenticator": "SNOWFLAKE_JWT",
            "private_key_file": str(key.path),
            "private_key_file_pwd": PASSPHRASE,
        }
        # the connector's own loader (what connect() calls for private_key_file), with what we pass it
        der = _get_private_bytes_from_file(params["private_key_file"], params["private_key_file_pwd"])
        with pytest.raises(ValueError):
            _get_private_bytes_from_file(params["private_key_file"], "not the passphrase")
    loaded = serialization.load_der_private_key(der, password=None)
    public = loaded.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public == key_pair.public_der  # the key Snowflake knows by its RSA_PUBLIC_KEY


def test_schemachange_child_gets_the_key_files_path_never_the_key(
    remote_env: Environment, key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY", "stale text from the parent")  # never inherited
    argv = migrate.schemachange_argv(remote_env, {})
    with migrate.schemachange_login(remote_env) as child_env:
        path = Path(child_env["SNOWFLAKE_PRIVATE_KEY_FILE"])
        assert path.is_file() and _mode(path) == 0o600
        assert {k for k in child_env if k.startswith("SNOWFLAKE_")} == {
            "SNOWFLAKE_PRIVATE_KEY_FILE",
            "SNOWFLAKE_PRIVATE_KEY_FILE_PWD",
        }
        passed = [*argv, *child_env.values()]
        assert not [v for v in passed if "PRIVATE KEY-----" in v or any(b in v for b in key_pair.body_lines())]
        assert [k for k, v in child_env.items() if PASSPHRASE in v] == ["SNOWFLAKE_PRIVATE_KEY_FILE_PWD"]
        assert not [a for a in argv if PASSPHRASE in a]
        # what schemachange 4.4 makes of exactly this argv and environment (its own parser, as `main` calls it)
        from schemachange.config.get_merged_config import get_merged_config

        monkeypatch.setattr(sys, "argv", argv)
        monkeypatch.setattr(os, "environ", dict(child_env))
        session_kwargs = get_merged_config(logger=structlog.get_logger()).get_session_kwargs()
    assert not path.exists()
    assert session_kwargs["private_key_file"] == str(path)
    assert session_kwargs["private_key_file_pwd"] == PASSPHRASE
    assert session_kwargs["authenticator"] == "snowflake_jwt"
    assert session_kwargs["session_parameters"]["TIMEZONE"] == "UTC"
    assert "private_key" not in session_kwargs.get("additional_snowflake_params", {})


def _verify_argv(env: Environment) -> list[str]:
    """`schemachange verify` (connect + a test query, no change) with deploy's login options."""
    argv = migrate.schemachange_argv(env, {})
    i = argv.index("-c")
    argv = [*argv[:i], *argv[i + 2 :]]
    argv.remove("--create-change-history-table")
    argv[1] = "verify"
    return argv


def _fakesnow_env(local_env: Environment) -> dict[str, str]:
    assert local_env.local is not None
    return {
        "SNOWFLAKE_HOST": "127.0.0.1",
        "SNOWFLAKE_PORT": str(local_env.local.fakesnow_port),
        "SNOWFLAKE_PROTOCOL": "http",
    }


def test_schemachange_logs_in_with_the_key_file(
    local_env: Environment, remote_env: Environment, key_pair: KeyPair
) -> None:
    with migrate.schemachange_login(remote_env) as child_env:
        out = subprocess.run(_verify_argv(remote_env), env=child_env | _fakesnow_env(local_env),
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    output = out.stdout + out.stderr
    assert out.returncode == 0, output[-3000:]
    assert "Connection Successful" in output and "Authenticator: snowflake_jwt" in output
    assert PASSPHRASE not in output and not [b for b in key_pair.body_lines() if b in output]


def test_pem_text_in_an_environment_variable_is_what_schemachange_cannot_read(
    local_env: Environment, key_pair: KeyPair
) -> None:
    """The recipe this module replaces: schemachange passes SNOWFLAKE_PRIVATE_KEY through as the connector's
    `private_key`, which wants base64 DER: the login fails before any request."""
    pem = key_pair.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    child_env |= _fakesnow_env(local_env) | {"SNOWFLAKE_PRIVATE_KEY": pem}
    argv = _verify_argv(local_env.model_copy(update={"name": "dev"}))
    out = subprocess.run(argv, env=child_env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "private key" in (out.stdout + out.stderr)


def test_connector_and_snowpark_log_in_with_the_same_key_file(local_env: Environment, remote_env: Environment) -> None:
    from snowflake.connector import connect
    from snowflake.snowpark import Session

    with warehouse.login_parameters(remote_env) as params:
        path = Path(params["private_key_file"])
        assert _mode(path) == 0o600 and params["private_key_file_pwd"] == PASSPHRASE
        assert "password" not in params and "private_key" not in params
        assert params["session_parameters"] == {"TIMEZONE": "UTC"}
        where = _fakesnow(local_env)
        with connect(**params, **where) as conn:
            assert conn.cursor().execute("SELECT 1").fetchone() == (1,)
        session = Session.builder.configs(params | where | {"schema": local_env.snowflake.schemas["ops"]}).create()
        try:
            assert session.sql("SELECT 1 AS one").collect()[0]["ONE"] == 1
        finally:
            session.close()
    assert not path.exists() and not path.parent.exists()


def test_a_wrong_secret_shape_names_the_secret_not_its_value(
    local_env: Environment, make_secret: Callable[[dict[str, str]], str]
) -> None:
    value = "hunter2-value-that-must-not-leak"
    for shape in ({"password": value}, {"private_key": value}):
        name = make_secret(shape)
        env = _remote(local_env, name)
        for login in (warehouse.login_parameters, migrate.schemachange_login, keypair.private_key_file):
            with pytest.raises(keypair.KeyPairSecretError) as err, login(env):
                pass
            message = str(err.value)
            assert name in message and "private_key" in message and value not in message


def test_local_sessions_keep_password_auth_and_run_in_utc(local_env: Environment, local_stack: LocalStack) -> None:
    params = warehouse.connection_parameters(local_env)
    assert params["password"] and "private_key_file" not in params and "authenticator" not in params
    with warehouse.connect(local_env) as conn:
        # the dict the connector sent as SESSION_PARAMETERS in its login request (snowflake/connector/auth/_auth.py)
        assert conn._session_parameters["TIMEZONE"] == time_zone.TIMEZONE
    session = warehouse.snowpark_session(local_env)
    try:
        assert session._conn._conn._session_parameters["TIMEZONE"] == time_zone.TIMEZONE
    finally:
        session.close()
    argv = migrate.schemachange_argv(local_env, {})
    assert argv[argv.index("--snowflake-session-parameters") + 1] == '{"TIMEZONE": "UTC"}'
    assert "--snowflake-authenticator" not in argv
    with migrate.schemachange_login(local_env) as child_env:
        assert child_env["SNOWFLAKE_PASSWORD"] and "SNOWFLAKE_PRIVATE_KEY_FILE" not in child_env
