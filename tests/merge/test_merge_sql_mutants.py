"""The MERGE SQL mutants (tests/mutation/sql_mutants.py) in `make test`: each plausible wrong edit of merge.py's SQL
is compiled into a private copy of the module and must make its scenario of test_merge_batches.py fail.

The fast subset of mutation testing: one scenario per mutant, in-process (no pytest subprocess, no file written), so
a merge test weakened until a mutant survives goes red in the PR gate. A pattern that no longer occurs exactly once
in merge.py fails too: the code changed and the mutant must follow it.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from tests.merge import test_merge_batches as scenarios
from tests.merge.test_merge_batches import (  # noqa: F401 - the scenarios' session, and their tables dropped after
    _drop_tables,
    session,
)
from tests.mutation.sql_mutants import KILLED_BY, MUTANTS, TARGET

pytestmark = pytest.mark.stack

MERGE_PY = Path(__file__).resolve().parents[2] / TARGET


def _mutant_module(old: str, new: str) -> types.ModuleType:
    module = types.ModuleType("snowpark.merge_sql_mutant")
    module.__file__ = str(MERGE_PY)
    exec(compile(MERGE_PY.read_text().replace(old, new), str(MERGE_PY), "exec"), module.__dict__)  # noqa: S102
    return module


def test_every_mutant_names_its_scenario() -> None:
    assert {name for name, _, _ in MUTANTS} == set(KILLED_BY)
    assert all(callable(getattr(scenarios, test, None)) for test in KILLED_BY.values())


@pytest.mark.parametrize(("name", "old", "new"), MUTANTS, ids=[m[0] for m in MUTANTS])
def test_the_mutant_fails_its_scenario(
    session: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    old: str,
    new: str,
) -> None:
    assert MERGE_PY.read_text().count(old) == 1, f"{name}: pattern not found once in {TARGET}: update the mutant"
    monkeypatch.setattr(scenarios, "merge_table", _mutant_module(old, new).merge_table)
    with pytest.raises(AssertionError):
        getattr(scenarios, KILLED_BY[name])(session)
