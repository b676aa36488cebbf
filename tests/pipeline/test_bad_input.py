"""A corrupt file in the landing zone: the load names the pipe and the file, nothing is lost, the rest goes on."""

from __future__ import annotations

import pytest

from finsight import migrate, warehouse
from finsight.aws import client, kms_key_id
from finsight.config import Environment
from finsight.local.aws_bootstrap import queue_name
from finsight.local.snowpipe import discard, drain
from finsight.local.stack import LocalStack

pytestmark = pytest.mark.stack


def test_corrupt_parquet_is_reported_and_kept_for_retry(local_env: Environment, local_stack: LocalStack) -> None:
    s3, sqs = client(local_env, "s3"), client(local_env, "sqs")
    queue = sqs.get_queue_url(QueueName=queue_name(local_env))["QueueUrl"]
    table = local_env.table("merchants.merchants")
    migrate.deploy(local_env)  # RAW tables exist even when this module runs first on a fresh stack
    with warehouse.connect(local_env, schema=local_env.snowflake.schemas["raw"]) as conn:
        cur = conn.cursor()
        drain(local_env, cur)  # start from an empty queue
        cur.execute(f"SELECT COUNT(*) FROM {table.raw_name}")
        before = cur.fetchone()[0]
        key = f"{local_env.aws.s3.raw_prefix}/merchants/merchants/dt=2026-01-01/hr=00/corrupt-0000.parquet"
        s3.put_object(Bucket=local_env.aws.s3.bucket, Key=key, Body=b"not parquet at all",
                      ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_id(local_env))  # fmt: skip
        try:
            run = drain(local_env, cur)
            (error,) = [e for e in run.errors if key in e]
            assert error.startswith(f"{table.raw_name}_PIPE: {key}: ")
            # the event stays queued (retried on the next drain) and RAW is untouched
            attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
            assert int(attrs["ApproximateNumberOfMessagesNotVisible"]) + int(attrs["ApproximateNumberOfMessages"]) >= 1
            cur.execute(f"SELECT COUNT(*) FROM {table.raw_name}")
            assert cur.fetchone()[0] == before
        finally:
            s3.delete_object(Bucket=local_env.aws.s3.bucket, Key=key)
            assert discard(local_env, key) >= 1  # what an operator does after removing a bad file
