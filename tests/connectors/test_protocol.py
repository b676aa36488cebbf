"""`python -m connectors <verb>`: the Airbyte protocol for every PostgreSQL source against the local stack.

spec / check / discover run for all 12 sources in-process through the image entrypoint (connectors.__main__.main);
`read` round-trips state on one source and checks that no clear card number reaches stdout.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import connectors.__main__ as entry
from connectors.pci import luhn_valid
from finsight.config import Environment, load_environment
from finsight.connector_config import connector_config

pytestmark = pytest.mark.stack
PG_SOURCES = tuple(load_environment("local").postgres_sources)  # the config is the list: never typed twice


def _messages(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _verb(capsys: pytest.CaptureFixture[str], argv: list[str], source: str | None = None) -> tuple[int, str]:
    environ = {"FINSIGHT_SOURCE": source} if source else {}
    code = entry.main(argv, environ)
    return code, capsys.readouterr().out


def _of(out: str, kind: str) -> list[dict[str, Any]]:
    return [m for m in _messages(out) if m["type"] == kind]


def _config_file(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / f"{config['source']}.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.parametrize("source", PG_SOURCES)
def test_spec_check_discover(
    source: str, local_env: Environment, local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _verb(capsys, ["spec"], source)
    (spec,) = _of(out, "SPEC")
    props = spec["spec"]["connectionSpecification"]["properties"]
    assert code == 0 and props["password"]["airbyte_secret"] is True
    config = _config_file(tmp_path, connector_config(local_env, source))
    code, out = _verb(capsys, ["check", "--config", config])
    assert code == 0 and _of(out, "CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"
    code, out = _verb(capsys, ["discover", "--config", config])
    streams = {s["name"]: s for s in _of(out, "CATALOG")[0]["catalog"]["streams"]}
    assert code == 0 and set(streams) == {t.qualified for t in local_env.postgres_sources[source].tables.values()}
    for table in local_env.postgres_sources[source].tables.values():
        stream = streams[table.qualified]
        assert stream["default_cursor_field"] == [table.cursor]
        assert stream["source_defined_primary_key"] == [[k] for k in table.primary_key]
        assert "incremental" in stream["supported_sync_modes"]


def _failed_check(capsys: pytest.CaptureFixture[str], tmp_path: Path, config: dict[str, Any]) -> str:
    code, out = _verb(capsys, ["check", "--config", _config_file(tmp_path, config)])
    (status,) = _of(out, "CONNECTION_STATUS")
    assert code == 0 and status["connectionStatus"]["status"] == "FAILED"
    assert "Traceback" not in out
    return str(status["connectionStatus"]["message"])


def test_wrong_password_fails_naming_the_source_without_the_secret(
    local_env: Environment, local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = connector_config(local_env, "merchants") | {"username": "finsight", "password": "Wr0ng-pw-7781"}
    message = _failed_check(capsys, tmp_path, config)
    assert "'merchants'" in message and "password authentication failed" in message
    assert "Wr0ng-pw-7781" not in capsys.readouterr().out + message


def test_unreachable_host_and_bad_field_are_named(
    local_env: Environment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = connector_config(local_env, "ledger")
    assert "cannot connect" in _failed_check(capsys, tmp_path, base | {"port": 1})
    assert "port: must be of type integer" in _failed_check(capsys, tmp_path, base | {"port": "x"})
    assert "config: 'username'" in _failed_check(capsys, tmp_path, base | {"password": "p"})


def test_api_source_verbs_are_refused_naming_the_source(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _verb(capsys, ["spec"], "stripe")
    assert code == 2 and "'stripe' is an API source" in _of(out, "TRACE")[0]["trace"]["error"]["message"]


def _catalog(tmp_path: Path, stream: str, cursor: str, key: str) -> str:
    configured = {
        "stream": {"name": stream, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
        "sync_mode": "incremental",
        "destination_sync_mode": "append",
        "cursor_field": [cursor],
        "primary_key": [[key]],
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"streams": [configured]}))
    return str(path)


def _no_clear_pan(out: str) -> None:
    out = re.sub(r'"emitted_at": ?[\d.]+', "", out)  # epoch millis: 13 digits, sometimes Luhn-valid
    pans = [d for d in re.findall(r"(?<![0-9A-Za-z$])\d{13,19}(?![0-9A-Za-z])", out) if luhn_valid(d)]  # not hex
    assert pans == []


def test_read_round_trips_state_and_tokenizes_pans(
    local_env: Environment, local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = local_env.table("payments.payments")
    config = _config_file(tmp_path, connector_config(local_env, "payments"))
    catalog = _catalog(tmp_path, table.qualified, table.cursor, table.primary_key[0])
    code, out = _verb(capsys, ["read", "--config", config, "--catalog", catalog])
    first = _of(out, "RECORD")
    assert code == 0 and first
    _no_clear_pan(out)
    row = first[0]["record"]["data"]
    assert "card_number" not in row and row["card_number_token"].startswith("v") and len(row["card_number_last4"]) == 4
    with local_stack.admin_connect("payments") as conn:  # the connector's own user is read-only
        clear = [r[0] for r in conn.execute("SELECT DISTINCT card_number FROM payments WHERE card_number <> ''")]
        assert clear and not [pan for pan in clear if pan in out]  # every clear card number of the source
        old = conn.execute("SELECT min(payment_id) FROM payments").fetchone()
        conn.execute("UPDATE payments SET updated_at = now() AT TIME ZONE 'UTC' WHERE payment_id = %s", old)
        conn.commit()
    state = tmp_path / "state.json"
    state.write_text(json.dumps([_of(out, "STATE")[-1]["state"]]))
    code, out = _verb(capsys, ["read", "--config", config, "--catalog", catalog, "--state", str(state)])
    second = [m["record"]["data"]["payment_id"] for m in _of(out, "RECORD")]
    assert code == 0 and old[0] in second and len(second) < len(first)  # only the newer rows (window - lookback)


def test_image_entrypoint_answers_spec() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "connectors", "spec"],
        env={"FINSIGHT_SOURCE": "merchants", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and any(m["type"] == "SPEC" for m in _messages(done.stdout))


def test_finsight_connectors_config_writes_references_unless_asked(
    local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from typer.testing import CliRunner

    from finsight.cli.main import app

    out = tmp_path / "billing.json"
    done = CliRunner().invoke(app, ["connectors", "config", "--env", "local", "--source", "billing", "--out", str(out)])
    config = json.loads(out.read_text())
    assert done.exit_code == 0 and config["secret"] and "password" not in config
    done = CliRunner().invoke(
        app, ["connectors", "config", "--source", "billing", "--resolve-secrets", "--out", str(out)]
    )
    resolved = json.loads(out.read_text())
    assert done.exit_code == 0 and resolved["password"] and oct(out.stat().st_mode & 0o777) == "0o600"
    code, printed = _verb(capsys, ["check", "--config", str(out)])  # the resolved credentials are the ones used
    assert code == 0
    assert _of(printed, "CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"
    assert resolved["password"] not in printed
    done = CliRunner().invoke(app, ["connectors", "config", "--source", "stripe"])
    assert done.exit_code == 2 and "--source: 'stripe' is an API source" in done.output
