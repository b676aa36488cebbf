"""The quarantine Lambda's handler (finsight/quarantine.py) against a private moto server, fed a Snowpipe error
notification shaped as Snowflake documents it and wrapped in the SNS event Lambda receives.

A private server on a free port: the shared stack's bucket is never touched, and nothing needs cleaning up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from finsight import catalog, quarantine
from finsight.config import load_environment
from tests.ports import free_port

ENV = load_environment("dev")  # names as deployed: bucket, raw prefix, pipe names
BUCKET = ENV.aws.s3.bucket
RAW = ENV.aws.s3.raw_prefix
RECORDS = catalog.load_errors_records_prefix(ENV)


@dataclass(frozen=True)
class Moto:
    s3: Any
    key_arn: str


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        kwargs = {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": ENV.aws.region,
                  "aws_access_key_id": "local", "aws_secret_access_key": "local"}  # fmt: skip
        s3 = boto3.client("s3", **kwargs)
        s3.create_bucket(Bucket=BUCKET)
        # versioned, as the raw bucket is in AWS: a rewritten record would show as a second version
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        key_arn = boto3.client("kms", **kwargs).create_key()["KeyMetadata"]["Arn"]
        yield Moto(s3, key_arn)
    finally:
        server.stop()


@pytest.fixture
def lambda_env(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> Moto:
    """The environment variables cdktf gives the function (cdktf/finsight_infra/quarantine.py)."""
    monkeypatch.setenv(quarantine.ENV_BUCKET, BUCKET)
    monkeypatch.setenv(quarantine.ENV_KMS_KEY, moto.key_arn)
    monkeypatch.setenv(quarantine.ENV_QUARANTINE_PREFIX, catalog.QUARANTINE_PREFIX)
    monkeypatch.setenv(quarantine.ENV_RECORDS_PREFIX, RECORDS)
    return moto


def _land(moto: Moto, name: str) -> str:
    key = f"{RAW}/merchants/merchants/dt=2026-11-27/hr=14/{name}-0000.parquet"
    moto.s3.put_object(Bucket=BUCKET, Key=key, Body=b"not parquet at all",
                       ServerSideEncryption="aws:kms", SSEKMSKeyId=moto.key_arn)  # fmt: skip
    return key


def _notification(message_id: str, *keys: str, **overrides: Any) -> dict[str, Any]:
    folder = f"{RAW}/merchants/merchants/"
    body = {
        "version": "1.0",
        "messageId": message_id,
        "messageType": "INGEST_FAILED_FILE",
        "timestamp": "2026-11-27T14:03:29.471Z",
        "accountName": "AB12345",
        "pipeName": f"{ENV.snowflake.database}.RAW.MERCHANTS__MERCHANTS_PIPE",
        "tableName": f"{ENV.snowflake.database}.RAW.MERCHANTS__MERCHANTS",
        "stageLocation": f"s3://{BUCKET}/{folder}",
        "messages": [
            {"fileName": k.removeprefix(folder), "firstError": "Invalid parquet file: magic bytes not found"}
            for k in keys
        ],
    }
    body.update(overrides)
    return body


def _sns_event(*messages: dict[str, Any] | str) -> dict[str, Any]:
    """What SNS hands a subscribed Lambda: the notification as a string in Records[].Sns.Message."""
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": m if isinstance(m, str) else json.dumps(m)}}
                        for m in messages]}  # fmt: skip


def _exists(moto: Moto, key: str) -> bool:
    return "Contents" in moto.s3.list_objects_v2(Bucket=BUCKET, Prefix=key)


def _records(moto: Moto) -> list[dict[str, Any]]:
    listed = moto.s3.list_objects_v2(Bucket=BUCKET, Prefix=RECORDS).get("Contents", [])
    return [json.loads(moto.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()) for o in listed]


def _record_versions(moto: Moto) -> int:
    return len(moto.s3.list_object_versions(Bucket=BUCKET, Prefix=RECORDS).get("Versions", []))


def test_a_failed_file_is_moved_encrypted_and_recorded_once(lambda_env: Moto) -> None:
    moto = lambda_env
    bad, other = _land(moto, "corrupt-a"), _land(moto, "corrupt-b")
    target = catalog.quarantine_key(ENV, bad)
    before = len(_records(moto))
    event = _sns_event(_notification("msg-1", bad, other))

    out = quarantine.handler(event, None, moto.s3)

    assert [r["outcome"] for r in out["records"]] == ["moved", "moved"]
    assert not _exists(moto, bad) and not _exists(moto, other)  # originals gone
    head = moto.s3.head_object(Bucket=BUCKET, Key=target)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == moto.key_arn
    assert moto.s3.get_object(Bucket=BUCKET, Key=target)["Body"].read() == b"not parquet at all"
    # the record the LOAD_ERRORS pipe loads: bare pipe name, full key, error, quarantine key, naive UTC time
    records = [r for r in _records(moto) if r["key"] == bad]
    assert records == [
        {"pipe": "MERCHANTS__MERCHANTS_PIPE", "key": bad, "error": "Invalid parquet file: magic bytes not found",
         "quarantine_key": target, "failed_at": "2026-11-27 14:03:29.471000"}
    ]  # fmt: skip
    assert len(_records(moto)) == before + 2
    versions = _record_versions(moto)

    # SNS delivers at least once: the same notification again changes nothing and writes no second record
    again = quarantine.handler(event, None, moto.s3)
    assert [r["outcome"] for r in again["records"]] == ["already_quarantined", "already_quarantined"]
    assert moto.s3.head_object(Bucket=BUCKET, Key=target)["ServerSideEncryption"] == "aws:kms"
    assert len(_records(moto)) == before + 2
    assert _record_versions(moto) == versions  # not rewritten: Snowpipe would load a rewritten object again


def test_a_file_already_gone_is_recorded_without_a_quarantine_key(lambda_env: Moto) -> None:
    key = f"{RAW}/merchants/merchants/dt=2026-11-27/hr=14/removed-by-operator-0000.parquet"
    (record,) = quarantine.handler(_sns_event(_notification("msg-gone", key)), None, lambda_env.s3)["records"]
    assert record["outcome"] == "gone" and record["quarantine_key"] is None
    assert not _exists(lambda_env, catalog.quarantine_key(ENV, key))


@pytest.mark.parametrize(
    ("stage", "file_name"),
    [
        (f"s3://{BUCKET}/{RAW}/merchants/merchants/", "dt=2026-11-27/hr=14/b-0000.parquet"),  # the pipe's folder
        (f"s3://{BUCKET}/{RAW}/", "/merchants/merchants/dt=2026-11-27/hr=14/b-0000.parquet"),  # the stage root
        (f"s3://{BUCKET}/{RAW}", f"{RAW}/merchants/merchants/dt=2026-11-27/hr=14/b-0000.parquet"),  # path repeated
    ],
)
def test_the_key_is_the_stage_location_plus_the_file_name(stage: str, file_name: str) -> None:
    message = _notification("m", "x", stageLocation=stage, messages=[{"fileName": file_name, "firstError": "e"}])
    (failed,) = quarantine.parse_notification(json.dumps(message), BUCKET)
    assert failed.key == f"{RAW}/merchants/merchants/dt=2026-11-27/hr=14/b-0000.parquet"
    assert failed.pipe == "MERCHANTS__MERCHANTS_PIPE" and failed.failed_at == "2026-11-27 14:03:29.471000"


def test_other_messages_on_the_alert_topic_are_ignored(lambda_env: Moto) -> None:
    """The topic also carries CloudWatch alarms and task errors; the subscription filters them, the handler too."""
    alarm = {"AlarmName": "finsight-dev-scheduler-dlq-depth", "messageType": "ALARM"}
    assert quarantine.handler(_sns_event(alarm), None, lambda_env.s3) == {"records": []}


@pytest.mark.parametrize(
    ("message", "named"),
    [
        (_notification("m", "x", pipeName=None), "'pipeName'"),
        ({k: v for k, v in _notification("m", "x").items() if k != "stageLocation"}, "'stageLocation' is missing"),
        (_notification("m", "x", messages=[{"fileName": "a.parquet"}]), "messages[0]: field 'firstError'"),
        (_notification("m", "x", messages=[]), "'messages' is empty"),
        (_notification("m", "x", stageLocation="s3://someone-elses-bucket/raw/"), "'stageLocation'"),
        (_notification("m", "x", timestamp="yesterday"), "'timestamp'"),
        ("{not json", "not JSON"),
    ],
)
def test_a_malformed_notification_is_a_clear_error_and_moves_nothing(
    lambda_env: Moto, message: dict[str, Any] | str, named: str
) -> None:
    bad = _land(lambda_env, "corrupt-malformed")
    with pytest.raises(quarantine.NotificationError, match="Snowpipe error notification") as err:
        quarantine.handler(_sns_event(message), None, lambda_env.s3)
    assert named in str(err.value)
    assert _exists(lambda_env, bad)


def test_a_copy_that_cannot_be_verified_keeps_the_original(moto: Moto) -> None:
    """Naming another key than the one S3 reports on the copy: the verification refuses, the original stays."""
    bad = _land(moto, "corrupt-unverified")
    other_key = boto3.client("kms", endpoint_url=moto.s3.meta.endpoint_url, region_name=ENV.aws.region,
                             aws_access_key_id="local", aws_secret_access_key="local",
                             ).create_key()["KeyMetadata"]["Arn"]  # fmt: skip
    target = catalog.quarantine_key(ENV, bad)
    with pytest.raises(quarantine.QuarantineError, match="kept"):
        _MisreportingS3(moto.s3, other_key).move(bad, target, moto.key_arn)
    assert _exists(moto, bad)


class _MisreportingS3:
    """Copies with one key, verifies against another: what a wrong SSEKMSKeyId on the copy would look like."""

    def __init__(self, s3: Any, actual_key: str) -> None:
        self._s3, self._actual = s3, actual_key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def copy_object(self, **kwargs: Any) -> Any:
        return self._s3.copy_object(**{**kwargs, "SSEKMSKeyId": self._actual})

    def move(self, key: str, target: str, expected_key: str) -> str:
        return quarantine.move_to_quarantine(self, BUCKET, key, target, expected_key)


def test_the_load_errors_pipe_reads_what_the_handler_writes() -> None:
    """The AWS-only LOAD_ERRORS pipe copies the handler's records: same folder, same JSON fields, into OPS."""
    import re
    from dataclasses import fields

    from finsight import migrate

    sql = migrate.render_all(ENV)["R__raw_tables_and_pipes.sql"]
    pipe = catalog.load_errors_pipe(ENV)
    block = re.search(rf"CREATE PIPE IF NOT EXISTS \S+\.{pipe['name']}\b.*?(?:;|\Z)", sql, re.S)
    assert block, "the LOAD_ERRORS pipe is not rendered for AWS"
    text = block.group(0)
    assert f"ERROR_INTEGRATION = {catalog.error_integration(ENV)}" in text
    assert f"INTO {ENV.snowflake.schemas['ops']}.{catalog.LOAD_ERRORS_TABLE} " in text
    # the stage (over s3://<bucket>/<raw_prefix>/) folder it copies from is where the Lambda writes its records
    stage = f"@{ENV.snowflake.schemas['raw']}.{catalog.LANDING_STAGE}/"
    assert f"FROM {stage}{RECORDS.removeprefix(RAW + '/')}\n" in text
    written = {f.name for f in fields(quarantine.LoadErrorRecord)} - {"outcome"}
    assert set(re.findall(r"\$1:(\w+)::", text)) == written
    # locally the pipe player inserts the record itself: no such pipe to play
    assert pipe["name"] not in migrate.render_all(load_environment("local"))["R__raw_tables_and_pipes.sql"]
