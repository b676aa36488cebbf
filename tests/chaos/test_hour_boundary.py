"""An hour boundary crossed mid-run: the hour's run stalls after it has read the source, the next hour's run reads,
lands and merges the same rows, then the first run's batch lands late and its state is saved last.

What is at stake: a batch read in one hour and written in the next must land whole in its read hour's partition; the
late batch (older read time) must neither overwrite the newer versions nor bring back rows deleted meanwhile; the
next run's open snapshot must not narrow this one's window; and the state the late run saves last must not make the
following hour miss anything. The wall clock is not faked (every clock of the stack stays true): what crosses the
boundary is the run, as when an hourly run overruns and the scheduler starts the next one. A batch whose snapshot was
taken in the last microsecond of an hour, day and month is checked on its own below (the writer takes the read time).
"""

from __future__ import annotations

import io
import uuid
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from connectors.landing.state import load_state, reset_state, save_state, save_state_unless_superseded
from connectors.landing.writer import LandingWriter
from connectors.pan_key import tokenizer_for
from connectors.run import extract_source, new_batch_id
from finsight.aws import client
from finsight.config import Environment
from finsight.local.graph import on_landed
from finsight.local.stack import LocalStack
from tests.chaos.fault_proxy import FaultPlan, S3FaultProxy
from tests.chaos.harness import verdict, wait_for, with_s3_endpoint
from tests.chaos.test_process_faults import _Background, _recover
from tests.warehouse.helpers import sf

pytestmark = [pytest.mark.stack, pytest.mark.chaos, pytest.mark.timeout(600)]
INVOICES = "billing.invoices"  # range_hash deletes: the late batch could resurrect, the late state could hide
# A held write waits at most this long (the scenario stops by itself). Past botocore's 60 s read timeout the client
# retries and the retry is held too; the duplicate of a batch's first write (a part, CreateMultipartUpload) is harmless.
HOLD_S = 300


def _top_keys(stack: LocalStack, env: Environment, n: int) -> list[int]:
    table = env.table(INVOICES)
    (pk,) = table.primary_key
    query = sql.SQL("SELECT {k} FROM {t} ORDER BY {k} DESC LIMIT %s").format(
        k=sql.Identifier(pk), t=sql.Identifier(table.name)
    )
    with stack.admin_connect(table.source) as conn:
        return [r[0] for r in conn.execute(query, (n,)).fetchall()]


def _change(stack: LocalStack, env: Environment, keys: list[int]) -> None:
    """A new version of each row: the amount moves and the cursor is now."""
    table = env.table(INVOICES)
    (pk,) = table.primary_key
    update = sql.SQL("UPDATE {t} SET amount_due = amount_due + 1, {c} = clock_timestamp() WHERE {k} = ANY(%s)").format(
        t=sql.Identifier(table.name), c=sql.Identifier(table.cursor), k=sql.Identifier(pk)
    )
    with stack.admin_connect(table.source) as conn:
        assert conn.execute(update, (keys,)).rowcount == len(keys)


def _delete(stack: LocalStack, env: Environment, keys: list[int]) -> None:
    table = env.table(INVOICES)
    (pk,) = table.primary_key
    delete = sql.SQL("DELETE FROM {t} WHERE {k} = ANY(%s)").format(t=sql.Identifier(table.name), k=sql.Identifier(pk))
    with stack.admin_connect(table.source) as conn:
        assert conn.execute(delete, (keys,)).rowcount == len(keys)


def _insert_one(stack: LocalStack, env: Environment) -> int:
    """A new invoice (a copy of the newest under the next key), born now."""
    table = env.table(INVOICES)
    (pk,) = table.primary_key
    others = [sql.Identifier(c) for c in table.columns if c not in (pk, table.cursor)]
    insert = sql.SQL(
        "INSERT INTO {t} ({k}, {cols}, {c}) SELECT {k} + 1, {cols}, clock_timestamp() FROM {t} "
        "ORDER BY {k} DESC LIMIT 1 RETURNING {k}"
    ).format(t=sql.Identifier(table.name), k=sql.Identifier(pk), c=sql.Identifier(table.cursor),
             cols=sql.SQL(", ").join(others))  # fmt: skip
    with stack.admin_connect(table.source) as conn:
        row = conn.execute(insert).fetchone()
    assert row is not None
    return int(row[0])


def _merged_by(env: Environment, batch_ids: list[str]) -> list[tuple[str, str]]:
    ids = ", ".join(f"'{b}'" for b in batch_ids)
    return sorted(sf(env, f"SELECT BATCH_ID, RUN_ID FROM OPS.MERGED_BATCHES WHERE BATCH_ID IN ({ids})"))


def _read_times(env: Environment, batch_ids: list[str]) -> dict[str, datetime]:
    """Read time of each landed batch, from its manifest (batch ids order by the second only)."""
    ids = ", ".join(f"'{b}'" for b in batch_ids)
    return dict(sf(env, f"SELECT BATCH_ID, EXTRACTED_AT FROM OPS.LANDED_BATCHES WHERE BATCH_ID IN ({ids})"))


def test_an_hour_boundary_crossed_mid_run(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    s = scenario(
        "hour boundary crossed mid-run",
        "hour H's run of billing stalls after its read (S3 writes held at the fault proxy) while hour H+1's run reads "
        "the same rows changed again, a new row and 3 deletes, and merges; H's batch then lands late and H finishes "
        "last; in H+2 the new row is deleted",
        "the late batch merges after the newer one (version read last wins, deletes remembered); H's state is not "
        "saved over the newer one, so H+2 tombstones the new row",
    )
    top = _top_keys(local_stack, local_env, 60)
    _change(local_stack, local_env, top)  # hour H's activity

    plan = FaultPlan("hold", every=1, delay_s=HOLD_S)
    with S3FaultProxy(local_env.local.moto_port, plan) as proxy:  # type: ignore[union-attr]
        run_h = _Background(extract_source, with_s3_endpoint(local_env, proxy.url), "billing")
        run_h.start()
        # H has taken its snapshot and read: its first write (the batch's first part) is held
        wait_for(lambda: plan.injected >= 1 or not run_h.is_alive(), 180, "hour H's first S3 write")
        assert run_h.is_alive(), run_h.error
        s.fault()
        # hour H+1: the same rows change again, a row is born, three rows are hard-deleted
        _change(local_stack, local_env, top)
        born = _insert_one(local_stack, local_env)
        deleted = top[5:8]
        _delete(local_stack, local_env, deleted)
        run_next = extract_source(local_env, "billing")  # its snapshot must not be narrowed by H's open one
        (b2,) = [b for b in run_next.batches if b.table == INVOICES]
        assert b2.tombstones == len(deleted), b2
        pipe, dag_next = on_landed(local_env)
        assert not pipe.errors and dag_next is not None and dag_next.state == "SUCCEEDED"
        assert run_h.is_alive(), "hour H's run finished before hour H+1's merged: nothing was late"
        plan.released.set()
        run_h.outcome(120)
    assert run_h.error is None, run_h.error
    assert plan.hold_expired == 0, "a held write went on by itself: H's batch was not late"
    (b1,) = [b for b in run_h.result.batches if b.table == INVOICES]

    pipe, dag_late = on_landed(local_env)  # the late batch is loaded and triggers the graph
    assert not pipe.errors and pipe.files_loaded >= 1
    assert dag_late is not None and dag_late.state == "SUCCEEDED"
    read_at = _read_times(local_env, [b1.batch_id, b2.batch_id])
    assert read_at[b1.batch_id] < read_at[b2.batch_id]  # H read first, landed last
    # the late batch lands whole in the partition of its read hour, whenever its files were written
    partition = f"/dt={read_at[b1.batch_id]:%Y-%m-%d}/hr={read_at[b1.batch_id]:%H}/"
    assert b1.manifest_key and all(partition in k for k in [*b1.files, b1.manifest_key]), (partition, b1)
    # each batch merged exactly once, by the run that saw it land
    merged = [(b1.batch_id, dag_late.run_id), (b2.batch_id, dag_next.run_id)]
    assert _merged_by(local_env, [b1.batch_id, b2.batch_id]) == sorted(merged)
    late = verdict(local_env)  # right after the late merge: no newer version overwritten, no deleted row back
    assert (late.lost, late.duplicated, late.stale) == (0, 0, 0), "\n".join(late.problems)

    # the late run saved its state last; whatever it kept, hour H+2 must see the new row's deletion
    _delete(local_stack, local_env, [born])
    _recover(local_env, "billing")
    s.verify(local_env)


@pytest.mark.chaos_fast
def test_a_batch_read_in_the_last_microsecond_of_an_hour_lands_in_that_hour(
    local_env: Environment, local_stack: LocalStack
) -> None:
    """Parts, tombstones and manifest of a batch read at 23:59:59.999999 on the last day of a month land under that
    hour's partition and carry that read time, although they are written later (now). A private prefix: no pipe
    sees these files."""
    prefix = f"chaos-hour-boundary-{uuid.uuid4().hex[:8]}"
    s3_config = local_env.aws.s3.model_copy(update={"raw_prefix": prefix})
    env = local_env.model_copy(update={"aws": local_env.aws.model_copy(update={"s3": s3_config})})
    table = env.table(INVOICES)
    read_at = datetime(2026, 11, 30, 23, 59, 59, 999999)
    batch_id = new_batch_id(read_at)
    assert batch_id.startswith("20261130t235959z-")
    s3, bucket = client(env, "s3"), env.aws.s3.bucket
    try:
        writer = LandingWriter(env, table, batch_id, read_at, tokenizer_for(env), "incremental")
        writer.write(pa.table({"invoice_id": pa.array([1, 2], pa.int64()),
                               "updated_at": pa.array([read_at, read_at], pa.timestamp("us"))}))  # fmt: skip
        writer.write_tombstones(pa.table({"invoice_id": pa.array([3], pa.int64())}))
        result = writer.finish()
        keys = [*result.files, result.manifest_key]
        assert len(keys) == 3 and all("/dt=2026-11-30/hr=23/" in str(k) for k in keys), keys
        for key in keys:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            landed = pq.read_table(io.BytesIO(body))
            column = "EXTRACTED_AT" if key == result.manifest_key else "_EXTRACTED_AT"
            assert set(landed.column(column).to_pylist()) == {read_at}, key
    finally:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])
        for obj in listed:
            s3.delete_object(Bucket=bucket, Key=obj["Key"])


@pytest.mark.chaos_fast
def test_a_run_that_finishes_last_never_rolls_back_a_later_reads_state(
    local_env: Environment, local_stack: LocalStack
) -> None:
    """The guard the scenario above found missing, fast: a state saved by a run that read later stays; an older
    run's state is dropped, a newer one's saved. A private state key (a table name no config has) on moto."""
    table = local_env.table(INVOICES).model_copy(update={"name": f"chaos_probe_{uuid.uuid4().hex[:8]}"})
    later = {"cursor": "2026-11-27T15:00:01", "read_at": "2026-11-27T15:00:01.000002", "deletes": {"files": {"0": "k"}}}
    try:
        save_state(local_env, table, later)
        earlier = {**later, "cursor": "2026-11-27T14:59:59", "read_at": "2026-11-27T14:59:59.999999", "deletes": {}}
        assert not save_state_unless_superseded(local_env, table, earlier)
        assert load_state(local_env, table) == later
        newest = {**later, "read_at": "2026-11-27T16:00:00"}
        assert save_state_unless_superseded(local_env, table, newest)
        assert load_state(local_env, table) == newest
    finally:
        reset_state(local_env, table)
