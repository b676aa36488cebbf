"""`python -m connectors <verb>`: the Airbyte protocol for every source (PostgreSQL and API) against the local stack.

spec / check / discover run for every source of the config in-process through the image entrypoint
(connectors.__main__.main); `read` round-trips state on one PostgreSQL table and one API stream, and checks that no
clear card number reaches stdout (a PAN planted in the API's free-form metadata included).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

import connectors.__main__ as entry
from connectors.apis.protocol import record_key
from connectors.pan_key import tokenizer_for
from connectors.pci import luhn_valid
from finsight.config import Environment, load_environment
from finsight.connector_config import connector_config
from finsight.local.aws_bootstrap import ensure_secrets
from finsight.local.mock_apis import create_app
from finsight.local.stack import _mock_credential
from finsight.local.tls import ensure_ca

pytestmark = pytest.mark.stack
PG_SOURCES = tuple(load_environment("local").postgres_sources)  # the config is the list: never typed twice
API_SOURCES = tuple(load_environment("local").api_sources)
CARD_SOURCE = next(n for n, a in load_environment("local").api_sources.items() if a.kind == "stripe")  # card data


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


def test_a_ca_the_server_does_not_chain_to_fails_naming_source_and_host(
    local_env: Environment, local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = ensure_ca(tmp_path / "other-ca" / "ca.crt", "Not the local stack's CA")
    config = connector_config(local_env, "merchants") | {"sslrootcert": str(stranger.cert_file)}
    message = _failed_check(capsys, tmp_path, config)
    assert "'merchants'" in message and f"{config['host']}:{config['port']}" in message
    assert "certificate verify failed" in message


def test_a_config_below_verify_full_is_refused_outside_local(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prod = load_environment("prod")
    config = connector_config(prod, "merchants") | {"sslmode": "require"}
    message = _failed_check(capsys, tmp_path, config)
    assert "'merchants'" in message and "sslmode 'require': prod requires verify-full" in message


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
        old = conn.execute("SELECT payment_id, updated_at FROM payments ORDER BY payment_id LIMIT 1").fetchone()
        conn.execute("UPDATE payments SET updated_at = now() AT TIME ZONE 'UTC' WHERE payment_id = %s", old[:1])
        conn.commit()
    state = tmp_path / "state.json"
    state.write_text(json.dumps([_of(out, "STATE")[-1]["state"]]))
    try:
        code, out = _verb(capsys, ["read", "--config", config, "--catalog", catalog, "--state", str(state)])
    finally:  # a protocol read lands nothing: put the shared source back as the later tests (backfill) expect it
        with local_stack.admin_connect("payments") as conn:
            conn.execute("UPDATE payments SET updated_at = %s WHERE payment_id = %s", (old[1], old[0]))
            conn.commit()
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
    done = CliRunner().invoke(app, ["connectors", "config", "--source", "nosuch"])
    assert done.exit_code == 2 and "--source: unknown source 'nosuch'" in done.output


# -- API sources: the provider's declarative manifest through the same entry --------------------------------------
@pytest.mark.parametrize("source", API_SOURCES)
def test_api_config_is_a_reference_unless_asked(
    source: str, local_env: Environment, local_stack: Any, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from finsight.cli.main import app

    out = tmp_path / f"{source}.json"
    fields = local_env.api_sources[source].credential_fields
    done = CliRunner().invoke(app, ["connectors", "config", "--env", "local", "--source", source, "--out", str(out)])
    config = json.loads(out.read_text())
    assert done.exit_code == 0 and config["secret_name"] == local_env.api_sources[source].secret
    assert (config["env"], config["source"]) == ("local", source) and not set(fields) & set(config)
    done = CliRunner().invoke(app, ["connectors", "config", "--source", source, "--resolve-secrets", "--out", str(out)])
    resolved = json.loads(out.read_text())
    assert done.exit_code == 0 and all(resolved[f] for f in fields) and oct(out.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("source", API_SOURCES)
def test_api_spec_check_discover(
    source: str, local_env: Environment, local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = local_env.api_sources[source]
    code, out = _verb(capsys, ["spec"], source)
    (spec,) = _of(out, "SPEC")
    props = spec["spec"]["connectionSpecification"]["properties"]
    assert code == 0 and {"base_url", "secret_name", "start_date", "end_date"} <= set(props)
    assert all(props[f]["airbyte_secret"] is True for f in api.credential_fields)
    config = _config_file(tmp_path, connector_config(local_env, source))
    code, out = _verb(capsys, ["check", "--config", config])
    assert code == 0 and _of(out, "CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"
    code, out = _verb(capsys, ["discover", "--config", config])
    streams = {s["name"]: s for s in _of(out, "CATALOG")[0]["catalog"]["streams"]}
    assert code == 0 and set(streams) == set(api.streams)
    for name, configured in api.streams.items():
        stream = streams[name]
        cursor, keys = (
            record_key(configured, configured.cursor),
            [record_key(configured, k) for k in configured.primary_key],
        )
        assert stream["default_cursor_field"] == cursor and stream["source_defined_primary_key"] == keys
        assert "incremental" in stream["supported_sync_modes"] and stream["source_defined_cursor"] is True
        for path in [cursor, *keys]:  # declared in the schema, as the catalog checks of airbyte-cdk want
            assert path[0] in stream["json_schema"]["properties"]


@pytest.mark.parametrize("source", API_SOURCES)
def test_api_wrong_credentials_fail_naming_the_source_without_the_secret(
    source: str, local_env: Environment, local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = {f: f"Wr0ng-{f}-7781" for f in local_env.api_sources[source].credential_fields}
    message = _failed_check(capsys, tmp_path, connector_config(local_env, source) | wrong)
    assert f"source {source!r}" in message
    assert not [v for v in wrong.values() if v in message]


@pytest.mark.parametrize("source", API_SOURCES)
def test_api_unreachable_host_fails_in_seconds_naming_the_source(
    source: str, local_env: Environment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused connection is FAILED at once, not after the OAuth refresh's 300 s of backoff (PayPal)."""
    message = _failed_check(capsys, tmp_path, connector_config(local_env, source) | {"base_url": "http://127.0.0.1:1"})
    assert message.startswith(f"source {source!r}: ") and "cannot reach 127.0.0.1:1" in message


@pytest.fixture(scope="module")
def fresh_api(local_env: Environment, local_stack: Any) -> Iterator[str]:
    """A mock payment-API server of its own (the stack's is shared): data up to now, so a mutation is newer."""
    secrets = ensure_secrets(local_env)
    creds = {name: _mock_credential(secrets[api.secret]) for name, api in local_env.api_sources.items()}
    limits = dict.fromkeys(local_env.api_sources, 500.0)
    app = create_app(
        creds, seed=11, scale=0.3, now=datetime.now(UTC), rate_limits=limits, sources=local_env.api_sources
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _api_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, config: dict[str, Any], stream: str, state: Any = None
) -> tuple[int, str]:
    path = _config_file(tmp_path, config)
    _, out = _verb(capsys, ["discover", "--config", path])
    (discovered,) = [s for s in _of(out, "CATALOG")[0]["catalog"]["streams"] if s["name"] == stream]
    configured = {
        "stream": discovered,
        "sync_mode": "incremental",
        "destination_sync_mode": "append",
        "cursor_field": discovered["default_cursor_field"],
        "primary_key": discovered["source_defined_primary_key"],
    }
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"streams": [configured]}))
    argv = ["read", "--config", path, "--catalog", str(catalog)]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps([state]))
        argv += ["--state", str(tmp_path / "state.json")]
    return _verb(capsys, argv)


def test_api_read_round_trips_state(
    local_env: Environment, fresh_api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """lookback 0: the second read starts at the state's cursor, so it emits the new charge and nothing older."""
    config = connector_config(local_env, CARD_SOURCE) | {"base_url": f"{fresh_api}/{CARD_SOURCE}", "lookback": "PT0M"}
    code, out = _api_read(capsys, tmp_path, config, "charges")
    first = [m["record"]["data"] for m in _of(out, "RECORD")]
    state = _of(out, "STATE")[-1]["state"]
    assert code == 0 and len(first) > 10 and state["stream"]["stream_descriptor"]["name"] == "charges"
    since = int(state["stream"]["stream_state"]["created"])
    assert since >= max(r["created"] for r in first)  # the state covers what was emitted
    resp = requests.post(f"{fresh_api}/_admin/mutate", json={"source": CARD_SOURCE}, timeout=5)
    new_charge = resp.json()["created"]["charges"]
    code, out = _api_read(capsys, tmp_path, config, "charges", state)
    second = [m["record"]["data"] for m in _of(out, "RECORD")]
    assert code == 0 and new_charge in [r["id"] for r in second]
    assert all(r["created"] >= since for r in second) and len(second) < len(first)


PAN = "4111111111111111"  # Luhn-valid test card number
PAN_SPACED = "4242 4242 4242 4242"


def test_api_read_never_prints_a_clear_pan(
    local_env: Environment, fresh_api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A card number in free-form metadata reaches stdout only as its token, as in the landed `_raw`."""
    config = connector_config(local_env, CARD_SOURCE, resolve_secrets=True) | {"base_url": f"{fresh_api}/{CARD_SOURCE}"}
    headers = {"Authorization": f"Bearer {config['api_key']}"}
    charges = requests.get(f"{config['base_url']}/v1/charges", params={"limit": 100}, headers=headers, timeout=5)
    charge = next(
        c for c in charges.json()["data"] if c["status"] == "succeeded" and c["amount_refunded"] < c["amount"]
    )
    note = f"card {PAN} / {PAN_SPACED}"
    resp = requests.post(
        f"{config['base_url']}/v1/refunds",
        data={"charge": charge["id"], "amount": 1, "metadata[note]": note},
        headers=headers,
        timeout=5,
    )
    refund = resp.json()["id"]
    code, out = _api_read(capsys, tmp_path, config, "refunds")
    assert code == 0 and PAN not in out and PAN_SPACED not in out
    _no_clear_pan(out)
    (planted,) = [m["record"]["data"] for m in _of(out, "RECORD") if m["record"]["data"]["id"] == refund]
    tokenizer = tokenizer_for(local_env)
    assert planted["metadata"]["note"] == f"card {tokenizer.token(PAN)} / {tokenizer.token(PAN_SPACED)}"


@pytest.mark.parametrize("source", (*PG_SOURCES, *API_SOURCES))
def test_every_source_reads_through_the_image_entrypoint(
    source: str, local_env: Environment, local_stack: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's "done when", per source: discover then read through connectors.__main__ (what the image runs),
    with the config `finsight connectors config` writes; records, a STATE, and no clear card number on stdout."""
    config = _config_file(tmp_path, connector_config(local_env, source))
    code, out = _verb(capsys, ["discover", "--config", config])
    stream = _of(out, "CATALOG")[0]["catalog"]["streams"][0]
    configured = {"stream": stream, "sync_mode": "full_refresh", "destination_sync_mode": "append"}
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"streams": [configured]}))
    code, out = _verb(capsys, ["read", "--config", config, "--catalog", str(catalog)])
    assert code == 0 and _of(out, "RECORD") and _of(out, "STATE"), out[-2000:]
    assert not [m for m in _of(out, "TRACE") if m["trace"]["type"] == "ERROR"]
    _no_clear_pan(out)
