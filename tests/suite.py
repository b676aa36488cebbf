"""`make test`: the stack tests and the stack-free tests as two pytest processes side by side.

The stack tests share one local stack and run in one process, in collection order. The stack-free modules (IaC
synth, checkov, workflows, config, cost, docs, SQL rendering, pure connector parts) need only the CPU, so they run
beside them; their output is printed once they end. Exit status: non-zero when either run failed.
With arguments (`make test PYTEST_ARGS=tests/merge`), one plain pytest run of those arguments.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

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


def main(argv: list[str]) -> int:
    pytest = [sys.executable, "-m", "pytest"]
    if any(not a.startswith("-") for a in argv):  # explicit test paths: run just those
        return subprocess.call([*pytest, *argv])
    free = [str(TESTS / p) for p in STACK_FREE]
    ignored = [f"--ignore={p}" for p in free]
    with tempfile.TemporaryFile("w+") as log:
        beside = subprocess.Popen([*pytest, *argv, *free], stdout=log, stderr=subprocess.STDOUT)
        stack_rc = subprocess.call([*pytest, *argv, *ignored, str(TESTS)])
        free_rc = beside.wait()
        log.seek(0)
        print("\n===== stack-free tests (ran beside the stack tests) =====", flush=True)
        sys.stdout.write(log.read())
    print(f"stack tests: exit {stack_rc}; stack-free tests: exit {free_rc}", flush=True)
    return stack_rc or free_rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
