"""Faults between the connector and RAW: S3 answering 500 / 503 / throttling / slowly, the same S3 notification
delivered twice, files (and whole batches) delivered out of order, a corrupt file among good ones.

Each scenario ends with the platform's own reconciliation: 0 lost, 0 duplicated, 0 stale.
"""

from __future__ import annotations

import json

import pytest

from connectors.run import extract_source
from finsight.aws import client
from finsight.config import Environment
from finsight.local.graph import on_landed
from finsight.local.stack import LocalStack
from tests.chaos.fault_proxy import FaultPlan, S3FaultProxy
from tests.chaos.harness import deliver_events, raw_rows, take_queued_events, touch, with_s3_endpoint
from tests.warehouse.helpers import last_run_detail
from tests.warehouse.test_load_faults import _cleanup, _put_corrupt, alerts  # noqa: F401 - `alerts` is a fixture

pytestmark = [pytest.mark.stack, pytest.mark.chaos, pytest.mark.timeout(420)]
TABLE = "payments.payments"


@pytest.mark.parametrize(
    ("kind", "every"),
    [
        pytest.param("error_500", 2, id="500"),
        pytest.param("slow_down_503", 2, id="503-slowdown", marks=pytest.mark.chaos_fast),
        pytest.param("throttle_503", 3, id="503-unavailable"),
        pytest.param("slow", 2, id="slow"),
    ],
)
def test_s3_misbehaving_during_landing(
    kind: str, every: int, scenario, local_env: Environment, local_stack: LocalStack
) -> None:
    s = scenario(
        f"S3 {kind.replace('_', ' ')} while landing",
        f"1 in {every} S3 PUT/POST answered {kind} (loopback proxy in front of moto)",
        "botocore retries (adaptive, 8 attempts); load + graph",
    )
    touch(local_stack, local_env, TABLE, 300)
    plan = FaultPlan(kind, every=every, delay_s=1.5)  # type: ignore[arg-type]
    s.fault()
    with S3FaultProxy(local_env.local.moto_port, plan) as proxy:  # type: ignore[union-attr]
        run = extract_source(with_s3_endpoint(local_env, proxy.url), "payments")
    assert plan.injected >= 1, "the proxy injected no fault: the scenario proved nothing"
    landed = {b.table: b for b in run.batches}
    assert landed[TABLE].rows >= 300 and landed[TABLE].manifest_key
    pipe, dag = on_landed(local_env)
    assert not pipe.errors and dag is not None and dag.state == "SUCCEEDED"
    assert raw_rows(local_env, TABLE, landed[TABLE].batch_id) == landed[TABLE].rows  # a retried PUT landed once
    s.verify(local_env)


@pytest.mark.chaos_fast
def test_the_same_notification_delivered_twice(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    s = scenario(
        "S3 notification delivered twice",
        "every S3 event of a batch queued twice",
        "COPY load history skips the second copy",
    )
    touch(local_stack, local_env, "merchants.merchants", 40)
    batch = next(b for b in extract_source(local_env, "merchants").batches if b.table == "merchants.merchants")
    s.fault()
    events = take_queued_events(local_env)
    assert events
    deliver_events(local_env, [e for event in events for e in (event, event)])
    pipe, dag = on_landed(local_env)
    assert pipe.files_skipped >= len(events) and not pipe.errors
    assert dag is not None and dag.state == "SUCCEEDED"
    assert raw_rows(local_env, "merchants.merchants", batch.batch_id) == batch.rows
    s.verify(local_env)


def test_files_and_batches_out_of_order(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    """Two batches of the same rows: the newer one's files arrive first (manifest before parts), merge, then the
    older batch arrives late. The version read last must stay in CURATED."""
    s = scenario(
        "files and batches out of order",
        "newer batch delivered first, manifest before its parts; the older batch delivered after it merged",
        "MERGE orders by read time, not arrival",
    )
    touch(local_stack, local_env, TABLE, 200)
    older = extract_source(local_env, "payments")
    s.fault()
    held_back = take_queued_events(local_env)  # the older batch's events are "delayed"
    touch(local_stack, local_env, TABLE, 200)  # the same rows change again
    newer = extract_source(local_env, "payments")
    assert newer.batches and older.batches
    deliver_events(local_env, list(reversed(take_queued_events(local_env))))
    pipe, dag = on_landed(local_env)
    assert not pipe.errors and dag is not None and dag.state == "SUCCEEDED"
    deliver_events(local_env, list(reversed(held_back)))
    pipe, dag = on_landed(local_env)
    assert not pipe.errors and pipe.files_loaded >= 1
    assert dag is not None and dag.state == "SUCCEEDED"
    s.verify(local_env)


def test_a_corrupt_file_among_good_ones(
    scenario,
    local_env: Environment,
    local_stack: LocalStack,
    alerts: str,  # noqa: F811 - the imported fixture
) -> None:
    s = scenario(
        "corrupt file among good ones",
        "a non-Parquet file under raw/ beside a good batch",
        "quarantined + OPS.LOAD_ERRORS + alert; the good files load and merge; run PARTIAL",
    )
    touch(local_stack, local_env, TABLE, 100)
    good = extract_source(local_env, "payments")
    s.fault()
    bad = _put_corrupt(local_env, "chaos-corrupt")
    try:
        pipe, dag = on_landed(local_env)
        assert pipe.quarantined == [bad]
        assert dag is not None and dag.state == "PARTIAL"  # status tells the truth: something did not load
        assert last_run_detail(local_env, dag.run_id)["failed_stages"] == ["LOAD"]
        # on-call was told, naming the file
        messages = client(local_env, "sqs").receive_message(QueueUrl=alerts, WaitTimeSeconds=5).get("Messages", [])
        assert any(json.loads(json.loads(m["Body"])["Message"]).get("key") == bad for m in messages)
        for batch in good.batches:
            assert raw_rows(local_env, batch.table, batch.batch_id) == batch.rows
        s.verify(local_env)
    finally:
        _cleanup(local_env, bad)
