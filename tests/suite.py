"""`make test`: two shards of stack tests and the stack-free tests as three pytest processes side by side.

Stack tests run in collection order within their shard. The first shard uses the stack on the ports of local.yaml
(`.ci/run` starts it); the second (SECOND_STACK) gets a stack of its own, moved by SECOND_STACK_OFFSET ports and
into SECOND_STACK_STATE_DIR, which its session starts and stops. The stack tests wait on servers and subprocesses
as much as they compute, so two shards keep both cores busy. The stack-free modules (IaC synth, checkov, workflows,
config, cost, docs, SQL rendering, pure connector parts) need only the CPU. Output is printed shard by shard once
each ends. Exit status: non-zero when any run failed.
With arguments (`make test PYTEST_ARGS=tests/merge`), one plain pytest run of those arguments.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

from finsight.config.loader import PORT_OFFSET_VARIABLE, STATE_DIR_VARIABLE

TESTS = Path(__file__).parent
# Relative to tests/. A module here that asks for the stack fails at once (tests/conftest.py).
STACK_FREE = (
    "cicd",
    "conformance",
    "config",
    "cost",
    "docs",
    "infra",
    "connectors/apis/test_catalog.py",
    "connectors/apis/test_json_properties.py",
    "connectors/test_dockerfile.py",
    "connectors/test_entrypoint.py",
    "connectors/test_pci.py",
    "connectors/test_pci_properties.py",
    "connectors/test_windows.py",
    "local/test_fakesnow_transform_chain.py",
    "local/test_parse_handoff.py",
    "ops/test_cli_startup.py",
    "ops/test_ownership.py",
    "ops/test_stack_down.py",
    "sql/test_dag.py",
    "sql/test_dag_safety.py",
    "sql/test_sql_lint.py",
    "warehouse/test_quarantine_handler.py",
)


def is_stack_free(path: Path) -> bool:
    relative = path.resolve().relative_to(TESTS.resolve()).as_posix()
    return any(relative == p or relative.startswith(f"{p}/") for p in STACK_FREE)


# Stack-test folders that run on the second stack, in this order; the rest run on the first. Whole folders, so a
# module's neighbours keep their order. Balanced by the wall time of each folder (`--durations` in the CI log);
# `local` last, on a stack the others have deployed and run cycles on, as on the first.
SECOND_STACK = ("merge", "ops", "quality", "sql", "warehouse", "local")
SECOND_STACK_OFFSET = 1000
SECOND_STACK_STATE_DIR = ".local-shard2"
DURATIONS = "--durations=15"  # the slowest tests of each run, for rebalancing the shards


def _second_stack_environment() -> dict[str, str]:
    base = int(os.environ.get(PORT_OFFSET_VARIABLE, "0") or 0)
    return os.environ | {
        PORT_OFFSET_VARIABLE: str(base + SECOND_STACK_OFFSET),
        STATE_DIR_VARIABLE: SECOND_STACK_STATE_DIR,
    }


def _print_log(title: str, log: IO[str]) -> None:
    log.seek(0)
    print(f"\n===== {title} =====", flush=True)
    sys.stdout.write(log.read())


def stop_second_stack() -> int:
    """`python -m tests.suite --stop-second-stack`: .ci/run's exit trap, should a shard's session die mid-run."""
    finsight = Path(sys.executable).with_name("finsight")
    return subprocess.call([str(finsight), "local", "down"], env=_second_stack_environment())


def main(argv: list[str]) -> int:
    if argv == ["--stop-second-stack"]:
        return stop_second_stack()
    pytest = [sys.executable, "-m", "pytest"]
    if any(not a.startswith("-") for a in argv):  # explicit test paths: run just those
        return subprocess.call([*pytest, *argv])
    free = [str(TESTS / p) for p in STACK_FREE]
    second = [str(TESTS / p) for p in SECOND_STACK]
    not_free = [f"--ignore={p}" for p in free]
    with tempfile.TemporaryFile("w+") as free_log, tempfile.TemporaryFile("w+") as second_log:
        beside = subprocess.Popen([*pytest, *argv, *free], stdout=free_log, stderr=subprocess.STDOUT)
        second_run = subprocess.Popen(
            [*pytest, DURATIONS, *argv, *not_free, *second],
            stdout=second_log,
            stderr=subprocess.STDOUT,
            env=_second_stack_environment(),
        )
        first_rc = subprocess.call(
            [*pytest, DURATIONS, *argv, *not_free, *(f"--ignore={p}" for p in second), str(TESTS)]
        )
        second_rc = second_run.wait()
        free_rc = beside.wait()
        _print_log(f"stack tests, second stack ({', '.join(SECOND_STACK)})", second_log)
        _print_log("stack-free tests (ran beside the stack tests)", free_log)
    print(f"stack tests: exit {first_rc} and {second_rc} (second stack); stack-free tests: exit {free_rc}", flush=True)
    return first_rc or second_rc or free_rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
