"""The cost tests price MERGE from a pinned copy of `make bench`'s merge figures (bench/results.json of 2026-12-06:
10.16 s for 1 M rows into 5 M), without its extraction rate (connector minutes from config), so hand-computed
figures do not move each time the benchmark is rerun."""

from __future__ import annotations

from pathlib import Path

import pytest

from finsight.cost import quantities as q

PINNED_BENCH = Path(__file__).with_name("pinned_bench_merge.json")


@pytest.fixture(autouse=True)
def _pinned_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(q.BENCH_RESULTS_VARIABLE, str(PINNED_BENCH))
    assert q.measured_extract_rows_per_second() is None
