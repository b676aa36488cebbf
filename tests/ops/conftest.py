"""Ops tests that use the stack read the tables the migrations create; on a shard's fresh stack they may run first."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _warehouse_deployed(request: pytest.FixtureRequest) -> None:
    if "local_stack" in request.fixturenames:  # the stack-free ops modules never ask for the stack
        request.getfixturevalue("deployed_stack")
