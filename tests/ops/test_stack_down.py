"""With the local stack down, every command that needs it answers the same one line and exits 1 (no traceback).

Runs against an offset whose ports nothing listens on: no stack is needed (or touched)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from finsight.cli.errors import STACK_DOWN
from finsight.config import load_environment, repo_root
from finsight.config.loader import STATE_DIR_VARIABLE
from finsight.local.process import port_open

FINSIGHT = Path(sys.executable).with_name("finsight")
COMMANDS = [
    ["status"], ["slo"], ["alerts"], ["dag", "history"], ["dag", "task-history"], ["batches", "list"],
    ["quarantine", "list"], ["reconcile"], ["load"], ["extract", "--source", "payments"], ["local", "verify"],
    ["dq"], ["dashboard"], ["migrate"],
]  # fmt: skip
# `finsight run` is not here: it starts the stack itself (make run)


def _free_offset(monkeypatch: pytest.MonkeyPatch) -> str:
    for offset in range(1900, 3000, 37):
        monkeypatch.setenv("FINSIGHT_LOCAL_PORT_OFFSET", str(offset))
        local = load_environment("local").local
        assert local is not None
        if not any(port_open(p) for p in (local.postgres_port, local.moto_port, local.fakesnow_port)):
            return str(offset)
    pytest.skip("no free port offset")


def test_every_command_says_the_stack_is_down_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "FINSIGHT_LOCAL_PORT_OFFSET": _free_offset(monkeypatch), "NO_COLOR": "1", "COLUMNS": "200"}
    # a state dir no stack was ever brought up in: commands that need its credentials before any connection
    # (extract reads its secret first) must say the same one line
    env[STATE_DIR_VARIABLE] = ".local-test-never-up"
    assert not (repo_root() / env[STATE_DIR_VARIABLE]).exists()

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        argv = [str(FINSIGHT), *args] + ([] if args[0] == "local" else ["--env", "local"])
        return subprocess.run(argv, cwd=repo_root(), env=env, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, COMMANDS))
    for args, result in zip(COMMANDS, results, strict=True):
        where = f"finsight {' '.join(args)}"
        assert result.returncode == 1, f"{where}: exit {result.returncode}\n{result.stderr[-600:]}"
        assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, f"{where}: a traceback"
        assert STACK_DOWN in result.stderr, f"{where}: {result.stderr[-600:]}"
