"""Chaos suite fixtures: the local stack caught up once, a scenario recorder, the report at the end.

`make chaos` runs every scenario (FINSIGHT_CHAOS=all) and rewrites docs/reliability.md (FINSIGHT_CHAOS_REPORT=1);
`make test` runs only the scenarios marked `chaos_fast` and leaves the checkout untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from finsight.config import Environment
from finsight.local.cycle import hourly_cycle
from finsight.local.stack import LocalStack
from tests.chaos.harness import RESULTS, Scenario, write_report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("FINSIGHT_CHAOS") == "all":
        return
    skip = pytest.mark.skip(reason="slow chaos scenario: run the whole suite with `make chaos`")
    for item in items:
        if item.get_closest_marker("chaos") and not item.get_closest_marker("chaos_fast"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def caught_up(local_env: Environment, local_stack: LocalStack) -> Iterator[Environment]:
    """One ordinary cycle first, so every scenario starts from CURATED equal to the sources; the report at the end."""
    hourly_cycle(local_env)
    yield local_env
    write_report(RESULTS)


@pytest.fixture
def scenario(caught_up: Environment) -> Callable[[str, str, str], Scenario]:
    return Scenario
