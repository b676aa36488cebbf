"""Quarantine of files a pipe could not load: ONE implementation for the local pipe player and the AWS Lambda.

Snowpipe skips a file it cannot load and reports it through the pipe's ERROR_INTEGRATION: a JSON notification on
the data-engineering alert topic (Snowflake's documented payload):

    {"version": "1.0", "messageId": "...", "messageType": "INGEST_FAILED_FILE", "timestamp": "2026-...Z",
     "accountName": "...", "pipeName": "DB.RAW.X_PIPE", "tableName": "DB.RAW.X",
     "stageLocation": "s3://<bucket>/raw/<source>/<table>/",
     "messages": [{"fileName": "dt=.../hr=.../<batch>-0000.parquet", "firstError": "..."}]}

`handler` (the Lambda subscribed to that topic) moves each named file to s3://<bucket>/quarantine/<original key>
(copy with the raw key's SSE-KMS, verify, then delete the original) and writes one small JSON record per file under
`<raw_prefix>/_load_errors/`, which the LOAD_ERRORS pipe copies into OPS.LOAD_ERRORS (see docs/warehouse.md).
The local pipe player (finsight/local/snowpipe.py) calls the same `move_to_quarantine` and inserts the same record.

Dependency-light on purpose: the standard library and boto3 (which the Lambda runtime ships). The function's zip
holds only this package's `__init__` and this module, so it imports nothing else from finsight.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

FAILED_FILE = "INGEST_FAILED_FILE"  # the only messageType Snowpipe's error integration sends for a file
# Lambda environment variables (set by cdktf/finsight_infra/quarantine.py from the environment config)
ENV_BUCKET = "FINSIGHT_RAW_BUCKET"
ENV_KMS_KEY = "FINSIGHT_RAW_KMS_KEY_ARN"
ENV_QUARANTINE_PREFIX = "FINSIGHT_QUARANTINE_PREFIX"
ENV_RECORDS_PREFIX = "FINSIGHT_LOAD_ERRORS_PREFIX"

Outcome = Literal["moved", "already_quarantined", "gone"]


class NotificationError(ValueError):
    """The notification is not the Snowpipe error payload we expect; the message names the field."""


class QuarantineError(RuntimeError):
    """The copy could not be verified: the original is kept (nothing is lost, the delivery is retried)."""


@dataclass(frozen=True)
class FailedFile:
    pipe: str  # bare pipe name (as the local player records it), e.g. MERCHANTS__MERCHANTS_PIPE
    key: str  # object key in the raw bucket
    error: str
    failed_at: str  # ISO-8601 UTC, from the notification
    message_id: str


@dataclass(frozen=True)
class LoadErrorRecord:
    """One row for OPS.LOAD_ERRORS (PIPE_NAME, FILE_KEY, ERROR, QUARANTINE_KEY, FAILED_AT)."""

    pipe: str
    key: str
    error: str
    quarantine_key: str | None  # None: the file was already gone (removed by an operator), nothing to move
    failed_at: str
    outcome: Outcome


def quarantine_key(prefix: str, key: str) -> str:
    """s3://<bucket>/<prefix>/<original key>: outside raw/, so no pipe event and no RAW lifecycle."""
    return f"{prefix.strip('/')}/{key}"


# -- parsing --------------------------------------------------------------------------------------------------
def _field(obj: dict[str, Any], name: str, where: str, kind: type = str) -> Any:
    if name not in obj:
        raise NotificationError(f"Snowpipe error notification: {where}: field {name!r} is missing")
    value = obj[name]
    if not isinstance(value, kind) or (kind is str and not value.strip()):
        raise NotificationError(
            f"Snowpipe error notification: {where}: field {name!r} must be a non-empty {kind.__name__}, "
            f"got {type(value).__name__}"
        )
    return value


def _utc(timestamp: str) -> str:
    """ISO-8601 (Snowflake sends `...Z`) -> naive UTC text, what OPS.LOAD_ERRORS.FAILED_AT (TIMESTAMP_NTZ) holds."""
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError as exc:
        problem = f"Snowpipe error notification: field 'timestamp' is not ISO-8601: {timestamp!r}"
        raise NotificationError(problem) from exc
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(sep=" ")


def parse_notification(message: str | dict[str, Any], bucket: str) -> list[FailedFile]:
    """The failed files of one notification; [] for another message type on the same topic (not ours)."""
    if isinstance(message, str):
        try:
            message = json.loads(message)
        except json.JSONDecodeError as exc:
            raise NotificationError(f"Snowpipe error notification: not JSON ({exc.msg} at {exc.pos})") from exc
    if not isinstance(message, dict):
        raise NotificationError("Snowpipe error notification: not a JSON object")
    if _field(message, "messageType", "message") != FAILED_FILE:
        return []
    message_id = _field(message, "messageId", "message")
    failed_at = _utc(_field(message, "timestamp", "message"))
    pipe = _field(message, "pipeName", "message").rsplit(".", 1)[-1].strip('"')
    location = _field(message, "stageLocation", "message")
    scheme, _, rest = location.partition("://")
    stage_bucket, _, stage_path = rest.partition("/")
    if scheme != "s3" or stage_bucket != bucket:
        raise NotificationError(
            f"Snowpipe error notification: field 'stageLocation' is {location!r}, not a location in s3://{bucket}/"
        )
    entries = _field(message, "messages", "message", list)
    out = []
    for i, entry in enumerate(entries):
        where = f"messages[{i}]"
        if not isinstance(entry, dict):
            raise NotificationError(f"Snowpipe error notification: {where} is not an object")
        name = _field(entry, "fileName", where).lstrip("/")
        folder = stage_path.strip("/")
        # fileName is relative to stageLocation; tolerate one that already repeats the stage path
        key = name if not folder or name.startswith(folder + "/") else f"{folder}/{name}"
        out.append(FailedFile(pipe, key, _field(entry, "firstError", where), failed_at, message_id))
    if not out:
        raise NotificationError("Snowpipe error notification: field 'messages' is empty")
    return out


# -- moving ---------------------------------------------------------------------------------------------------
def _missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound")


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _missing(exc):
            return None
        raise


def _same_key(reported: str | None, expected: str) -> bool:
    # S3 reports the key ARN; callers may name the key by id or ARN
    return bool(reported) and (reported == expected or reported.endswith("/" + expected.rsplit("/", 1)[-1]))


def move_to_quarantine(s3: Any, bucket: str, key: str, target: str, kms_key_id: str) -> Outcome:
    """Copy `key` to `target` under the raw KMS key, verify the copy, then delete the original.

    Idempotent: when the original is gone and the copy exists (a redelivered notification, or a retry after the
    delete) nothing happens; when both are gone the file was removed by someone else, which is not an error.
    """
    source = _head(s3, bucket, key)
    if source is None:
        return "already_quarantined" if _head(s3, bucket, target) is not None else "gone"
    s3.copy_object(Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": key},
                   ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_id)  # fmt: skip
    copy = _head(s3, bucket, target)
    problems = []
    if copy is None:
        problems.append("the copy is missing")
    else:
        if copy.get("ContentLength") != source.get("ContentLength"):
            problems.append(f"size {copy.get('ContentLength')} != {source.get('ContentLength')}")
        if copy.get("ServerSideEncryption") != "aws:kms" or not _same_key(copy.get("SSEKMSKeyId"), kms_key_id):
            problems.append("the copy is not encrypted with the raw KMS key")
    if problems:
        raise QuarantineError(f"s3://{bucket}/{target}: {'; '.join(problems)}; s3://{bucket}/{key} kept")
    s3.delete_object(Bucket=bucket, Key=key)
    return "moved"


def quarantine_files(
    s3: Any, bucket: str, kms_key_id: str, prefix: str, files: list[FailedFile]
) -> list[LoadErrorRecord]:
    """Move every failed file; returns the OPS.LOAD_ERRORS records (one per file, whatever the outcome)."""
    records = []
    for f in files:
        target = quarantine_key(prefix, f.key)
        outcome = move_to_quarantine(s3, bucket, f.key, target, kms_key_id)
        records.append(
            LoadErrorRecord(f.pipe, f.key, f.error, None if outcome == "gone" else target, f.failed_at, outcome)
        )
    return records


# -- recording (AWS) ------------------------------------------------------------------------------------------
def record_key(records_prefix: str, f: FailedFile) -> str:
    """Deterministic per (notification, file): a redelivered notification finds its record already written."""
    digest = hashlib.sha256(f"{f.message_id}\n{f.key}".encode()).hexdigest()[:32]
    return f"{records_prefix.rstrip('/')}/{f.failed_at[:10]}/{digest}.json"


def write_records(
    s3: Any, bucket: str, kms_key_id: str, records_prefix: str, files: list[FailedFile], records: list[LoadErrorRecord]
) -> list[str]:
    """One JSON object per record, loaded into OPS.LOAD_ERRORS by its pipe; an existing record is not rewritten
    (a rewritten object would carry a new ETag, and Snowpipe would load it twice)."""
    written = []
    for f, record in zip(files, records, strict=True):
        key = record_key(records_prefix, f)
        if _head(s3, bucket, key) is not None:
            continue
        body = {k: v for k, v in asdict(record).items() if k != "outcome"}
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode(), ContentType="application/json",
                      ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_id)  # fmt: skip
        written.append(key)
    return written


def handle_notification(
    s3: Any, message: str | dict[str, Any], bucket: str, kms_key_id: str, prefix: str, records_prefix: str
) -> list[LoadErrorRecord]:
    files = parse_notification(message, bucket)
    records = quarantine_files(s3, bucket, kms_key_id, prefix, files)
    write_records(s3, bucket, kms_key_id, records_prefix, files, records)
    return records


def handler(event: dict[str, Any], context: Any = None, s3: Any = None) -> dict[str, Any]:
    """AWS Lambda entry point: an SNS event carrying Snowpipe error notifications. An exception fails the
    invocation: Lambda retries it, then hands the event to the DLQ (alarmed)."""
    if s3 is None:
        import boto3  # the Lambda runtime ships it

        s3 = boto3.client("s3")
    bucket, key_arn = os.environ[ENV_BUCKET], os.environ[ENV_KMS_KEY]
    prefix, records_prefix = os.environ[ENV_QUARANTINE_PREFIX], os.environ[ENV_RECORDS_PREFIX]
    records: list[LoadErrorRecord] = []
    for i, record in enumerate(event.get("Records") or []):
        try:
            message = record["Sns"]["Message"]
        except (KeyError, TypeError) as exc:
            raise NotificationError(f"SNS event: Records[{i}].Sns.Message is missing") from exc
        records += handle_notification(s3, message, bucket, key_arn, prefix, records_prefix)
    out = [asdict(r) for r in records]
    print(json.dumps({"quarantined": out}))  # one structured log line per invocation (CloudWatch Logs)
    return {"records": out}
