"""Environment files: all four validate; a broken copy fails naming the file and the field, exit code 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finsight.config import ENVIRONMENTS, ConfigError, load_environment, repo_root

FINSIGHT = str(Path(sys.executable).with_name("finsight"))


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_every_environment_validates(name: str) -> None:
    env = load_environment(name)
    assert len(env.postgres_sources) == 12
    assert len(env.api_sources) == 4
    assert env.retention.raw_days == 180 and env.retention.curated_years == 7
    for src in env.postgres_sources.values():
        assert src.connection is not None and src.connection.secret.startswith(f"finsight/{name}/")


def test_names_are_derived_once() -> None:
    env = load_environment("prod")
    payments = env.table("payments.payments")
    assert payments.raw_name == "PAYMENTS__PAYMENTS"
    assert env.snowflake.warehouse_name("load") == "FINSIGHT_PROD_LOAD_WH"
    landed = payments.landed_columns()
    assert "card_number" not in landed and {"card_number_token", "card_number_last4"} <= set(landed)


def test_unknown_table_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"known tables: merchants\.merchants"):
        load_environment("prod").table("payments.nope")


@pytest.fixture
def env_copy(tmp_path: Path) -> Path:
    target = tmp_path / "environments"
    shutil.copytree(repo_root() / "environments", target)
    return target


def _edit(path: Path, change: callable) -> None:  # type: ignore[valid-type]
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("file", "change", "field", "message"),
    [
        ("prod.yaml", lambda d: d["snowflake"]["warehouses"]["load"].update(size="HUGE"),
         "snowflake.warehouses.load.size", "XSMALL"),
        ("prod.yaml", lambda d: d.update(colour="blue"), "colour", "Extra inputs are not permitted"),
        ("prod.yaml", lambda d: d["postgres_defaults"].update(sslmode="disable"), "", "verify-full"),
        ("base.yaml", lambda d: d["postgres_sources"]["payments"]["tables"]["payments"].update(cursor="nope"),
         "postgres_sources.payments.tables.payments", "key column 'nope'"),
        ("base.yaml", lambda d: d["postgres_sources"]["refunds"]["tables"]["refunds"]["columns"]["payment_id"].update(
            references="payments.payments.missing"), "postgres_sources.refunds.tables.refunds.columns.payment_id",
         "does not name an existing column"),
    ],
)  # fmt: skip
def test_broken_copy_names_file_and_field(env_copy: Path, file: str, change, field: str, message: str) -> None:
    _edit(env_copy / file, change)
    with pytest.raises(ConfigError) as err:
        load_environment("prod", env_copy)
    text = str(err.value)
    assert message in text
    assert field in text
    if field:
        assert f"{env_copy / file}: field '{field}" in text or str(env_copy) in text


def test_cli_validate_exits_2_with_the_field(env_copy: Path) -> None:
    _edit(env_copy / "prod.yaml", lambda d: d["connectors"].update(cpu=3000))
    proc = subprocess.run(
        [FINSIGHT, "config", "validate", "--env", "prod", "--dir", str(env_copy)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "prod.yaml: field 'connectors.cpu'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_validate_all_passes() -> None:
    proc = subprocess.run([FINSIGHT, "config", "validate", "--all"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": ok") == 4


def test_yaml_syntax_error_names_the_file(env_copy: Path) -> None:
    (env_copy / "dev.yaml").write_text("name: dev\nsnowflake: [unclosed\n")
    with pytest.raises(ConfigError, match=r"dev\.yaml: not valid YAML"):
        load_environment("dev", env_copy)


def test_a_second_local_stack_moves_ports_and_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's second shard (tests/suite.py) runs beside the first: other ports, other state directory, and
    every derived address follows (the connection templates read the moved ports)."""
    from finsight.config.loader import PORT_OFFSET_VARIABLE, STATE_DIR_VARIABLE

    monkeypatch.delenv(PORT_OFFSET_VARIABLE, raising=False)
    monkeypatch.delenv(STATE_DIR_VARIABLE, raising=False)
    first = load_environment("local")
    monkeypatch.setenv(PORT_OFFSET_VARIABLE, "1000")
    monkeypatch.setenv(STATE_DIR_VARIABLE, ".local-shard2")
    second = load_environment("local")
    assert first.local is not None and second.local is not None
    assert second.local.state_dir == ".local-shard2" != first.local.state_dir
    assert second.local.postgres_port == first.local.postgres_port + 1000
    assert second.aws.endpoint_url == f"http://127.0.0.1:{first.local.moto_port + 1000}"
    assert load_environment("prod").local is None  # only the local environment has a stack to move
