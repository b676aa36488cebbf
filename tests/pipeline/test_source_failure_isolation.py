"""One unreachable source (or one unreadable table) never stops the others, nor the load and merge of what landed;
the cycle reports the failure by name and is not `ok` (so `finsight run` exits non-zero)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg import sql

from connectors.landing.state import load_state
from finsight.config import Environment
from finsight.local.cycle import hourly_cycle
from finsight.local.stack import LocalStack

pytestmark = pytest.mark.stack
BROKEN = "risk"


@pytest.fixture
def broken_credentials(local_env: Environment, local_stack: LocalStack) -> Iterator[str]:
    """The source's connector role gets a password nobody knows (a rotation that went wrong)."""
    role = f"finsight_reader_{BROKEN}"
    with local_stack.postgres.admin_connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD 'rotated-elsewhere'").format(sql.Identifier(role)))
    yield role
    local_stack.up(seed_sources=False)  # re-applies the passwords held in Secrets Manager


def test_an_unreachable_source_fails_alone(local_env: Environment, local_stack: LocalStack, broken_credentials) -> None:
    table = local_env.table("risk.risk_assessments")
    watermark = load_state(local_env, table).get("cursor")
    summary = hourly_cycle(local_env)
    assert not summary.ok
    assert len(summary.extract_errors) == 1
    assert f"source {BROKEN!r}" in summary.extract_errors[0]
    assert "rotated-elsewhere" not in summary.extract_errors[0]
    assert {s.source for s in summary.sources} == {*local_env.postgres_sources, *local_env.api_sources} - {BROKEN}
    assert summary.dag is not None and summary.pipe is not None  # load and merge still ran for the others
    assert not summary.pipe.errors
    assert load_state(local_env, table).get("cursor") == watermark  # the failed source's watermark did not move


def test_an_unreadable_table_fails_alone_within_its_source(local_env: Environment, local_stack: LocalStack) -> None:
    with local_stack.admin_connect("ledger") as conn:
        conn.execute("REVOKE SELECT ON ledger_entries FROM finsight_reader_ledger")
    try:
        summary = hourly_cycle(local_env)
    finally:
        with local_stack.admin_connect("ledger") as conn:
            conn.execute("GRANT SELECT ON ledger_entries TO finsight_reader_ledger")
    assert not summary.ok
    assert len(summary.extract_errors) == 1
    assert "ledger.ledger_entries" in summary.extract_errors[0]
    assert "ledger.accounts" not in summary.extract_errors[0]
    assert {s.source for s in summary.sources} == {*local_env.postgres_sources, *local_env.api_sources} - {"ledger"}
