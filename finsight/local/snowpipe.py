"""The local stand-in for Snowpipe auto-ingest: S3 event notifications (moto SQS) -> the pipe's own COPY.

The COPY text comes from finsight.catalog.pipe_copy_sql, the function the CREATE PIPE migration is rendered with;
the player only names the notified file. Messages are deleted after a successful COPY, so a failed load is retried.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from finsight import catalog
from finsight.aws import client
from finsight.config import Environment
from finsight.local.aws_bootstrap import queue_name
from finsight.local.raw_evolution import evolve_raw_for_file


@dataclass
class PipeRun:
    files_loaded: int = 0
    files_skipped: int = 0
    rows_loaded: int = 0
    errors: list[str] = field(default_factory=list)


def _object_keys(message: dict[str, Any]) -> list[str]:
    body = json.loads(message["Body"])
    # keys arrive URL-encoded, as in AWS
    return [unquote_plus(r["s3"]["object"]["key"]) for r in body.get("Records", [])]


def _pipe_for(env: Environment, key: str) -> tuple[dict[str, str], str] | None:
    prefix = f"{env.aws.s3.raw_prefix}/"
    if not key.startswith(prefix):
        return None
    relative = key[len(prefix) :]
    matches = [p for p in catalog.pipes(env) if relative.startswith(p["folder"])]
    if not matches:
        return None
    pipe = max(matches, key=lambda p: len(p["folder"]))
    return pipe, relative[len(pipe["folder"]) :]


def drain(env: Environment, cursor: Any) -> PipeRun:
    """Load every notified file; `cursor` is a Snowflake (fakesnow) cursor in the environment's database."""
    sqs = client(env, "sqs")
    url = sqs.get_queue_url(QueueName=queue_name(env))["QueueUrl"]
    run = PipeRun()
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return run
        for message in messages:
            ok = True
            for key in _object_keys(message):
                found = _pipe_for(env, key)
                if found is None:
                    continue
                pipe, file = found
                try:
                    evolve_raw_for_file(env, cursor, pipe["target"], key)  # Snowflake: ENABLE_SCHEMA_EVOLUTION
                    cursor.execute(catalog.pipe_copy_sql(env, pipe["target"], pipe["folder"], files=[file]))
                    for row in cursor.fetchall():
                        if row[1] == "LOADED":
                            run.files_loaded += 1
                            run.rows_loaded += int(row[3])
                        else:
                            run.files_skipped += 1
                except Exception as exc:
                    ok = False
                    run.errors.append(f"{pipe['name']}: {key}: {str(exc).splitlines()[0]}")
            if ok:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            else:
                return run  # do not spin on a poison message; the next drain retries it


def discard(env: Environment, key: str, timeout: float = 10.0) -> int:
    """Drop the queued events of one object (after an operator removed a bad file); returns how many."""
    sqs = client(env, "sqs")
    url = sqs.get_queue_url(QueueName=queue_name(env))["QueueUrl"]
    dropped, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline and not dropped:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            if key in _object_keys(message):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                dropped += 1
            else:  # not ours: make it visible again at once for the next drain
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return dropped
