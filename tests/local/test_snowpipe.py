"""The local pipe player (finsight/local/snowpipe.py) on a private bucket, queue, alert topic and private RAW/OPS
schemas: real moto S3 -> SQS events, real fakesnow COPY from the stage, nothing of the shared stack's data touched.

The environment is the local one with its bucket, alert topic and schema names replaced, so every name the player
derives (queue, stage, pipe targets, OPS.LOAD_ERRORS) is private; the fixture drops all of it at the end.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import snowflake.connector.errors

from finsight import catalog, warehouse
from finsight.aws import client, data_key_arn
from finsight.config import Environment
from finsight.local.aws_bootstrap import ensure_bucket, grant_service_roles, queue_name, revoke_service_roles
from finsight.local.raw_evolution import CursorSession, evolve_raw_for_file
from finsight.local.snowpipe import discard, drain, load_errors, release
from finsight.local.stack import LocalStack
from snowpark.schema_evolution import precision_widenings, table_columns

pytestmark = pytest.mark.stack

TABLE = "merchants.merchants"  # its pipe: <RAW>.MERCHANTS__MERCHANTS, folder merchants/merchants/
COLUMNS = (
    "MERCHANT_ID NUMBER(38, 0), LEGAL_NAME VARCHAR, CREDIT_LIMIT NUMBER(10, 2), _BATCH_ID VARCHAR, "
    "_ROW_NUMBER NUMBER(38, 0)"
)


@dataclass
class Pipe:
    env: Environment
    cursor: Any
    raw: str  # the private RAW table, SCHEMA.TABLE
    pipe: str  # its pipe's name
    topic_queue: str  # an SQS queue subscribed to the private data-engineering topic

    @property
    def s3(self) -> Any:
        return client(self.env, "s3")

    @property
    def bucket(self) -> str:
        return self.env.aws.s3.bucket

    def key(self, name: str) -> str:
        return catalog.s3_key(self.env, f"merchants/merchants/dt=2026-11-27/hr=10/{name}")

    def put(self, key: str, body: bytes) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ServerSideEncryption="aws:kms",
                           SSEKMSKeyId=data_key_arn(self.env))  # fmt: skip
        return key

    def put_rows(self, name: str, ids: list[int]) -> str:
        table = pa.table(
            {
                "merchant_id": pa.array(ids, pa.int64()),
                "legal_name": [f"m{i}" for i in ids],
                "_batch_id": [name] * len(ids),
                "_row_number": pa.array(range(len(ids)), pa.int64()),
            }
        )
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return self.put(self.key(name), sink.getvalue())

    def put_limits(self, name: str, limits: list[str], decimal: pa.Decimal128Type) -> str:
        """A file whose CREDIT_LIMIT is `decimal`: wider than RAW's NUMBER(10, 2) when a source widened it."""
        table = pa.table(
            {
                "merchant_id": pa.array(range(len(limits)), pa.int64()),
                "credit_limit": pa.array([Decimal(v) for v in limits], decimal),
                "_batch_id": [name] * len(limits),
                "_row_number": pa.array(range(len(limits)), pa.int64()),
            }
        )
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return self.put(self.key(name), sink.getvalue())

    def limits(self) -> tuple[str, list[str]]:
        """CREDIT_LIMIT's type in RAW and its values."""
        schema, _, table = self.raw.partition(".")
        self.cursor.execute(
            "SELECT NUMERIC_PRECISION, NUMERIC_SCALE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = "
            f"'{schema}' AND TABLE_NAME = '{table}' AND COLUMN_NAME = 'CREDIT_LIMIT'"
        )
        precision, scale = self.cursor.fetchone()
        self.cursor.execute(f"SELECT CREDIT_LIMIT FROM {self.raw} ORDER BY _BATCH_ID, MERCHANT_ID")
        return f"NUMBER({precision}, {scale})", [str(v) for (v,) in self.cursor.fetchall()]

    def rows(self) -> list[tuple[int, str, str]]:
        self.cursor.execute(f"SELECT MERCHANT_ID, LEGAL_NAME, _BATCH_ID FROM {self.raw} ORDER BY 3, 1")
        return [tuple(r) for r in self.cursor.fetchall()]

    def queued(self) -> tuple[int, int]:
        """(visible, in flight) messages on the pipe's queue."""
        sqs = client(self.env, "sqs")
        url = sqs.get_queue_url(QueueName=queue_name(self.env))["QueueUrl"]
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return int(attrs[names[0]]), int(attrs[names[1]])

    def notify(self, *keys: str) -> None:
        """An S3 event as AWS sends it (keys URL-encoded), for keys no object-created event would announce."""
        sqs = client(self.env, "sqs")
        url = sqs.get_queue_url(QueueName=queue_name(self.env))["QueueUrl"]
        records = [{"s3": {"object": {"key": k.replace(" ", "+")}}} for k in keys]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": records}))

    def alerts(self) -> list[dict[str, Any]]:
        sqs = client(self.env, "sqs")
        messages = sqs.receive_message(QueueUrl=self.topic_queue, MaxNumberOfMessages=10).get("Messages", [])
        for m in messages:
            sqs.delete_message(QueueUrl=self.topic_queue, ReceiptHandle=m["ReceiptHandle"])
        return [json.loads(json.loads(m["Body"])["Message"]) | {"_subject": json.loads(m["Body"])["Subject"]}
                for m in messages]  # fmt: skip


def _private(env: Environment, tag: str) -> Environment:
    s3 = env.aws.s3.model_copy(update={"bucket": f"finsight-pipe-test-{tag.lower()}"})
    topics = {**env.aws.alert_topics, "data_engineering": f"finsight-pipe-test-{tag.lower()}-alerts"}
    aws = env.aws.model_copy(update={"s3": s3, "alert_topics": topics})
    schemas = {**env.snowflake.schemas, "raw": f"PIPE_RAW_{tag}", "ops": f"PIPE_OPS_{tag}"}
    return env.model_copy(update={"aws": aws, "snowflake": env.snowflake.model_copy(update={"schemas": schemas})})


@pytest.fixture(scope="module")
def pipe_env(local_env: Environment, local_stack: LocalStack) -> Iterator[Pipe]:
    tag = uuid.uuid4().hex[:8].upper()
    env = _private(local_env, tag)
    raw, ops = env.snowflake.schemas["raw"], env.snowflake.schemas["ops"]
    (pipe,) = [p for p in catalog.pipes(env) if p["folder"] == catalog.table_folder(env.table(TABLE))]
    sqs, sns, s3 = client(env, "sqs"), client(env, "sns"), client(env, "s3")
    ensure_bucket(env, data_key_arn(env))  # the bootstrap's own bucket + queue + S3 -> SQS notification
    # the local Snowflake reads S3 as the storage role, the quarantine move and the alert act as their roles
    grant_service_roles(env, f"pipe-test-{tag}")
    topic = sns.create_topic(Name=env.aws.alert_topics["data_engineering"])["TopicArn"]
    alert_url = sqs.create_queue(QueueName=f"finsight-pipe-test-{tag.lower()}-inbox")["QueueUrl"]
    alert_arn = sqs.get_queue_attributes(QueueUrl=alert_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=alert_arn)
    conn = warehouse.connect(local_env)
    cur = conn.cursor()
    try:
        for schema in (raw, ops):
            cur.execute(f"CREATE SCHEMA {schema}")
        stage_url = f"s3://{env.aws.s3.bucket}/{env.aws.s3.raw_prefix}/"
        cur.execute(f"CREATE STAGE {raw}.{catalog.LANDING_STAGE} URL = '{stage_url}'")  # as R__raw_tables_and_pipes
        cur.execute(f"CREATE TABLE {pipe['target']} ({COLUMNS})")
        cur.execute(
            f"CREATE TABLE {ops}.{catalog.LOAD_ERRORS_TABLE} (PIPE_NAME VARCHAR NOT NULL, "
            "FILE_KEY VARCHAR NOT NULL, ERROR VARCHAR NOT NULL, QUARANTINE_KEY VARCHAR, "
            "FAILED_AT TIMESTAMP_NTZ NOT NULL, RELEASED_AT TIMESTAMP_NTZ)"
        )  # as V1.1.0__warehouse_ops
        yield Pipe(env, cur, pipe["target"], pipe["name"], alert_url)
    finally:
        for schema in (raw, ops):
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.close()
        versions = s3.list_object_versions(Bucket=env.aws.s3.bucket)
        for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
            s3.delete_object(Bucket=env.aws.s3.bucket, Key=v["Key"], VersionId=v["VersionId"])
        s3.delete_bucket(Bucket=env.aws.s3.bucket)
        revoke_service_roles(env, f"pipe-test-{tag}")
        sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=queue_name(env))["QueueUrl"])
        sqs.delete_queue(QueueUrl=alert_url)
        sns.delete_topic(TopicArn=topic)


@pytest.fixture
def pipe(pipe_env: Pipe) -> Pipe:
    """Each test starts from an empty queue, RAW table, LOAD_ERRORS and alert inbox."""
    drain(pipe_env.env, pipe_env.cursor)
    pipe_env.cursor.execute(f"DELETE FROM {pipe_env.raw}")
    pipe_env.cursor.execute(f"DELETE FROM {pipe_env.env.snowflake.schemas['ops']}.{catalog.LOAD_ERRORS_TABLE}")
    pipe_env.alerts()  # read = deleted
    return pipe_env


def test_each_notified_file_loads_once_into_its_pipes_table(pipe: Pipe) -> None:
    a = pipe.put_rows("b1-0000.parquet", [1, 2, 3])
    b = pipe.put_rows("b1 0001.parquet", [4])  # a space: the event carries it URL-encoded as "+"
    run = drain(pipe.env, pipe.cursor)
    assert (run.files_loaded, run.rows_loaded, run.files_skipped) == (2, 4, 0)
    assert run.pipes == {pipe.pipe: 2} and run.errors == [] and run.quarantined == [] and run.retry == []
    assert pipe.rows() == [(4, "m4", "b1 0001.parquet"), (1, "m1", "b1-0000.parquet"), (2, "m2", "b1-0000.parquet"),
                           (3, "m3", "b1-0000.parquet")]  # fmt: skip
    assert pipe.queued() == (0, 0)  # every event deleted once handled
    # re-sent events: COPY's load history skips each file, nothing loads twice
    pipe.notify(a)
    pipe.notify(b)
    again = drain(pipe.env, pipe.cursor)
    assert (again.files_loaded, again.rows_loaded, again.files_skipped, again.pipes) == (0, 0, 2, {})
    assert len(pipe.rows()) == 4 and pipe.queued() == (0, 0)


def test_events_outside_the_pipes_and_for_removed_files_are_dropped_quietly(pipe: Pipe) -> None:
    gone = pipe.key("removed-0000.parquet")  # notified, then removed by an operator before the drain
    also_gone = pipe.key("removed-0001.parquet")
    pipe.notify("elsewhere/merchants/merchants/x.parquet", catalog.s3_key(pipe.env, "no_such_source/t/x.parquet"))
    pipe.notify(gone, also_gone)
    run = drain(pipe.env, pipe.cursor)
    assert (run.files_loaded, run.files_skipped, run.errors, run.retry) == (0, 2, [], [])  # each removed file counts
    assert pipe.queued() == (0, 0) and pipe.rows() == []


def test_a_bad_file_is_quarantined_recorded_alerted_and_the_good_one_loads(pipe: Pipe) -> None:
    bad = pipe.put(pipe.key("it's-bad-0000.parquet"), b"not parquet at all")  # a quote in the key: SQL literal
    good = pipe.put_rows("good-0000.parquet", [7])
    run = drain(pipe.env, pipe.cursor)
    assert run.quarantined == [bad] and run.retry == [] and (run.files_loaded, run.rows_loaded) == (1, 1)
    (error,) = run.errors
    assert error.startswith(f"{pipe.pipe}: {bad}: ") and "\n" not in error and len(error) > len(f"{pipe.pipe}: {bad}: ")
    target = catalog.quarantine_key(pipe.env, bad)
    assert "Contents" not in pipe.s3.list_objects_v2(Bucket=pipe.bucket, Prefix=bad)  # out of the pipe's way
    moved = pipe.s3.head_object(Bucket=pipe.bucket, Key=target)
    assert moved["ServerSideEncryption"] == "aws:kms" and moved["SSEKMSKeyId"].endswith(data_key_arn(pipe.env))
    (recorded,) = load_errors(pipe.env, pipe.cursor)
    assert (recorded.pipe, recorded.key, recorded.quarantine_key, recorded.released_at) == (pipe.pipe, bad, target,
                                                                                            None)  # fmt: skip
    assert error == f"{pipe.pipe}: {bad}: {recorded.error}" and recorded.failed_at is not None
    (alert,) = pipe.alerts()
    assert alert == {"pipe": pipe.pipe, "key": bad, "quarantine_key": target, "error": recorded.error,
                     "_subject": f"finsight {pipe.env.name}: file quarantined by {pipe.pipe}"}  # fmt: skip
    assert pipe.rows() == [(7, "m7", "good-0000.parquet")] and good
    assert pipe.queued() == (0, 0)  # the bad file's event is done with: the next drain does not meet it again
    assert drain(pipe.env, pipe.cursor).errors == []


def test_release_puts_the_file_back_and_its_event_retries_it(pipe: Pipe) -> None:
    bad = pipe.put(pipe.key("retry-0000.parquet"), b"PAR1 but not really")
    drain(pipe.env, pipe.cursor)
    target = catalog.quarantine_key(pipe.env, bad)
    with pytest.raises(KeyError, match="not in quarantine"):
        release(pipe.env, pipe.cursor, pipe.key("never-quarantined.parquet"))
    assert release(pipe.env, pipe.cursor, target) == bad  # by its quarantine key as well as its own
    put_back = pipe.s3.head_object(Bucket=pipe.bucket, Key=bad)
    assert put_back["ServerSideEncryption"] == "aws:kms" and put_back["SSEKMSKeyId"].endswith(data_key_arn(pipe.env))
    assert "Contents" not in pipe.s3.list_objects_v2(Bucket=pipe.bucket, Prefix=target)
    assert load_errors(pipe.env, pipe.cursor) == []  # released: no longer open
    (released,) = load_errors(pipe.env, pipe.cursor, include_released=True)
    assert released.key == bad and released.released_at is not None
    with pytest.raises(KeyError):
        release(pipe.env, pipe.cursor, bad)  # released already: nothing open to release
    # still bad: the put-back's own S3 event sends it through the pipe and back to quarantine
    again = drain(pipe.env, pipe.cursor)
    assert again.quarantined == [bad]
    history = load_errors(pipe.env, pipe.cursor, include_released=True)
    assert [e.released_at is None for e in history] == [False, True]


class _Unreachable:
    """A warehouse that cannot be reached: every statement fails as the connector fails when the server is down
    (fakesnow's cursor keeps working after its connection is closed, so the failure is injected here)."""

    def execute(self, text: str) -> None:
        raise snowflake.connector.errors.OperationalError(msg="250003: Failed to get the response. Hanging?")


class _Reset:
    """A connection dropped without a word: an exception whose text is empty."""

    def execute(self, text: str) -> None:
        raise ConnectionResetError()


def test_an_error_without_text_is_reported_by_its_type(pipe: Pipe) -> None:
    key = pipe.put_rows("reset-0000.parquet", [8])
    run = drain(pipe.env, _Reset())
    assert run.errors == [f"{pipe.pipe}: {key}: ConnectionResetError"] and run.retry == [key]
    assert discard(pipe.env, key) == 1  # the kept event, dropped so the next test starts from an empty queue


def test_an_unreachable_warehouse_keeps_the_event_for_the_next_drain(pipe: Pipe) -> None:
    key = pipe.put_rows("later-0000.parquet", [9])
    run = drain(pipe.env, _Unreachable())
    assert run.retry == [key] and run.quarantined == [] and run.files_loaded == 0
    assert run.errors == [f"{pipe.pipe}: {key}: 250003: Failed to get the response. Hanging?"]
    assert pipe.queued() == (0, 1)  # kept: in flight, visible again after the queue's visibility timeout
    assert load_errors(pipe.env, pipe.cursor) == [] and pipe.s3.head_object(Bucket=pipe.bucket, Key=key)
    # the operator gives up on the file: discard waits for the kept event to come back and drops it
    assert discard(pipe.env, key) == 1 and pipe.queued() == (0, 0)


def test_discard_drops_only_the_named_objects_events(pipe: Pipe) -> None:
    drop, keep = pipe.key("drop-0000.parquet"), pipe.key("keep-0000.parquet")
    pipe.notify(drop)
    pipe.notify(keep)
    pipe.notify(drop)
    assert discard(pipe.env, drop) == 2
    assert pipe.queued() == (1, 0)  # the other object's event is visible again at once, for the next drain
    assert discard(pipe.env, pipe.key("nothing-queued.parquet"), timeout=0.5) == 0


def test_a_wider_number_is_cast_by_value_and_one_out_of_range_is_quarantined_until_raw_is_widened(
    pipe: Pipe, caplog: pytest.LogCaptureFixture
) -> None:
    """Snowpipe's schema evolution only adds columns ("Table schema evolution",
    https://docs.snowflake.com/en/user-guide/data-load-schema-evolution): a file whose CREDIT_LIMIT is NUMBER(14, 3)
    loads into RAW's NUMBER(10, 2) value by value (rounded to the column's scale), and a value with more integer
    digits than 10 - 2 fails its file ("Numeric data types", https://docs.snowflake.com/en/sql-reference/data-types-numeric)
    into quarantine. Once the deploy widened RAW (precision only), the released file loads: nothing lost.
    (Before, the player widened RAW itself, which Snowflake never does.)"""
    # at INFO the connector would put the query id into str(error): the recorded text must not depend on it
    caplog.set_level(logging.INFO, logger="snowflake.connector")
    fits = pipe.put_limits("fits-0000.parquet", ["12345678.12", "1.2345"], pa.decimal128(14, 4))
    too_big = pipe.put_limits("big-0000.parquet", ["123456789.50"], pa.decimal128(14, 2))
    run = drain(pipe.env, pipe.cursor)
    assert run.quarantined == [too_big] and (run.files_loaded, run.rows_loaded) == (1, 2) and fits
    (recorded,) = load_errors(pipe.env, pipe.cursor)
    assert recorded.error == "100039 (22003): Numeric value '123456789.50' is out of range"  # as the connector shows it
    assert run.errors == [f"{pipe.pipe}: {too_big}: {recorded.error}"]
    assert pipe.limits() == ("NUMBER(10, 2)", ["12345678.12", "1.23"])  # RAW's type as it was
    (alert,) = pipe.alerts()
    assert alert["key"] == too_big and alert["error"] == recorded.error

    # the deploy step (finsight migrate: widen_to_declared) once the catalog declares NUMBER(14, 2), then a release
    schema, _, table = pipe.raw.partition(".")
    current = table_columns(CursorSession(pipe.cursor), schema, table)
    ((_, change, ddl),) = precision_widenings(pipe.raw, current, {"CREDIT_LIMIT": "NUMBER(14, 2)"})
    assert change == "widened NUMBER(10, 2) -> NUMBER(14, 2)"
    pipe.cursor.execute(ddl)
    assert release(pipe.env, pipe.cursor, too_big) == too_big
    again = drain(pipe.env, pipe.cursor)
    assert (again.files_loaded, again.quarantined) == (1, [])
    assert pipe.limits() == ("NUMBER(14, 2)", ["123456789.50", "12345678.12", "1.23"])


def test_a_drain_reads_raws_columns_once_and_checks_a_stale_read_again(pipe: Pipe) -> None:
    """The drain keeps RAW's columns as it first read them (one lookup per table, not per file). A column the deploy
    widened since is read again before a value that does not fit the kept type quarantines its file."""
    schema, _, table = pipe.raw.partition(".")
    current = table_columns(CursorSession(pipe.cursor), schema, table)
    known = {pipe.raw: {**current, "CREDIT_LIMIT": "NUMBER(10, 2)"}}  # as a drain saw RAW before the deploy ran
    if current["CREDIT_LIMIT"] != "NUMBER(16, 2)":
        pipe.cursor.execute(f"ALTER TABLE {pipe.raw} ALTER COLUMN CREDIT_LIMIT SET DATA TYPE NUMBER(16, 2)")
    key = pipe.put_limits("stale-0000.parquet", ["1234567890123.50"], pa.decimal128(16, 2))
    assert evolve_raw_for_file(pipe.env, pipe.cursor, pipe.raw, key, known) == []
    assert known[pipe.raw]["CREDIT_LIMIT"] == "NUMBER(16, 2)"  # kept current for the drain's next file


def test_a_drain_of_many_files_looks_columns_up_once_and_clears_its_queue(pipe: Pipe, local_stack: LocalStack) -> None:
    """Twelve files take two receives (SQS hands out at most 10 messages): every one loads, every event is deleted
    (in batches, one call per receive), and RAW's columns are looked up once for all the pipes' tables (this test's
    private one among them), not once per table or file."""
    keys = [pipe.put_rows(f"many-{i:04d}.parquet", [i]) for i in range(12)]
    log = local_stack.statement_log
    before = len(log.read_text().splitlines())
    run = drain(pipe.env, pipe.cursor)
    assert (run.files_loaded, run.errors) == (len(keys), [])
    assert pipe.queued() == (0, 0)
    during = [json.loads(line)["sql"] for line in log.read_text().splitlines()[before:]]
    lookups = [s for s in during if "information_schema.columns" in s.lower()]
    assert len(lookups) == 1, lookups
