"""Shared fixtures: the real local stack (PostgreSQL, moto, fakesnow, mock APIs) on the ports of local.yaml.

The stack is started once per test session when a test asks for it and stopped at the end if this session
started it, so `make test` leaves no process behind.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from finsight.config import Environment, load_environment
from finsight.local.stack import LocalStack


@pytest.fixture(scope="session")
def local_env() -> Environment:
    return load_environment("local")


@pytest.fixture(scope="session")
def local_stack(local_env: Environment) -> Iterator[LocalStack]:
    stack = LocalStack(local_env)
    started = stack.up()
    yield stack
    if started:
        stack.down()
