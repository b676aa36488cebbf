"""The chaos session's guard (tests/chaos/conftest.py): scenarios run only on a stack as strict as production.

Each lenient setting is handed to the guard on a copy of the local environment and must be refused by name; the real
stack must pass it. Removing a check from `require_enforced_config` / `require_column_policies` turns these red.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from finsight.config import Environment
from finsight.local import column_policies
from finsight.local.stack import LocalStack
from tests.chaos.conftest import (
    pii_columns,
    require_column_policies,
    require_enforced_config,
    require_enforced_stack,
)

pytestmark = [pytest.mark.chaos, pytest.mark.chaos_fast]


def _lenient_local(env: Environment, **update: bool) -> Environment:
    assert env.local is not None
    return env.model_copy(update={"local": env.local.model_copy(update=update)})


def _without_tls(env: Environment) -> Environment:
    name, src = next(iter(env.postgres_sources.items()))
    assert src.connection is not None
    connection = src.connection.model_copy(update={"sslmode": "require"})
    sources = {**env.postgres_sources, name: src.model_copy(update={"connection": connection})}
    return env.model_copy(update={"postgres_sources": sources})


@pytest.mark.parametrize(
    ("lenient", "setting"),
    [
        (lambda env: _lenient_local(env, strict_iam=False), "local.strict_iam"),
        (lambda env: _lenient_local(env, strict_snowflake=False), "local.strict_snowflake"),
        (_without_tls, "connection.sslmode"),
    ],
    ids=["strict_iam", "strict_snowflake", "postgres_tls"],
)
def test_a_lenient_setting_is_refused_by_name(local_env: Environment, lenient, setting: str) -> None:
    require_enforced_config(local_env)  # the real configuration passes: the refusal below is the setting's
    with pytest.raises(pytest.fail.Exception, match=f"lenient stack: .*{setting}"):
        require_enforced_config(lenient(local_env))


def test_a_pii_column_without_its_masking_policy_is_refused(local_env: Environment, tmp_path: Path) -> None:
    columns = sorted(pii_columns(local_env))
    assert columns, "the catalog declares no pci: pii column: the guard would check nothing"
    state = tmp_path / column_policies.STATE_FILE
    attached: dict[str, dict[str, str]] = {}
    for qualified in columns:
        table, column = qualified.rsplit(".", 1)
        attached.setdefault(table, {})[column] = "GOVERNANCE.PII_MASK"
    state.write_text(json.dumps({"bodies": {}, "attached": attached}))
    require_column_policies(local_env, state)
    table, column = columns[-1].rsplit(".", 1)
    attached[table][column] = "GOVERNANCE.PAYLOAD_MASK"  # another policy is not the PII mask
    state.write_text(json.dumps({"bodies": {}, "attached": attached}))
    with pytest.raises(pytest.fail.Exception, match=f"column policies: .*{re.escape(columns[-1])}"):
        require_column_policies(local_env, state)
    with pytest.raises(pytest.fail.Exception, match=r"column policies: .* is missing"):
        require_column_policies(local_env, tmp_path / "none.json")


@pytest.mark.stack
def test_the_running_stack_passes_the_guard(caught_up: Environment, local_stack: LocalStack) -> None:
    require_enforced_stack(caught_up, local_stack)
    require_column_policies(caught_up, local_stack.state_dir / "fakesnow" / column_policies.STATE_FILE)
