"""One bad file among good ones: it is quarantined, recorded, alerted, and every other file still loads.

And the run that meets it is PARTIAL, never SUCCEEDED; a released file goes back through its pipe.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from connectors.run import extract_source
from finsight import catalog, deploy_fingerprint, warehouse
from finsight.aws import client, data_key_arn
from finsight.config import Environment
from finsight.local.cycle import hourly_cycle
from finsight.local.snowpipe import drain, load_errors, release
from finsight.local.stack import LocalStack
from tests.warehouse.helpers import last_run_detail, sf

pytestmark = pytest.mark.stack


@pytest.fixture
def alerts(local_env: Environment, local_stack: LocalStack) -> Iterator[str]:
    """An SQS queue subscribed to the data-engineering alert topic: what on-call receives."""
    sns, sqs = client(local_env, "sns"), client(local_env, "sqs")
    topic = sns.create_topic(Name=local_env.aws.alert_topics["data_engineering"])["TopicArn"]  # exists: its ARN
    url = sqs.create_queue(QueueName="test-load-fault-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)["SubscriptionArn"]
    yield url
    sns.unsubscribe(SubscriptionArn=sub)
    sqs.delete_queue(QueueUrl=url)


def _put_corrupt(env: Environment, name: str) -> str:
    key = f"{env.aws.s3.raw_prefix}/merchants/merchants/dt=2026-01-01/hr=00/{name}-0000.parquet"
    client(env, "s3").put_object(Bucket=env.aws.s3.bucket, Key=key, Body=b"not parquet at all",
                                 ServerSideEncryption="aws:kms", SSEKMSKeyId=data_key_arn(env))  # fmt: skip
    return key


def _cleanup(env: Environment, key: str) -> None:
    s3 = client(env, "s3")
    for k in (key, catalog.quarantine_key(env, key)):
        s3.delete_object(Bucket=env.aws.s3.bucket, Key=k)
    with warehouse.connect(env) as conn:
        conn.cursor().execute(f"DELETE FROM OPS.LOAD_ERRORS WHERE FILE_KEY = '{key}'")


def test_a_bad_file_is_quarantined_and_every_other_file_loads(
    local_env: Environment, local_stack: LocalStack, alerts: str
) -> None:
    deploy_fingerprint.deploy_if_changed(local_env)
    s3, bucket = client(local_env, "s3"), local_env.aws.s3.bucket
    with warehouse.connect(local_env, schema=local_env.snowflake.schemas["raw"]) as conn:
        cur = conn.cursor()
        drain(local_env, cur)  # start from an empty queue
        local_stack.mutate(501)
        good = [b for s in ("merchants", "payments") for b in extract_source(local_env, s).batches]
        bad = _put_corrupt(local_env, "corrupt-load-fault")
        try:
            run = drain(local_env, cur)
            # the bad file: out of the pipe's way, recorded with pipe + key + error, alerted
            assert run.quarantined == [bad]
            (error,) = [e for e in run.errors if bad in e]
            assert error.startswith("MERCHANTS__MERCHANTS_PIPE: ")
            assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=bad)
            assert s3.head_object(Bucket=bucket, Key=catalog.quarantine_key(local_env, bad))["ServerSideEncryption"]
            (recorded,) = [e for e in load_errors(local_env, cur) if e.key == bad]
            assert recorded.pipe == "MERCHANTS__MERCHANTS_PIPE" and recorded.error and recorded.released_at is None
            messages = client(local_env, "sqs").receive_message(QueueUrl=alerts, WaitTimeSeconds=2)["Messages"]
            alert = json.loads(json.loads(messages[0]["Body"])["Message"])
            assert alert["key"] == bad and alert["pipe"] == "MERCHANTS__MERCHANTS_PIPE"
            # every good file loaded, including the one of the same pipe
            for batch in good:
                raw = local_env.table(batch.table).raw_name
                cur.execute(f"SELECT COUNT(*) FROM {raw} WHERE _BATCH_ID = '{batch.batch_id}'")
                assert cur.fetchone()[0] == batch.rows, batch.table
            assert run.files_loaded >= len([b for b in good if b.rows]) and not run.retry
            # the event is gone: the next drain does not stumble on it again
            assert drain(local_env, cur).errors == []

            # released while still bad: it goes through its pipe again and back to quarantine
            assert release(local_env, cur, bad) == bad
            again = drain(local_env, cur)
            assert again.quarantined == [bad]
            history = [e for e in load_errors(local_env, cur, include_released=True) if e.key == bad]
            assert len(history) == 2 and history[0].released_at is not None and history[1].released_at is None
        finally:
            _cleanup(local_env, bad)


def test_a_run_that_meets_a_bad_file_is_partial(local_env: Environment, local_stack: LocalStack) -> None:
    deploy_fingerprint.deploy_if_changed(local_env)
    bad = _put_corrupt(local_env, "corrupt-partial-run")
    try:
        cycle = hourly_cycle(local_env)
        assert not cycle.ok
        assert cycle.dag.state == "PARTIAL"
        by_name = {t.name: t for t in cycle.dag.tasks}
        assert by_name["LOAD"].state == "FAILED" and bad in by_name["LOAD"].error
        # what loaded was merged and published: only the stage failed
        assert all(t.state == "SUCCEEDED" for n, t in by_name.items() if n.startswith(("MERGE_", "MART_")))
        detail = last_run_detail(local_env, cycle.run_id)
        assert detail["state"] == "PARTIAL" and detail["failed_stages"] == ["LOAD"]
        rows = sf(local_env, f"SELECT STATE, ERROR_MESSAGE FROM OPS.TASK_HISTORY WHERE GRAPH_RUN_GROUP_ID = "
                             f"'{cycle.run_id}' AND NAME = 'LOAD'")  # fmt: skip
        assert rows[0][0] == "FAILED" and bad in rows[0][1]
    finally:
        _cleanup(local_env, bad)
