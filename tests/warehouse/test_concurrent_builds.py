"""Two builds of one mart at once (OPS.BACKFILL called while the hourly graph runs): both succeed, and the mart
holds exactly one build's rows.

Snowflake serializes the two builders' DELETEs on the table lock; DuckDB (fakesnow) is optimistic and aborts the
later writer with "TransactionContext Error: Conflict on tuple deletion!", whose whole transaction is rolled back:
BUILD_MART then builds again. Without that, one of the two builds below fails.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from finsight import deploy_fingerprint, marts, warehouse
from finsight.config import Environment
from finsight.local.cycle import hourly_cycle
from finsight.local.stack import LocalStack
from snowpark.marts_build import build_mart
from tasks.runner import sync_catalog
from tests.warehouse.helpers import sf

pytestmark = pytest.mark.stack
MART = "daily_revenue"


@pytest.fixture
def sessions(local_env: Environment, local_stack: LocalStack) -> Iterator[list[object]]:
    deploy_fingerprint.deploy_if_changed(local_env)
    opened = [warehouse.snowpark_session(local_env) for _ in range(2)]
    try:
        sync_catalog(local_env, opened[0])
        yield opened
    finally:
        for s in opened:
            s.close()


def _rows(env: Environment) -> list[tuple]:
    (mart,) = [m for m in marts.marts() if m.name == MART]
    table = f"{env.snowflake.schemas['marts']}.{mart.table_name}"
    return sorted(sf(env, f"SELECT {', '.join(mart.column_names())} FROM {table}"), key=repr)


def _race(sessions: list[object], config: str) -> dict[int, object]:
    """Each session builds the mart at the same moment; its mode, or the error it raised."""
    barrier = threading.Barrier(len(sessions))
    outcomes: dict[int, object] = {}

    def build(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = json.loads(build_mart(sessions[i], MART, f"test-concurrent-build-{i}", config))["mode"]
        except Exception as exc:  # the caller's assertion shows it
            outcomes[i] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=build, args=(i,)) for i in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_two_builds_of_one_mart_at_once_both_succeed(local_env: Environment, sessions: list[object]) -> None:
    full = json.dumps({"full_refresh_marts": [MART]})  # every partition: the widest overlap of the two writers
    build_mart(sessions[0], MART, "test-concurrent-build", full)
    if not _rows(local_env):  # a fresh stack: something to race on first (two empty DELETEs never conflict)
        assert hourly_cycle(local_env).ok
        build_mart(sessions[0], MART, "test-concurrent-build", full)
    before = _rows(local_env)
    assert before
    for _ in range(2):
        outcomes = _race(sessions, full)
        assert outcomes == dict.fromkeys(range(len(sessions)), "full"), outcomes
    assert _rows(local_env) == before  # one build's rows, none twice, none lost
