"""`finsight local up|down|status` on a second, isolated stack (own ports and state dir): twice, and clean."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finsight.config import load_environment, repo_root
from finsight.local.postgres import LocalPostgres
from finsight.local.process import pid_alive, port_open
from finsight.local.stack import LocalStack

FINSIGHT = str(Path(sys.executable).with_name("finsight"))


def _free_ports(n: int) -> list[int]:
    """n consecutive free ports below Linux's ephemeral range (32768+), so no outgoing connection can take them."""
    for base in random.sample(range(20_000, 32_000, 10), 50):
        ports = list(range(base, base + n))
        if all(_bindable(p) for p in ports):
            return ports
    raise RuntimeError("no free block of ports between 20000 and 32000")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is still free for a server
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def isolated_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # under /tmp with o+x parents: PostgreSQL runs as the `postgres` user when we are root
    root = Path(tmp_path_factory.mktemp("stack", numbered=True))
    for p in [root, *root.parents]:
        if str(p).startswith("/tmp/"):
            os.chmod(p, 0o755)
    shutil.copytree(repo_root() / "environments", root / "environments")
    local = root / "environments" / "local.yaml"
    data = yaml.safe_load(local.read_text())
    port_keys = [k for k in data["local"] if k.endswith("_port")]
    data["local"].update(zip(port_keys, _free_ports(len(port_keys)), strict=True))
    data["local"]["scale"] = 0.02
    local.write_text(yaml.safe_dump(data))
    return root


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FINSIGHT, "local", *args], capture_output=True, text=True, env={**os.environ, "FINSIGHT_ROOT": str(root)},
        timeout=300,
    )  # fmt: skip


def test_up_down_twice_leaves_nothing_running(isolated_root: Path) -> None:
    env = load_environment("local", isolated_root / "environments")
    stack = LocalStack(env, isolated_root)
    try:
        first = _cli(isolated_root, "up")
        assert first.returncode == 0, first.stderr
        assert "started: moto, postgres, fakesnow, mock-apis" in first.stdout
        second = _cli(isolated_root, "up")
        assert second.returncode == 0 and "already running" in second.stdout
        status = _cli(isolated_root, "status")
        assert status.returncode == 0 and status.stdout.count(" up ") == 4
        pids = [s.pid for s in stack.status() if s.pid]
        assert len(pids) == 3
        logs = Path(isolated_root, env.local.state_dir, "logs")
        assert all((logs / f"{n}.log").exists() for n in ("moto", "fakesnow", "mock-apis"))

        down = _cli(isolated_root, "down")
        assert down.returncode == 0 and "stopped: mock-apis, fakesnow, moto, postgres" in down.stdout
        assert _cli(isolated_root, "down").stdout.strip() == "nothing was running"
        assert _cli(isolated_root, "status").returncode == 1
        assert not any(pid_alive(p) for p in pids)
        ports = [env.local.postgres_port, env.local.moto_port, env.local.fakesnow_port, env.local.mock_api_port]
        assert not any(port_open(p) for p in ports)

        # and once more from cold: data survives in .local (PostgreSQL cluster, fakesnow files)
        assert _cli(isolated_root, "up").returncode == 0
        with stack.admin_connect("merchants") as conn:
            assert conn.execute("SELECT COUNT(*) FROM merchants").fetchone()[0] > 0
    finally:
        stack.down()
    assert not any(port_open(p) for p in ports)


def test_a_port_taken_by_someone_else_is_reported(isolated_root: Path) -> None:
    env = load_environment("local", isolated_root / "environments")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", env.local.moto_port))
        squatter.listen()
        result = _cli(isolated_root, "up", "--no-seed")
    assert result.returncode == 1
    assert f"port {env.local.moto_port} is taken" in result.stderr
    LocalStack(env, isolated_root).down()


def test_a_stack_from_before_tls_upgrades_on_up(isolated_root: Path) -> None:
    """A .local cluster started by the pre-TLS code (no ssl, initdb's pg_hba) is restarted serving TLS, once."""
    env = load_environment("local", isolated_root / "environments")
    stack = LocalStack(env, isolated_root)
    before_tls = LocalPostgres(stack.postgres.root, stack.postgres.port)  # what `local up` used to start
    try:
        before_tls.start()
        assert not before_tls.serving_tls()
        assert stack.postgres.start() is True  # restarted, now with TLS and our pg_hba
        assert stack.postgres.serving_tls()
        server_cert = (stack.postgres.tls_dir / "server.crt").read_bytes()
        assert stack.postgres.start() is False  # idempotent: running, nothing reissued
        assert (stack.postgres.tls_dir / "server.crt").read_bytes() == server_cert
    finally:
        stack.postgres.stop()
