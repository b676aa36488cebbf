"""Replays and late batches never resurrect a deleted row nor move a value backwards, and report deletes truthfully.


First on the real pipeline (hard deletes found by primary-key snapshots), then with `_OP = 'D'` tombstones landed
in RAW the way the pipes load them (batches written directly into RAW + OPS.LANDED_BATCHES for a private key range).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from connectors.run import extract_source
from finsight import deploy_fingerprint, marts, warehouse
from finsight.config import Environment
from finsight.local.cycle import hourly_cycle
from finsight.local.snowpipe import drain
from finsight.local.stack import LocalStack
from finsight.reconcile import reconcile
from snowpark.merge import merge_table
from tests.warehouse.helpers import sf

pytestmark = pytest.mark.stack


def test_replaying_a_full_batch_after_hard_deletes_resurrects_nothing(
    local_env: Environment, local_stack: LocalStack
) -> None:
    table = local_env.table("billing.invoices")
    assert hourly_cycle(local_env).ok
    # a batch holding every invoice, merged now: the batch a replay would take rows back from
    full = extract_source(local_env, "billing", mode="full")
    (batch,) = [b for b in full.batches if b.table == table.qualified]
    deleted = 0
    for step in range(401, 406):
        deleted += local_stack.mutate(step).tables[table.qualified].deleted
        if deleted:
            break
    assert deleted, "the synthetic mutations deleted no draft invoice"
    cycle = hourly_cycle(local_env)  # loads the full batch and the hour's batch; the snapshot deletes the drafts
    assert cycle.ok, cycle
    merge_task = next(t for t in cycle.dag.tasks if t.name == f"MERGE_{table.raw_name}")
    assert merge_task.output["rows_deleted"] >= 1
    session = warehouse.snowpark_session(local_env)
    try:
        spec = json.dumps(marts.merge_spec(local_env, table))
        out = json.loads(merge_table(session, spec, "test-replay-full", replay_batch=batch.batch_id))
    finally:
        session.close()
    assert out["batches"] == [batch.batch_id]
    # nothing comes back, nothing moves back, and the summary says so
    assert out["rows_inserted"] == 0 and out["rows_updated"] == 0 and out["rows_deleted"] == 0, out
    assert out["rows_skipped_deleted"] >= merge_task.output["rows_deleted"], out
    (diff,) = reconcile(local_env, [table])
    assert diff.equal, diff


# -- tombstones --------------------------------------------------------------------------------------------------
KEYS = (9_900_000_001, 9_900_000_002, 9_900_000_003)
T0 = datetime(2026, 1, 1, 10, 0, 0)


def _land(env: Environment, batch_id: str, read_at: datetime, rows: list[tuple[int, int | None, str]]) -> None:
    """A batch as the pipes load it: rows in RAW (score None + op D = tombstone), then its manifest."""
    table = env.table("risk.risk_assessments")
    values = []
    for n, (key, score, op) in enumerate(rows, start=1):
        payload = "NULL, NULL, NULL, NULL, NULL" if op == "D" else f"1, {score}, 'approve', '{T0}', '{read_at}'"
        values.append(f"({key}, {payload}, '{batch_id}', '{read_at}', {n}, '{op}')")
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(
            f"INSERT INTO RAW.{table.raw_name} (ASSESSMENT_ID, PAYMENT_ID, SCORE, DECISION, CREATED_AT, UPDATED_AT, "
            f"_BATCH_ID, _EXTRACTED_AT, _ROW_NUMBER, _OP) VALUES {', '.join(values)}"
        )
        cur.execute(
            "INSERT INTO OPS.LANDED_BATCHES (BATCH_ID, SOURCE_TABLE, RAW_TABLE, MODE, ROW_COUNT, FILE_COUNT, "
            "PK_SNAPSHOT_ROWS, CURSOR_MIN, CURSOR_MAX, SCHEMA_HASH, EXTRACTED_AT) VALUES "
            f"('{batch_id}', 'risk.risk_assessments', '{table.raw_name}', 'incremental', {len(rows)}, 1, NULL, "
            f"'{T0.isoformat()}', '{read_at.isoformat()}', 'test', '{read_at}')"
        )


@pytest.fixture
def private_keys(local_env: Environment, local_stack: LocalStack) -> Iterator[None]:
    deploy_fingerprint.deploy_if_changed(local_env)
    with warehouse.connect(local_env, schema=local_env.snowflake.schemas["raw"]) as conn:
        drain(local_env, conn.cursor())  # nothing of another test's half-landed batches in the way

    def clean() -> None:
        raw = local_env.table("risk.risk_assessments").raw_name
        keys = ", ".join(map(str, KEYS))
        with warehouse.connect(local_env) as conn:
            cur = conn.cursor()
            for t in (f"RAW.{raw}", f"CURATED.{raw}", f"OPS.{raw}__TOMBSTONES"):
                cur.execute(f"DELETE FROM {t} WHERE ASSESSMENT_ID IN ({keys})")
            for t in ("OPS.LANDED_BATCHES", "OPS.MERGED_BATCHES"):
                cur.execute(f"DELETE FROM {t} WHERE BATCH_ID LIKE 'test-tomb-%'")

    clean()
    yield
    clean()


def _merge(env: Environment, replay: str | None = None) -> dict:
    session = warehouse.snowpark_session(env)
    try:
        spec = json.dumps(marts.merge_spec(env, env.table("risk.risk_assessments")))
        return json.loads(merge_table(session, spec, "test-tombstones", replay_batch=replay))
    finally:
        session.close()


def _curated(env: Environment) -> dict[int, int]:
    keys = ", ".join(map(str, KEYS))
    rows = sf(env, f"SELECT ASSESSMENT_ID, SCORE FROM CURATED.RISK__RISK_ASSESSMENTS WHERE ASSESSMENT_ID IN ({keys})")
    return {int(k): int(v) for k, v in rows}


def test_tombstones_delete_and_nothing_brings_the_row_back(local_env: Environment, private_keys: None) -> None:
    k1, k2, k3 = KEYS
    t1, t2, t3 = T0 + timedelta(hours=1), T0 + timedelta(hours=2), T0 + timedelta(hours=3)
    _land(local_env, "test-tomb-1", t1, [(k1, 10, "U"), (k2, 10, "U"), (k3, 10, "U")])
    _land(local_env, "test-tomb-2", t2, [(k1, None, "D"), (k2, 20, "U")])
    out = _merge(local_env)
    assert {"test-tomb-1", "test-tomb-2"} <= set(out["batches"])
    assert _curated(local_env) == {k2: 20, k3: 10}

    # the older batch replayed: k1 stays deleted, k2 keeps its newer value, and the summary says why
    replay = _merge(local_env, replay="test-tomb-1")
    assert _curated(local_env) == {k2: 20, k3: 10}
    assert (replay["rows_inserted"], replay["rows_updated"], replay["rows_deleted"]) == (0, 0, 0), replay
    assert replay["rows_skipped_deleted"] == 1

    # a batch read before the delete that lands late: merged by the normal path, still no resurrection
    _land(local_env, "test-tomb-0", T0, [(k1, 5, "U"), (k3, 5, "U")])
    late = _merge(local_env)
    assert late["batches"] == ["test-tomb-0"] and late["rows_inserted"] == 0 and late["rows_skipped_deleted"] == 1
    assert _curated(local_env) == {k2: 20, k3: 10}

    # the tombstone replayed deletes nothing more and says so
    again = _merge(local_env, replay="test-tomb-2")
    assert again["rows_deleted"] == 0 and _curated(local_env) == {k2: 20, k3: 10}

    # a key re-created at the source after its delete (read later) comes back: that is not a resurrection
    _land(local_env, "test-tomb-3", t3, [(k1, 30, "U"), (k3, None, "D")])
    last = _merge(local_env)
    assert (last["rows_inserted"], last["rows_deleted"]) == (1, 1), last
    assert _curated(local_env) == {k1: 30, k2: 20}
