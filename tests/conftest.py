"""Shared fixtures: the real local stack (PostgreSQL, moto, fakesnow, mock APIs) on the ports of local.yaml.

The stack is started once per test session when a test asks for it and stopped at the end if this session
started it, so `make test` leaves no process behind.

`make test` (tests/suite.py) runs the modules of STACK_FREE in a second pytest process beside the stack tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from finsight.config import Environment, load_environment
from finsight.local.stack import LocalStack
from tests.suite import is_stack_free


@pytest.fixture(scope="session")
def local_env() -> Environment:
    return load_environment("local")


@pytest.fixture(scope="session")
def local_stack(local_env: Environment) -> Iterator[LocalStack]:
    with LocalStack(local_env).used() as stack:
        yield stack


@pytest.fixture(scope="session")
def deployed_stack(local_env: Environment, local_stack: LocalStack) -> LocalStack:
    """The stack with the migrations deployed, as the hourly cycle ensures it (deploy_if_changed: nothing when the
    recorded fingerprint matches): a shard's stack is fresh, and its first tests may read the OPS tables before any
    test of theirs ran a cycle."""
    from finsight import deploy_fingerprint  # here, not at the top: the stack-free processes never import it

    deploy_fingerprint.deploy_if_changed(local_env)
    return local_stack


@pytest.fixture(autouse=True)
def _stack_free_modules_never_use_the_stack(request: pytest.FixtureRequest) -> None:
    """A module listed in STACK_FREE that asks for the stack would run beside the stack tests: refuse it."""
    if "local_stack" in request.fixturenames and is_stack_free(Path(str(request.node.path))):
        pytest.fail(f"{request.node.nodeid} uses the local stack: drop its module from STACK_FREE (tests/suite.py)")
