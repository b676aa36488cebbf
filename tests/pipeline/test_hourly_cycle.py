"""The walking skeleton end to end on the real local stack: extract -> S3 -> COPY -> MERGE.

Order matters inside this module (first load, rerun, mutations, replay), as it would for an operator.
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
from finsight.local.verify import reconcile
from finsight.secrets import read_secret
from snowpark.merge import merge_table

pytestmark = pytest.mark.stack


def _assert_caught_up(env: Environment, stack: LocalStack) -> None:
    diffs = [d for d in reconcile(env, stack) if not d.equal]
    assert not diffs, diffs


def _curated_count(env: Environment, table: str) -> int:
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT COUNT(*) FROM CURATED.{env.table(table).curated_name}")
        return cur.fetchone()[0]


@pytest.fixture(scope="module")
def first_cycle(local_env: Environment, local_stack: LocalStack):
    return hourly_cycle(local_env)


def test_first_cycle_lands_everything(first_cycle, local_env: Environment, local_stack: LocalStack) -> None:
    assert first_cycle.ok, first_cycle
    assert set(first_cycle.seconds) == {"migrate", "extract", "load", "graph", "merge", "transform", "validate"}
    assert first_cycle.dag.state == "SUCCEEDED" and first_cycle.dag.latency_seconds() is not None
    assert all(t.state == "SUCCEEDED" for t in first_cycle.dag.tasks)
    _assert_caught_up(local_env, local_stack)
    for table in local_env.tables():
        assert load_state(local_env, table)["cursor"], table.qualified


def test_rerun_is_idempotent(local_env: Environment, local_stack: LocalStack, first_cycle) -> None:
    before = _curated_count(local_env, "payments.payments")
    again = hourly_cycle(local_env)
    assert again.ok
    assert again.migrations_applied == 0  # schemachange: every script skipped the second time
    assert _curated_count(local_env, "payments.payments") == before
    _assert_caught_up(local_env, local_stack)


def test_mutations_are_applied(local_env: Environment, local_stack: LocalStack, first_cycle) -> None:
    changes = [local_stack.mutate(step) for step in range(2)]
    assert sum(c.updated for c in changes) > 0 and sum(c.deleted for c in changes) > 0
    cycle = hourly_cycle(local_env)
    assert cycle.ok
    # rows both inserted and deleted between two cycles never reach CURATED, so only "some" deletes are certain
    assert 0 < cycle.dag.deleted_rows() <= sum(c.deleted for c in changes)
    _assert_caught_up(local_env, local_stack)


def test_replaying_an_old_batch_changes_nothing(local_env: Environment, local_stack: LocalStack, first_cycle) -> None:
    table = local_env.table("payments.payments")
    first_batch = next(b for s in first_cycle.sources for b in s.batches if b.table == table.qualified)
    session = warehouse.snowpark_session(local_env)
    try:
        spec = marts.merge_spec(local_env, table)
        import json

        out = json.loads(merge_table(session, json.dumps(spec), "test-replay", replay_batch=first_batch.batch_id))
        assert out["batches"] == [first_batch.batch_id]
        with pytest.raises(ValueError, match="no complete manifest"):
            merge_table(session, json.dumps(spec), "test-replay", replay_batch="no-such-batch")
    finally:
        session.close()
    _assert_caught_up(local_env, local_stack)  # the old batch could not overwrite newer rows


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
    # independent oracle: each token is HMAC-SHA256 of the source's card number under the configured key version
    secret = read_secret(local_env, local_env.secrets.pan_tokenization_key)
    version = secret["current_version"].get_secret_value()
    key = json.loads(secret["keys"].get_secret_value())[version].encode()
    with local_stack.admin_connect("payments") as conn:
        source = dict(conn.execute("SELECT payment_id, card_number FROM payments").fetchall())
    landed = table.select(["PAYMENT_ID", "CARD_NUMBER_TOKEN", "CARD_NUMBER_LAST4"]).to_pylist()
    checked = 0
    for row in landed:
        pan = source.get(row["PAYMENT_ID"])
        if pan is None or row["CARD_NUMBER_TOKEN"] is None:
            continue
        expected = hmac.new(key, pan.encode(), hashlib.sha256).hexdigest()
        assert row["CARD_NUMBER_TOKEN"] == f"v{version}${expected}", row["PAYMENT_ID"]
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
