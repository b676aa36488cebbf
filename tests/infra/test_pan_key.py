"""PAN key rotation against a real moto server: a new version becomes current, every old version stays, the legacy
single-key format is version 1, and no key value ever reaches the output."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from finsight import pan_key
from finsight.aws import client
from finsight.config import Environment, load_environment
from finsight.config.loader import PORT_OFFSET_VARIABLE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_env() -> Iterator[Environment]:
    """The local environment moved onto a private moto server (the port offset moves it, for the CLI too): rotating
    here never touches the running stack's key, whose tokens the pipeline tests check against the sources."""
    base = load_environment("local")
    assert base.local is not None
    port = _free_port()
    with pytest.MonkeyPatch.context() as patch:
        offset = int(os.environ.get(PORT_OFFSET_VARIABLE, "0") or 0) + port - base.local.moto_port
        patch.setenv(PORT_OFFSET_VARIABLE, str(offset))
        env = load_environment("local")
        assert env.aws.endpoint_url == f"http://127.0.0.1:{port}"
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        server.start()
        yield env
        server.stop()


def _put(env: Environment, value: dict) -> None:
    sm = client(env, "secretsmanager")
    name = env.secrets.pan_tokenization_key
    try:
        sm.create_secret(Name=name, SecretString=json.dumps(value))
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=name, SecretString=json.dumps(value))


def _get(env: Environment) -> dict:
    raw = client(env, "secretsmanager").get_secret_value(SecretId=env.secrets.pan_tokenization_key)["SecretString"]
    return json.loads(raw)


def test_rotation_adds_a_current_version_and_keeps_the_old(moto_env: Environment) -> None:
    _put(moto_env, {"current_version": "2", "keys": {"1": "aa" * 32, "2": "bb" * 32}})
    status = pan_key.rotate(moto_env)
    data = _get(moto_env)
    assert status.current_version == data["current_version"] == "3"
    assert data["keys"]["1"] == "aa" * 32 and data["keys"]["2"] == "bb" * 32  # old tokens stay verifiable
    assert len(bytes.fromhex(data["keys"]["3"])) == 32 and data["keys"]["3"] not in ("aa" * 32, "bb" * 32)
    assert pan_key.rotate(moto_env).versions == ["1", "2", "3", "4"]


def test_legacy_single_key_becomes_version_1(moto_env: Environment) -> None:
    _put(moto_env, {"hmac_key": "cc" * 32})
    pan_key.rotate(moto_env)
    data = _get(moto_env)
    assert data == {"current_version": "2", "keys": {"1": "cc" * 32, "2": data["keys"]["2"]}}


@pytest.mark.parametrize(
    "bad",
    [{"current_version": "9", "keys": {"1": "aa"}}, {"keys": {"x": "aa"}, "current_version": "x"}, ["not", "a", "map"]],
)
def test_malformed_secret_is_a_named_error_and_nothing_is_written(moto_env: Environment, bad: object) -> None:
    _put(moto_env, bad)  # type: ignore[arg-type]
    with pytest.raises(pan_key.PanKeyError, match=moto_env.secrets.pan_tokenization_key):
        pan_key.rotate(moto_env)
    assert _get(moto_env) == bad


def test_cli_never_prints_a_key(moto_env: Environment) -> None:
    from finsight.cli import pan_key_cmd

    _put(moto_env, {"current_version": "1", "keys": {"1": "dd" * 32}})
    app = __import__("typer").Typer()
    pan_key_cmd.register(app)
    result = CliRunner().invoke(app, ["pan-key", "rotate", "--env", "local"])
    assert result.exit_code == 0, result.output
    data = _get(moto_env)
    assert "current version 2" in result.output
    for value in data["keys"].values():
        assert value not in result.output
