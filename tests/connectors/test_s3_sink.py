"""The landing zone's multipart sink on moto: parts under the configured KMS key, nothing left by a failed file."""

from __future__ import annotations

import os

import pytest

from connectors.landing import s3_sink
from connectors.landing.s3_sink import S3MultipartSink
from finsight.aws import client, data_key_arn
from finsight.config import Environment
from finsight.local.stack import LocalStack

pytestmark = pytest.mark.stack
UNENCRYPTED_BUCKET = "finsight-test-no-default-encryption"


@pytest.fixture
def bare_bucket(local_env: Environment, local_stack: LocalStack) -> str:
    """A bucket with no default encryption: only the writer's own SSE-KMS arguments can encrypt what lands."""
    s3 = client(local_env, "s3")
    s3.create_bucket(Bucket=UNENCRYPTED_BUCKET)
    return UNENCRYPTED_BUCKET


def test_multipart_object_is_whole_and_under_our_kms_key(local_env: Environment, bare_bucket: str) -> None:
    s3 = client(local_env, "s3")
    payload = os.urandom(s3_sink.PART_BYTES * 2 + 12345)  # three parts, the last one short
    sink = S3MultipartSink(s3, bare_bucket, "raw/x/multi.parquet", data_key_arn(local_env))
    for i in range(0, len(payload), 1 << 20):
        sink.write(payload[i : i + (1 << 20)])
    sink.close()
    head = s3.head_object(Bucket=bare_bucket, Key="raw/x/multi.parquet")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(data_key_arn(local_env).split("/")[-1])
    assert s3.get_object(Bucket=bare_bucket, Key="raw/x/multi.parquet")["Body"].read() == payload


def test_small_object_is_one_put_under_our_kms_key(local_env: Environment, bare_bucket: str) -> None:
    s3 = client(local_env, "s3")
    sink = S3MultipartSink(s3, bare_bucket, "raw/x/small.parquet", data_key_arn(local_env))
    sink.write(b"tiny")
    sink.close()
    head = s3.head_object(Bucket=bare_bucket, Key="raw/x/small.parquet")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(data_key_arn(local_env).split("/")[-1])


def test_an_aborted_file_leaves_nothing_behind(local_env: Environment, bare_bucket: str) -> None:
    s3 = client(local_env, "s3")
    sink = S3MultipartSink(s3, bare_bucket, "raw/x/aborted.parquet", data_key_arn(local_env))
    sink.write(os.urandom(s3_sink.PART_BYTES + 1))  # one part uploaded
    sink.abort()
    assert "Contents" not in s3.list_objects_v2(Bucket=bare_bucket, Prefix="raw/x/aborted")
    assert not s3.list_multipart_uploads(Bucket=bare_bucket).get("Uploads")
