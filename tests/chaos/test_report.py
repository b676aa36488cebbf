"""The reliability report and the fault proxy's bookkeeping (pure: no stack)."""

from __future__ import annotations

from tests.chaos.fault_proxy import FaultPlan
from tests.chaos.harness import Outcome, render


def _outcome(name: str, seconds: float, lost: int = 0) -> Outcome:
    return Outcome(name, "fault", "recovery", 100, lost, 0, 0, seconds)


def test_a_partial_run_keeps_the_other_scenarios_rows() -> None:
    first = render([_outcome("b scenario", 10), _outcome("a scenario", 20)])
    second = render([_outcome("b scenario", 30)], first)
    rows = [line for line in second.splitlines() if line.startswith("| ") and "scenario |" not in line[:12]]
    assert [r.split(" | ")[0] for r in rows] == ["| a scenario", "| b scenario"]  # sorted, none lost, none doubled
    assert rows[1].endswith("| 30 |") and rows[0].endswith("| 20 |")


def test_the_proxy_faults_exactly_every_nth_s3_write() -> None:
    plan = FaultPlan("error_500", every=3)
    hits = [plan.decide("PUT", f"/bucket/key-{i}") for i in range(9)]
    assert hits == [False, False, True] * 3 and plan.injected == 3
    # Secrets Manager / KMS / SQS calls (POST /) and reads pass untouched
    assert not any(plan.decide(m, p) for m, p in [("POST", "/"), ("GET", "/bucket/key"), ("POST", "/?Action=x")])
    parts = FaultPlan("slow", every=1, only_multipart_parts=True)
    assert not parts.decide("PUT", "/bucket/key") and parts.decide("PUT", "/bucket/key?partNumber=1&uploadId=u")
    assert parts.part_requests == 1


def test_the_proxy_holds_writes_until_released_and_none_after() -> None:
    plan = FaultPlan("hold", every=1)
    assert plan.decide("PUT", "/bucket/raw/a.parquet") and plan.decide("POST", "/bucket/raw/b?uploads")
    assert not plan.decide("GET", "/bucket/state/x.json") and not plan.decide("POST", "/")  # reads, other APIs pass
    plan.released.set()
    assert not plan.decide("PUT", "/bucket/raw/c.parquet") and plan.injected == 2
