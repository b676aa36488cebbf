"""PostgreSQL TLS in the config: verify-full everywhere against a CA file the config names.

Outside local the CA is the RDS global bundle the connector image ships (tests/connectors/test_dockerfile.py checks
the path); locally it is the CA `finsight local up` creates under the state dir. Anything weaker is refused by
config validation, naming the file, the environment and the field.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from finsight.config import ENVIRONMENTS, ConfigError, load_environment, repo_root

Change = Callable[[dict[str, Any]], None]


@pytest.fixture
def env_copy(tmp_path: Path) -> Path:
    target = tmp_path / "environments"
    shutil.copytree(repo_root() / "environments", target)
    return target


def _edit(path: Path, change: Change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_every_source_verifies_the_full_chain_and_host_against_a_configured_ca(name: str) -> None:
    env = load_environment(name)
    for src in env.postgres_sources.values():
        assert src.connection is not None
        assert src.connection.sslmode == "verify-full"
        assert src.connection.sslrootcert
        if name != "local":  # a file in the connector image
            assert Path(src.connection.sslrootcert).is_absolute()


def test_local_names_the_ca_under_its_own_state_dir_relative_to_the_repository(tmp_path: Path) -> None:
    """Like local.state_dir: a copy of environments/ used against this checkout's stack finds this stack's CA."""
    env = load_environment("local")
    assert env.local is not None
    cafiles = {s.connection.ca_file(tmp_path) for s in env.postgres_sources.values() if s.connection}
    assert cafiles == {tmp_path / env.local.state_dir / "tls" / "ca.crt"}


def _drop_ca(d: dict[str, Any]) -> None:
    d["postgres_defaults"].pop("sslrootcert")


@pytest.mark.parametrize(
    ("env", "file", "change", "message"),
    [
        # below verify-full outside local
        ("prod", "prod.yaml", lambda d: d["postgres_defaults"].update(sslmode="require"),
         "prod: postgres_sources.merchants.connection.sslmode must be verify-full outside local"),
        ("staging", "staging.yaml", lambda d: d["postgres_defaults"].update(sslmode="disable"),
         "staging: postgres_sources.merchants.connection.sslmode must be verify-full"),
        ("dev", "dev.yaml", lambda d: d.update(postgres_sources={"ledger": {"connection": {"sslmode": "require"}}}),
         "dev: postgres_sources.ledger.connection.sslmode must be verify-full"),
        # no CA: libpq would fall back to ~/.postgresql/root.crt
        ("prod", "base.yaml", _drop_ca, ".connection.sslrootcert (or postgres_defaults.sslrootcert) is required"),
        # a CA path that is not a file in the image
        ("dev", "dev.yaml", lambda d: d["postgres_defaults"].update(sslrootcert="certs/rds.pem"),
         "dev: postgres_sources.merchants.connection.sslrootcert must be an absolute path"),
        # local without its CA line inherits the RDS bundle path: refused, the stack would not create it there
        ("local", "local.yaml", _drop_ca, "local: postgres_sources.merchants.connection.sslrootcert"),
        ("local", "local.yaml", lambda d: d["postgres_defaults"].update(sslrootcert="certs/ca.pem"),
         "must be a file under local.state_dir (.local)"),
    ],
)  # fmt: skip
def test_weaker_tls_is_refused_naming_env_and_field(
    env_copy: Path, env: str, file: str, change: Change, message: str
) -> None:
    _edit(env_copy / file, change)
    with pytest.raises(ConfigError) as err:
        load_environment(env, env_copy)
    assert message in str(err.value)
    assert str(env_copy) in str(err.value)  # and the file to fix
    assert f"{env}: postgres_sources." in str(err.value)
