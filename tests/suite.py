"""`make test`: three pytest processes side by side: two shards of stack tests, and the stack-free tests followed by a
third shard of stack tests.

Stack tests run in collection order within their shard. The first shard uses the stack on the ports of local.yaml
(`.ci/run` starts it); each other shard (SHARDS) gets a stack of its own, moved by its port offset and into its state
dir, which its session starts and stops. The stack tests wait on servers and subprocesses as much as they compute,
so the stack-free modules (IaC synth, checkov, workflows, config, cost, docs, SQL rendering, pure connector parts),
which need only the CPU, run first in the third slot, and its stack shard starts when they are done. Output is
printed run by run once each ends. Exit status: non-zero when any run failed.
With arguments (`make test PYTEST_ARGS=tests/merge`), one plain pytest run of those arguments.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Shard:
    """Stack-test folders run on a stack of their own: ports moved by `offset`, files in `state_dir`."""

    folders: tuple[str, ...]
    offset: int
    state_dir: str

    def environment(self) -> dict[str, str]:
        base = int(os.environ.get(PORT_OFFSET_VARIABLE, "0") or 0)
        return os.environ | {PORT_OFFSET_VARIABLE: str(base + self.offset), STATE_DIR_VARIABLE: self.state_dir}


# Stack-test folders that run on a stack of their own; the rest run on the first. Whole folders, so a module's
# neighbours keep their order. Balanced by the wall time of each folder (`--durations` in the CI log); the third
# starts once the stack-free tests are done (~7 of the first shard's ~15 minutes).
SECOND_STACK = Shard(("merge", "quality", "sql", "warehouse"), 1000, ".local-shard2")
THIRD_STACK = Shard(("ops", "pipeline"), 1500, ".local-shard3")
SHARDS = (SECOND_STACK, THIRD_STACK)
DURATIONS = "--durations=15"  # the slowest tests of each run, for rebalancing the shards


def _print_log(title: str, log: IO[str]) -> None:
    log.seek(0)
    print(f"\n===== {title} =====", flush=True)
    sys.stdout.write(log.read())


def stop_shard_stacks() -> int:
    """`python -m tests.suite --stop-shard-stacks`: .ci/run's exit trap, should a shard's session die mid-run."""
    finsight = Path(sys.executable).with_name("finsight")
    return max(subprocess.call([str(finsight), "local", "down"], env=shard.environment()) for shard in SHARDS)


def main(argv: list[str]) -> int:
    if argv == ["--stop-shard-stacks"]:
        return stop_shard_stacks()
    pytest = [sys.executable, "-m", "pytest"]
    if any(not a.startswith("-") for a in argv):  # explicit test paths: run just those
        return subprocess.call([*pytest, *argv])
    free = [str(TESTS / p) for p in STACK_FREE]
    not_free = [f"--ignore={p}" for p in free]
    on_shards = [str(TESTS / f) for shard in SHARDS for f in shard.folders]

    def shard_run(shard: Shard, log: IO[str]) -> subprocess.Popen[bytes]:
        folders = [str(TESTS / f) for f in shard.folders]
        return subprocess.Popen(
            [*pytest, DURATIONS, *argv, *not_free, *folders],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=shard.environment(),
        )

    with (
        tempfile.TemporaryFile("w+") as free_log,
        tempfile.TemporaryFile("w+") as second_log,
        tempfile.TemporaryFile("w+") as third_log,
    ):
        beside = subprocess.Popen([*pytest, *argv, *free], stdout=free_log, stderr=subprocess.STDOUT)
        second_run = shard_run(SECOND_STACK, second_log)
        first_run = subprocess.Popen(
            [*pytest, DURATIONS, *argv, *not_free, *(f"--ignore={p}" for p in on_shards), str(TESTS)]
        )
        free_rc = beside.wait()  # the stack-free tests need only the CPU: the third stack starts after them
        third_rc = shard_run(THIRD_STACK, third_log).wait()
        first_rc, second_rc = first_run.wait(), second_run.wait()
        _print_log(f"stack tests, second stack ({', '.join(SECOND_STACK.folders)})", second_log)
        _print_log("stack-free tests (ran beside the stack tests)", free_log)
        _print_log(f"stack tests, third stack after the stack-free tests ({', '.join(THIRD_STACK.folders)})", third_log)
    print(
        f"stack tests: exit {first_rc}, {second_rc} (second stack), {third_rc} (third stack); "
        f"stack-free tests: exit {free_rc}",
        flush=True,
    )
    return first_rc or second_rc or third_rc or free_rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
