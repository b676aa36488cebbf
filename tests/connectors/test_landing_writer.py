"""The landing writer on moto, read back from S3: what lands is what the landing contract (CONTRACTS.md) says.

Each test writes into its own bucket without default encryption (only the writer's SSE-KMS arguments can encrypt)
and checks every object it finds: KMS key id, layout, meta columns, PAN tokens (stdlib HMAC as the oracle),
manifest counts. No PostgreSQL and no warehouse: fast enough for mutation runs.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import json
import re
import uuid
from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from connectors.landing.arrow_schema import landed_schema, pk_schema, schema_hash
from connectors.landing.state import load_state, reset_state, save_state
from connectors.landing.writer import CHUNK_ROW_SPAN, LandingError, LandingWriter, _text
from connectors.pci import PanTokenizer
from finsight import catalog
from finsight.aws import client, data_key_arn
from finsight.config import Environment, load_environment
from finsight.local.stack import LocalStack
from finsight.migrate import render_all

pytestmark = pytest.mark.stack
KEY = "ab" * 32
READ_AT = datetime(2026, 11, 27, 9, 30, 15, 123456)
PANS = ["4111111111111111", "5500005555555559"]
# the migrations' column types of OPS.LANDED_BATCHES, in the Arrow types a manifest lands them as
_ARROW_OF = {"VARCHAR": pa.string(), "NUMBER(38, 0)": pa.int64(), "TIMESTAMP_NTZ": pa.timestamp("us")}


@functools.cache
def manifest_contract() -> dict[str, pa.DataType]:
    """OPS.LANDED_BATCHES as the migrations declare it (the table every manifest is loaded into), as {column: Arrow
    type}: the oracle for the writer's manifests, read from the warehouse side, not from arrow_schema.py."""
    sql = "\n".join(render_all(load_environment("local")).values())
    table = rf"\S+\.{catalog.MANIFEST_TABLE}"
    created = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", sql, re.DOTALL)
    assert created, f"no CREATE TABLE for {catalog.MANIFEST_TABLE} in migrations/"
    columns = re.findall(r"^\s+(\w+) ([A-Z_]+(?:\(\d+, \d+\))?)", created[1], re.MULTILINE)
    columns += re.findall(rf"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS (\w+) ([A-Z_]+)", sql)
    return {name.upper(): _ARROW_OF[kind] for name, kind in columns}


def _columns(schema: pa.Schema) -> dict[str, pa.DataType]:
    return {f.name: f.type for f in schema}


@pytest.fixture
def env(local_env: Environment, local_stack: LocalStack) -> Environment:
    """The local environment pointed at a fresh bucket with no default encryption."""
    bucket = f"finsight-writer-{uuid.uuid4().hex[:12]}"
    client(local_env, "s3").create_bucket(Bucket=bucket)
    s3 = local_env.aws.s3.model_copy(update={"bucket": bucket})
    return local_env.model_copy(update={"aws": local_env.aws.model_copy(update={"s3": s3})})


def _tokenizer() -> PanTokenizer:
    return PanTokenizer.from_secret({"current_version": SecretStr("3"), "keys": SecretStr(json.dumps({"3": KEY}))})


def _payments(ids: list[int], minute: int) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "payment_id": pa.array(ids, pa.int64()),
            "invoice_id": pa.array([7] * n, pa.int64()),
            "merchant_id": pa.array([8] * n, pa.int64()),
            "customer_id": pa.array([9] * n, pa.int64()),
            "amount": pa.array([Decimal("12.34")] * n, pa.decimal128(18, 2)),
            "currency": ["EUR"] * n,
            "status": ["paid"] * n,
            "card_number": [PANS[i % 2] for i in range(n)],
            "card_brand": ["visa"] * n,
            "created_at": pa.array([datetime(2026, 11, 1)] * n, pa.timestamp("us")),
            "updated_at": pa.array([datetime(2026, 11, 27, 9, minute + i) for i in range(n)], pa.timestamp("us")),
        }
    )


def _objects(env: Environment) -> dict[str, pa.Table]:
    s3 = client(env, "s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env.aws.s3.bucket):
        for obj in page.get("Contents", []):
            head = s3.head_object(Bucket=env.aws.s3.bucket, Key=obj["Key"])
            assert head["ServerSideEncryption"] == "aws:kms", obj["Key"]
            assert head["SSEKMSKeyId"].split("/")[-1] == data_key_arn(env).split("/")[-1], obj["Key"]
            body = s3.get_object(Bucket=env.aws.s3.bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = pq.read_table(io.BytesIO(body)) if obj["Key"].endswith(".parquet") else body
    return out


def _metadata(env: Environment, key: str) -> pq.FileMetaData:
    body = client(env, "s3").get_object(Bucket=env.aws.s3.bucket, Key=key)["Body"].read()
    return pq.ParquetFile(io.BytesIO(body)).metadata


def _compression(env: Environment, key: str) -> set[str]:
    meta = _metadata(env, key)
    return {
        meta.row_group(g).column(c).compression for g in range(meta.num_row_groups) for c in range(meta.num_columns)
    }


def test_random_token_columns_get_no_dictionary_and_no_statistics(env: Environment) -> None:
    # a token is unique per card: a dictionary and min/max cost writer CPU and buy nothing (issue 6's hot path);
    # the repeated plain strings keep theirs (smaller files, row-group pruning)
    writer = LandingWriter(env, env.table("payments.payments"), "b-dict", READ_AT, _tokenizer(), "incremental")
    writer.write(_payments([1, 2, 3, 4], minute=0))
    [landed] = [k for k in writer.finish().files if "b-dict" in k]
    meta = _metadata(env, landed).row_group(0)
    column = {meta.column(c).path_in_schema: meta.column(c) for c in range(meta.num_columns)}
    token, brand, key = column["CARD_NUMBER_TOKEN"], column["CARD_BRAND"], column["PAYMENT_ID"]
    assert not token.has_dictionary_page and not token.is_stats_set
    assert brand.has_dictionary_page and brand.is_stats_set and brand.statistics.has_min_max
    assert not key.has_dictionary_page and (key.statistics.min, key.statistics.max) == (1, 4)


def test_a_batch_lands_parts_pk_snapshot_and_manifest_as_the_contract_says(env: Environment) -> None:
    table = env.table("payments.payments")
    writer = LandingWriter(env, table, "b-0001", READ_AT, _tokenizer(), "incremental")
    writer.max_file_bytes = 1  # every write closes its part: two writes, two parts
    writer.write(_payments([1, 2, 3], minute=0))
    writer.write(_payments([4, 5], minute=20).to_batches()[0])
    writer.write(_payments([], minute=0))  # an empty read adds nothing
    writer.write(_payments([7], minute=21).drop_columns(["card_brand"]))  # a column gone at the source: NULL
    writer.write_tombstones(pa.table({"payment_id": pa.array([6], pa.int64())}))
    writer.write_tombstones(pa.table({"payment_id": pa.array([8], pa.int64())}))
    writer.write_pk_snapshot(pa.table({"payment_id": pa.array([1, 2, 3, 4, 5], pa.int64())}))
    writer.result.schema_changes = ["payments.payments: added column note"]  # as extract_source records drift
    result = writer.finish()

    objects = _objects(env)
    prefix = f"{env.aws.s3.raw_prefix}/payments/"
    data = {k: v for k, v in objects.items() if k.startswith(f"{prefix}payments/")}
    part = f"{prefix}payments/dt=2026-11-27/hr=09/b-0001"
    assert sorted(data) == [f"{part}-000000.parquet", f"{part}-000001.parquet", f"{part}-000002.parquet",
                            f"{part}-990000.parquet", f"{part}-990001.parquet"]  # fmt: skip
    assert sorted(result.files) == sorted(data)
    for key, landed in data.items():  # the landed schema exactly (types, order), zstd-compressed
        assert landed.schema.remove_metadata() == landed_schema(table), key
        assert _compression(env, key) == {"ZSTD"}, key
    rows = [r for k in sorted(data) for r in data[k].to_pylist()]
    upserts, tombstones = rows[:6], rows[6:]
    assert [r["PAYMENT_ID"] for r in upserts] == [1, 2, 3, 4, 5, 7]
    assert [r["_ROW_NUMBER"] for r in upserts] == [1, 2, 3, 4, 5, 6]  # row numbers continue across writes
    assert [r["CARD_BRAND"] for r in upserts] == ["visa"] * 5 + [None]
    assert {r["_BATCH_ID"] for r in rows} == {"b-0001"} and {r["_EXTRACTED_AT"] for r in rows} == {READ_AT}
    assert {r["_OP"] for r in upserts} == {"U"}
    meta = {"_BATCH_ID": "b-0001", "_EXTRACTED_AT": READ_AT, "_OP": "D"}
    assert tombstones == [  # a second call neither overwrites the first part nor reuses its row numbers
        {**{k: None for k in rows[0]}, **meta, "PAYMENT_ID": 6, "_ROW_NUMBER": 99 * CHUNK_ROW_SPAN + 1},
        {**{k: None for k in rows[0]}, **meta, "PAYMENT_ID": 8, "_ROW_NUMBER": 99 * CHUNK_ROW_SPAN + 2},
    ]
    # PAN: never in clear; the token is HMAC-SHA256 under the configured key, prefixed with its version
    assert "CARD_NUMBER" not in data[sorted(data)[0]].column_names
    for r in upserts:
        pan = PANS[{1: 0, 2: 1, 3: 0, 4: 0, 5: 1, 7: 0}[r["PAYMENT_ID"]]]
        assert r["CARD_NUMBER_TOKEN"] == "v3$" + hmac.new(KEY.encode(), pan.encode(), hashlib.sha256).hexdigest()
        assert r["CARD_NUMBER_LAST4"] == pan[-4:]
        assert r["AMOUNT"] == Decimal("12.34") and r["CURRENCY"] == "EUR"

    pk_key = f"{prefix}_pks/payments/dt=2026-11-27/hr=09/b-0001-0000.parquet"
    assert objects[pk_key].schema.remove_metadata() == pk_schema(table) and _compression(env, pk_key) == {"ZSTD"}
    pks = objects[pk_key].to_pylist()
    assert [r["PAYMENT_ID"] for r in pks] == [1, 2, 3, 4, 5] and [r["_ROW_NUMBER"] for r in pks] == [1, 2, 3, 4, 5]
    assert {(r["_OP"], r["_BATCH_ID"], r["_EXTRACTED_AT"]) for r in pks} == {("U", "b-0001", READ_AT)}

    manifest_key = f"{prefix}_manifests/dt=2026-11-27/hr=09/b-0001.parquet"
    assert result.manifest_key == manifest_key
    assert _columns(objects[manifest_key].schema) == manifest_contract()
    assert _compression(env, manifest_key) == {"ZSTD"}
    (manifest,) = objects[manifest_key].to_pylist()
    assert {k: manifest[k] for k in ("BATCH_ID", "SOURCE_TABLE", "RAW_TABLE", "MODE", "ROW_COUNT", "FILE_COUNT",
                                     "PK_SNAPSHOT_ROWS", "CURSOR_MIN", "CURSOR_MAX", "EXTRACTED_AT")} == {
        "BATCH_ID": "b-0001", "SOURCE_TABLE": "payments.payments", "RAW_TABLE": table.raw_name,
        "MODE": "incremental", "ROW_COUNT": 8, "FILE_COUNT": 5, "PK_SNAPSHOT_ROWS": 5,
        "CURSOR_MIN": "2026-11-27T09:00:00", "CURSOR_MAX": "2026-11-27T09:21:00", "EXTRACTED_AT": READ_AT,
    }  # fmt: skip
    assert json.loads(manifest["SCHEMA_CHANGES"]) == ["payments.payments: added column note"]
    assert manifest["SCHEMA_HASH"] == schema_hash(landed_schema(table))
    assert json.loads(manifest["SCHEMA_JSON"]) == {f.name: str(f.type) for f in landed_schema(table)}
    assert (result.rows, result.tombstones, result.pk_rows) == (8, 2, 5)
    assert result.bytes == sum(len(client(env, "s3").get_object(Bucket=env.aws.s3.bucket, Key=k)["Body"].read())
                               for k in data)  # fmt: skip


def test_a_part_closes_when_it_reaches_the_size_limit_exactly(env: Environment) -> None:
    table = env.table("payments.payments")
    probe = LandingWriter(env, table, "b-0005", READ_AT, _tokenizer(), "incremental")
    part = probe.part_writer(0)
    part.write(_payments([1, 2], minute=0))
    size = part._sink.bytes_written  # what one write of these rows puts into a part
    part.abort()
    writer = LandingWriter(env, table, "b-0005", READ_AT, _tokenizer(), "incremental")
    writer.max_file_bytes = size  # reached exactly: the part closes
    writer.write(_payments([1, 2], minute=0))
    writer.write(_payments([1, 2], minute=0))
    assert len(writer.finish().files) == 2


def test_parts_close_at_the_configured_size_in_mebibytes(env: Environment) -> None:
    table = env.table("payments.payments")
    small = env.model_copy(update={"connectors": env.connectors.model_copy(update={"max_file_mb": 3})})
    assert LandingWriter(small, table, "b-0009", READ_AT, _tokenizer(), "incremental").max_file_bytes == 3_145_728


def test_cursor_bounds_of_any_type_are_text() -> None:
    assert (_text(datetime(2026, 1, 2, 3, 4)), _text(42), _text("x")) == ("2026-01-02T03:04:00", "42", "x")


def test_parallel_chunks_never_share_row_numbers(env: Environment) -> None:
    writer = LandingWriter(env, env.table("payments.payments"), "b-0002", READ_AT, _tokenizer(), "full")
    first, second = writer.part_writer(0), writer.part_writer(1)
    first.write(_payments([1, 2], minute=0))
    second.write(_payments([3], minute=5))
    second.write(_payments([4], minute=40))
    first.close()
    second.close()
    result = writer.finish()
    rows = [r for t in _objects(env).values() if isinstance(t, pa.Table) and "PAYMENT_ID" in t.column_names
            and "_OP" in t.column_names and "CARD_NUMBER_TOKEN" in t.column_names for r in t.to_pylist()]  # fmt: skip
    numbers = {r["PAYMENT_ID"]: r["_ROW_NUMBER"] for r in rows}
    assert numbers == {1: 1, 2: 2, 3: CHUNK_ROW_SPAN + 1, 4: CHUNK_ROW_SPAN + 2}
    assert (result.rows, result.cursor_min, result.cursor_max) == (4, "2026-11-27T09:00:00", "2026-11-27T09:40:00")


def test_cursor_bounds_are_the_batchs_extremes_whatever_the_write_order(env: Environment) -> None:
    # the manifest's CURSOR_MAX becomes the watermark: a later write or part with older rows must not pull it back
    table = env.table("payments.payments")
    one_part = LandingWriter(env, table, "b-0006", READ_AT, _tokenizer(), "incremental")
    one_part.write(_payments([1], minute=50))  # the newest row first, then an older one in the same part
    one_part.write(_payments([2], minute=10))
    result = one_part.finish()
    assert (result.table, result.batch_id, result.rows) == ("payments.payments", "b-0006", 2)
    assert (result.cursor_min, result.cursor_max) == ("2026-11-27T09:10:00", "2026-11-27T09:50:00")
    manifest = _objects(env)[result.manifest_key]  # no key snapshot: PK_SNAPSHOT_ROWS is a typed NULL
    assert _columns(manifest.schema) == manifest_contract() and manifest.to_pylist()[0]["PK_SNAPSHOT_ROWS"] is None
    parts = LandingWriter(env, table, "b-0010", READ_AT, _tokenizer(), "incremental")
    newest, oldest = parts.part_writer(1), parts.part_writer(2)
    newest.write(_payments([3], minute=40))
    oldest.write(_payments([4], minute=0))
    parts.write(_payments([5], minute=20))
    newest.close()  # the newest part reports first, the default part (at finish) last
    oldest.close()
    result = parts.finish()
    assert (result.cursor_min, result.cursor_max) == ("2026-11-27T09:00:00", "2026-11-27T09:40:00")


def test_a_snapshot_only_batch_lands_its_manifest(env: Environment) -> None:
    # nothing changed, but the key snapshot must reach MERGE: it is how hard deletes are found
    table = env.table("payments.payments")
    writer = LandingWriter(env, table, "b-0007", READ_AT, _tokenizer(), "incremental")
    writer.write_pk_snapshot(pa.table({"payment_id": pa.array([1, 2], pa.int64())}))
    result = writer.finish()
    assert result.manifest_key is not None and (result.rows, result.pk_rows) == (0, 2)
    landed = _objects(env)[result.manifest_key]
    assert _columns(landed.schema) == manifest_contract()  # no rows: the cursor bounds are typed NULLs
    (manifest,) = landed.to_pylist()
    assert (manifest["ROW_COUNT"], manifest["FILE_COUNT"], manifest["PK_SNAPSHOT_ROWS"]) == (0, 0, 2)
    assert manifest["SCHEMA_CHANGES"] is None and manifest["CURSOR_MAX"] is None  # no drift, no rows: no bounds


def test_tombstone_row_numbers_keep_counting_over_many_calls(env: Environment) -> None:
    writer = LandingWriter(env, env.table("payments.payments"), "b-0008", READ_AT, _tokenizer(), "incremental")
    for keys in ([6, 7], [8], [9]):
        writer.write_tombstones(pa.table({"payment_id": pa.array(keys, pa.int64())}))
    writer.finish()
    rows = [r for t in _objects(env).values() if isinstance(t, pa.Table) and "_OP" in t.column_names
            for r in t.to_pylist()]  # fmt: skip
    assert sorted((r["_ROW_NUMBER"] - 99 * CHUNK_ROW_SPAN, r["PAYMENT_ID"]) for r in rows) == [(1, 6), (2, 7), (3, 8),
                                                                                               (4, 9)]  # fmt: skip


def test_abort_lands_nothing_and_is_safe_before_a_write_and_twice(env: Environment) -> None:
    # connectors/run.py aborts every part of a failed table, whether or not it had written
    writer = LandingWriter(env, env.table("payments.payments"), "b-0011", READ_AT, _tokenizer(), "incremental")
    writer.abort()
    part = writer.part_writer(3)
    part.abort()
    part.write(_payments([1, 2], minute=0))
    part.abort()
    part.abort()
    assert writer.finish().manifest_key is None and _objects(env) == {}
    assert client(env, "s3").list_multipart_uploads(Bucket=env.aws.s3.bucket).get("Uploads", []) == []


def test_nothing_read_means_no_manifest(env: Environment) -> None:
    writer = LandingWriter(env, env.table("payments.payments"), "b-0003", READ_AT, _tokenizer(), "incremental")
    writer.write(_payments([], minute=0))
    result = writer.finish()
    assert result.manifest_key is None and result.rows == 0 and _objects(env) == {}


def test_a_value_that_does_not_fit_names_table_column_and_batch(env: Environment) -> None:
    writer = LandingWriter(env, env.table("payments.payments"), "b-0004", READ_AT, _tokenizer(), "incremental")
    bad = _payments([1], minute=0).set_column(0, "payment_id", pa.array(["not a number"]))
    with pytest.raises(LandingError, match=r"payments\.payments: column 'payment_id' .* in batch b-0004: .*not a numb"):
        writer.write(bad)


def test_watermark_state_round_trips_under_kms(env: Environment) -> None:
    table = env.table("payments.payments")
    assert load_state(env, table) == {}  # never run: no watermark
    save_state(env, table, {"cursor": "2026-11-27T09:00:00", "schema": {"a": "b"}})
    assert load_state(env, table) == {"cursor": "2026-11-27T09:00:00", "schema": {"a": "b"}}
    (key,) = _objects(env)  # KMS checked there
    assert key == f"state/{table.source}/{table.name}.json"
    reset_state(env, table)
    assert load_state(env, table) == {}
