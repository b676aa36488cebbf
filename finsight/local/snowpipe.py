"""The local stand-in for Snowpipe auto-ingest: S3 event notifications (moto SQS) -> the pipe's own COPY.

The COPY text comes from finsight.catalog.pipe_copy_sql, the function the CREATE PIPE migration is rendered with;
the player only names the notified file. Each file loads on its own, as Snowpipe does: a file the pipe cannot
load (not Parquet, wrong schema, a number out of its RAW column's range) is moved to the quarantine prefix
(s3://<bucket>/quarantine/<original key>), recorded in OPS.LOAD_ERRORS with pipe, key and error, alerted on the
data-engineering SNS topic, and every other file still loads. `release` puts a quarantined file back (a new S3
event: the pipe tries again). A failure that is not about the file (the warehouse is unreachable) keeps the event
queued for the next drain.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import pyarrow as pa
import snowflake.connector.errors
from botocore.exceptions import ClientError

from finsight import catalog, warehouse
from finsight.aws import as_alert_publisher, as_quarantine_handler, client, data_key_arn
from finsight.config import Environment
from finsight.idle_pool import IdlePool
from finsight.local.aws_bootstrap import queue_name
from finsight.local.raw_evolution import columns_now, evolve_raw_for_file
from finsight.ops.ownership import topic_arn
from finsight.quarantine import move_to_quarantine


@dataclass
class PipeRun:
    files_loaded: int = 0
    files_skipped: int = 0
    rows_loaded: int = 0
    errors: list[str] = field(default_factory=list)  # `<pipe>: <key>: <error>` for quarantined and retried files
    quarantined: list[str] = field(default_factory=list)  # original keys moved to the quarantine prefix
    retry: list[str] = field(default_factory=list)  # keys whose event stays queued (transient failure)
    pipes: dict[str, int] = field(default_factory=dict)  # files loaded per pipe


@dataclass(frozen=True)
class LoadError:
    pipe: str
    key: str
    error: str
    quarantine_key: str | None
    failed_at: Any
    released_at: Any


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


def _errors_table(env: Environment) -> str:
    return f"{env.snowflake.schemas['ops']}.{catalog.LOAD_ERRORS_TABLE}"


def _literal(value: object) -> str:
    return "NULL" if value is None else "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def quarantine(env: Environment, cursor: Any, pipe: str, key: str, error: str) -> str:
    """Move the file out of the pipe's way, record it and alert; returns the quarantine key.

    The move is finsight.quarantine's, the one the AWS Lambda runs on Snowpipe's error notifications."""
    target = catalog.quarantine_key(env, key)
    with as_quarantine_handler(env):  # the Lambda's role, under the statements cdktf deploys for it
        move_to_quarantine(client(env, "s3"), env.aws.s3.bucket, key, target, data_key_arn(env))
    cursor.execute(
        f"INSERT INTO {_errors_table(env)} (PIPE_NAME, FILE_KEY, ERROR, QUARANTINE_KEY, FAILED_AT) VALUES "
        f"({_literal(pipe)}, {_literal(key)}, {_literal(error)}, {_literal(target)}, CURRENT_TIMESTAMP())"
    )
    with as_alert_publisher(env):  # Snowpipe's error integration publishes to the data-engineering topic
        client(env, "sns").publish(
            TopicArn=topic_arn(env, "data_engineering"),
            Subject=f"finsight {env.name}: file quarantined by {pipe}",
            Message=json.dumps({"pipe": pipe, "key": key, "quarantine_key": target, "error": error}),
        )
    return target


def _is_file_error(exc: Exception) -> bool:
    """The file was the problem (COPY refused it, or it is not readable Parquet), not an unreachable warehouse."""
    return isinstance(exc, snowflake.connector.errors.ProgrammingError | pa.ArrowException)


def _error_text(exc: Exception) -> str:
    """One line per file error, the same whatever the log level: the connector puts the query id into str(exc)
    only when its logger is at INFO or DEBUG, which would make one error two different LOAD_ERRORS texts."""
    if isinstance(exc, snowflake.connector.errors.Error) and exc.errno not in (None, -1) and exc.raw_msg:
        text = f"{exc.errno:06d} ({exc.sqlstate}): {exc.raw_msg}"
    else:
        text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


def _gone(exc: Exception) -> bool:
    """The notified object no longer exists (removed or already quarantined): nothing to load."""
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404")


# How many pipes load at once (Snowpipe loads every notified file independently, on its own compute). Files of one
# table load in the order they were notified, on one connection, so its schema evolution never races.
PIPE_WORKERS = 4


def _load_file(env: Environment, cursor: Any, pipe: dict[str, str], file: str, key: str,
               known: dict[str, dict[str, str]], run: PipeRun, lock: threading.Lock) -> bool:  # fmt: skip
    """Load one notified file; False when its event must stay queued (the failure was not the file's)."""
    try:
        # Snowflake: ENABLE_SCHEMA_EVOLUTION adds columns; a wider NUMBER is cast by value
        evolve_raw_for_file(env, cursor, pipe["target"], key, known)
        cursor.execute(catalog.pipe_copy_sql(env, pipe["target"], pipe["folder"], files=[file]))
        rows = cursor.fetchall()
    except Exception as exc:
        if _gone(exc):
            with lock:
                run.files_skipped += 1
            return True
        error = _error_text(exc)
        with lock:
            run.errors.append(f"{pipe['name']}: {key}: {error}")
        if not _is_file_error(exc):  # not the file's fault: the event stays queued (visible again after its timeout)
            with lock:
                run.retry.append(key)
            return False
        quarantine(env, cursor, pipe["name"], key, error)
        with lock:
            run.quarantined.append(key)
        return True
    with lock:
        for row in rows:
            if row[1] == "LOADED":
                run.files_loaded += 1
                run.rows_loaded += int(row[3])
                run.pipes[pipe["name"]] = run.pipes.get(pipe["name"], 0) + 1
            else:
                run.files_skipped += 1
    return True


def drain(env: Environment, cursor: Any, connect: Callable[[], Any] | None = None) -> PipeRun:
    """Load every notified file; `cursor` is a Snowflake (fakesnow) cursor in the environment's database.

    connect: opens another connection like `cursor`'s, so the files of up to PIPE_WORKERS tables load side by side;
    without it, every file loads on `cursor`, one after another."""
    sqs = client(env, "sqs")
    url = sqs.get_queue_url(QueueName=queue_name(env))["QueueUrl"]
    run, lock = PipeRun(), threading.Lock()
    # per drain: the pipes' target columns in one lookup, not one per table or file. A warehouse that cannot answer
    # now is each file's error below (its event stays queued), so the lookup itself never fails the drain.
    known: dict[str, dict[str, str]] = {}
    with contextlib.suppress(Exception):
        known = columns_now(cursor, sorted({p["target"] for p in catalog.pipes(env)}))

    def open_cursor() -> tuple[Any, Callable[[], None]]:
        assert connect is not None  # without it there is one worker, which always finds `cursor` idle
        conn = connect()
        return conn.cursor(), conn.close

    cursors = IdlePool(cursor, open_cursor)

    def load_table(files: list[tuple[int, str, dict[str, str], str]]) -> set[int]:
        with cursors.borrowed() as own:
            return {i for i, key, pipe, file in files if not _load_file(env, own, pipe, file, key, known, run, lock)}

    try:
        with ThreadPoolExecutor(max_workers=PIPE_WORKERS if connect else 1, thread_name_prefix="pipe") as pool:
            while True:
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                    "Messages", []
                )
                if not messages:
                    return run
                by_table: dict[str, list[tuple[int, str, dict[str, str], str]]] = {}
                for i, message in enumerate(messages):
                    for key in _object_keys(message):
                        if (found := _pipe_for(env, key)) is not None:
                            pipe, file = found
                            by_table.setdefault(pipe["target"], []).append((i, key, pipe, file))
                kept: set[int] = set()
                for held in pool.map(load_table, by_table.values()):
                    kept |= held
                done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
                        if i not in kept]  # fmt: skip
                if done:  # one call per receive (at most 10 messages), as SQS allows
                    failed = sqs.delete_message_batch(QueueUrl=url, Entries=done).get("Failed", [])
                    if failed:
                        raise RuntimeError(f"queue {url}: could not delete loaded events: {failed}")
    finally:
        cursors.close()


def load_landed(env: Environment) -> PipeRun:
    """Drain the queue into RAW as Snowpipe does: the files of up to PIPE_WORKERS tables at once, each table on a
    connection of its own."""

    def connect() -> Any:
        return warehouse.connect(env, schema=env.snowflake.schemas["raw"])

    with connect() as conn:
        return drain(env, conn.cursor(), connect)


def load_errors(env: Environment, cursor: Any, include_released: bool = False) -> list[LoadError]:
    where = "" if include_released else " WHERE RELEASED_AT IS NULL"
    cursor.execute(
        "SELECT PIPE_NAME, FILE_KEY, ERROR, QUARANTINE_KEY, FAILED_AT, RELEASED_AT "
        f"FROM {_errors_table(env)}{where} ORDER BY FAILED_AT"
    )
    return [LoadError(*row) for row in cursor.fetchall()]


def release(env: Environment, cursor: Any, key: str) -> str:
    """Put a quarantined file back under its original key: its S3 event queues it for the pipe again."""
    open_errors = [e for e in load_errors(env, cursor) if key in (e.key, e.quarantine_key)]
    if not open_errors:
        raise KeyError(f"{key!r} is not in quarantine (see `finsight quarantine list`)")
    error = open_errors[-1]
    s3, bucket = client(env, "s3"), env.aws.s3.bucket
    assert error.quarantine_key is not None
    s3.copy_object(Bucket=bucket, Key=error.key, CopySource={"Bucket": bucket, "Key": error.quarantine_key},
                   ServerSideEncryption="aws:kms", SSEKMSKeyId=data_key_arn(env))  # fmt: skip
    s3.delete_object(Bucket=bucket, Key=error.quarantine_key)
    cursor.execute(
        f"UPDATE {_errors_table(env)} SET RELEASED_AT = CURRENT_TIMESTAMP() "
        f"WHERE FILE_KEY = {_literal(error.key)} AND RELEASED_AT IS NULL"
    )
    return error.key


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
