"""Connector watermarks, one small JSON object per table in S3 (outside the raw prefix: no Snowpipe, no expiry).

The state is written only after a batch's files and manifest are all in S3, so a crash re-extracts, never skips.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from finsight.aws import client, data_key_arn
from finsight.catalog import state_key
from finsight.config import Environment, Table


def load_state(env: Environment, table: Table) -> dict[str, Any]:
    """The table's watermark; {} on its first run (no state object yet)."""
    s3, bucket, key = client(env, "s3"), env.aws.s3.bucket, state_key(table)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return {}
    except ClientError as exc:
        # Without s3:ListBucket on the key, S3 answers a missing object with 403, not 404 (GetObject API reference,
        # "Permissions"). The role may list its own state prefix: a 403 for a key that is not there is a first run;
        # a 403 for one that is there is a real refusal and stays an error.
        if exc.response.get("Error", {}).get("Code") != "AccessDenied" or _exists(s3, bucket, key):
            raise
        return {}
    return json.loads(body)


def _exists(s3: Any, bucket: str, key: str) -> bool:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
    return any(o["Key"] == key for o in listed)


def save_state(env: Environment, table: Table, state: dict[str, Any]) -> None:
    client(env, "s3").put_object(
        Bucket=env.aws.s3.bucket,
        Key=state_key(table),
        Body=json.dumps(state).encode(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=data_key_arn(env),
    )


def reset_state(env: Environment, table: Table) -> None:
    client(env, "s3").delete_object(Bucket=env.aws.s3.bucket, Key=state_key(table))


def save_state_unless_superseded(env: Environment, table: Table, state: dict[str, Any]) -> bool:
    """Save a run's state unless a run that read the source later has already saved its own; returns whether saved.

    A run that overran its hour can finish after the next hour's run. That run's window covered this one's and its
    delete check is newer: overwriting it would move the watermark back and forget the keys the newer check saw, so
    a row born after this run's read and deleted later would never be tombstoned (found by the chaos suite).
    """
    stored = load_state(env, table)
    read, stored_read = state.get("read_at"), stored.get("read_at")
    if read and stored_read and datetime.fromisoformat(stored_read) > datetime.fromisoformat(read):
        return False
    save_state(env, table, state)
    return True
