"""IAM enforced on the local moto: connectors run as their source's task role, under the statements cdktf deploys.

The roles are rendered by `finsight local up` from finsight.iam_policy (one definition, two renderings). What moto
cannot enforce is pinned by the last tests, each citing the AWS documentation of what AWS does instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connectors.landing.state import load_state, reset_state, save_state
from connectors.run import ExtractionError, extract_source
from finsight import aws, catalog, iam_policy, quarantine
from finsight.config import Environment
from finsight.local import aws_bootstrap, snowpipe
from finsight.local.stack import LocalStack
from finsight.ops import alerts
from finsight.ops.ownership import topic_arn

pytestmark = pytest.mark.stack

EVENT = "before-parameter-build.secrets-manager.GetSecretValue"
NO_PAN_SOURCE = "merchants"  # one small table, no PAN column
PAN_SOURCE = "payments"  # card_number: pci: pan


@pytest.fixture(scope="module")
def env(local_env: Environment, local_stack: LocalStack) -> Environment:
    assert aws.strict_iam(local_env), "local.strict_iam is off: these tests need moto enforcing IAM"
    return local_env


def _put_task_policy(env: Environment, source: str, statements: list[dict[str, Any]]) -> None:
    name = iam_policy.task_role_name(env, source)
    document = iam_policy.document(*aws_bootstrap.moto_statements(statements))
    aws.client(env, "iam").put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=document)


@contextmanager
def task_policy_without(env: Environment, source: str, sid: str, action: str) -> Iterator[None]:
    """The source's deployed task-role statements with one action taken out of one statement; restored after."""
    statements = iam_policy.connector_task_statements(env, source, aws.data_key_arn(env), aws.data_key_arn(env))
    (target,) = [st for st in statements if st["Sid"] == sid]
    assert action in target["Action"], (sid, action)
    target["Action"] = [a for a in target["Action"] if a != action]
    _put_task_policy(env, source, [st for st in statements if st["Action"]])
    try:
        yield
    finally:
        aws_bootstrap.ensure_roles(env, aws.data_key_arn(env))


@contextmanager
def secret_reads(env: Environment, source: str) -> Iterator[list[str]]:
    """The SecretIds the source's role session asks Secrets Manager for (a botocore hook on its cached client)."""
    seen: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(params["SecretId"])

    with aws.as_source_task(env, source):
        events = aws.client(env, "secretsmanager").meta.events
    events.register(EVENT, record)
    try:
        yield seen
    finally:
        events.unregister(EVENT, record)


def test_a_source_role_writes_its_own_prefix_and_not_another_sources(env: Environment) -> None:
    bucket, key_arn = env.aws.s3.bucket, aws.data_key_arn(env)
    own = f"{iam_policy.source_prefix(env, NO_PAN_SOURCE)}iam-test/own.txt"
    other = f"{iam_policy.source_prefix(env, PAN_SOURCE)}iam-test/other.txt"
    with aws.as_source_task(env, NO_PAN_SOURCE):
        s3 = aws.client(env, "s3")
        s3.put_object(Bucket=bucket, Key=own, Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)
        with pytest.raises(ClientError) as denied:
            s3.put_object(Bucket=bucket, Key=other, Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)
        assert denied.value.response["Error"]["Code"] == "AccessDenied"
        with pytest.raises(ClientError, match="AccessDenied"):  # nor read another source's state
            s3.get_object(Bucket=bucket, Key=f"{iam_policy.source_state_prefix(PAN_SOURCE)}payments.json")
    aws.client(env, "s3").delete_object(Bucket=bucket, Key=own)  # the admin cleans up


def test_a_full_source_extraction_works_under_its_role_and_only_pan_sources_read_the_pan_key(
    env: Environment,
) -> None:
    with secret_reads(env, PAN_SOURCE) as pan_reads:
        run = extract_source(env, PAN_SOURCE, mode="full")  # every row: card numbers are certain to be met
    assert run.rows > 0 and all(b.files for b in run.batches)
    assert env.secrets.pan_tokenization_key in pan_reads  # the hook sees reads: the assertion below can fail

    with secret_reads(env, NO_PAN_SOURCE) as reads:
        run = extract_source(env, NO_PAN_SOURCE, mode="full")
    assert run.rows > 0
    assert env.secrets.pan_tokenization_key not in reads, reads  # its role may not read it in AWS
    assert reads, "the run read no secret at all: the hook is not on the client the run used"


def test_without_put_object_a_connector_run_fails_with_access_denied_naming_the_action(env: Environment) -> None:
    with (
        task_policy_without(env, NO_PAN_SOURCE, "WriteOwnRawPrefix", "s3:PutObject"),
        pytest.raises(ExtractionError) as failed,
    ):
        extract_source(env, NO_PAN_SOURCE, mode="full")  # rows to land for certain
    text = str(failed.value)
    assert "AccessDenied" in text and "PutObject" in text, text
    assert NO_PAN_SOURCE in text
    assert extract_source(env, NO_PAN_SOURCE, mode="full").rows > 0  # the deployed policy restored: it lands again


def test_a_missing_watermark_denied_as_403_is_a_first_run_and_an_existing_one_stays_an_error(
    env: Environment,
) -> None:
    """AWS GetObject API reference, Permissions: "If you don't have the s3:ListBucket permission, Amazon S3 returns
    an HTTP status code 403 Access Denied error" for a key that does not exist. moto answers 404 whenever GetObject
    is granted, so the 403 is produced here by withholding GetObject on the state prefix (ListBucket stays)."""
    table = env.table(f"{NO_PAN_SOURCE}.merchants")
    new_table = table.model_copy(update={"name": "iam_test_new_table"})
    existing = table.model_copy(update={"name": "iam_test_existing_table"})
    save_state(env, existing, {"read_at": "2026-12-01T00:00:00"})  # the admin writes a watermark
    try:
        with (
            task_policy_without(env, NO_PAN_SOURCE, "ReadWriteOwnState", "s3:GetObject"),
            aws.as_source_task(env, NO_PAN_SOURCE),
        ):
            assert load_state(env, new_table) == {}  # 403 for a key that is not there: a new table's first run
            with pytest.raises(ClientError, match="AccessDenied"):
                load_state(env, existing)  # 403 for a key that is there: a refusal, never read as "no state"
    finally:
        reset_state(env, existing)


# -- the quarantine move and the alert publisher: their own roles, their own statements -------------------------


def _put_role_policy(env: Environment, role: str, statements: list[dict[str, Any]]) -> None:
    document = iam_policy.document(*aws_bootstrap.moto_statements(statements))
    aws.client(env, "iam").put_role_policy(RoleName=role, PolicyName=role, PolicyDocument=document)


@contextmanager
def quarantine_policy_without(env: Environment, sid: str, action: str) -> Iterator[None]:
    """The quarantine role's deployed statements with one action taken out of one statement; restored after."""
    statements = iam_policy.quarantine_handler_statements(env, aws.data_key_arn(env))
    (target,) = [st for st in statements if st["Sid"] == sid]
    assert action in target["Action"], (sid, action)
    target["Action"] = [a for a in target["Action"] if a != action]
    _put_role_policy(env, iam_policy.quarantine_role_name(env), [st for st in statements if st["Action"]])
    try:
        yield
    finally:
        aws_bootstrap.ensure_roles(env, aws.data_key_arn(env))


def _failed_file(env: Environment, name: str) -> tuple[str, str]:
    """A file under raw/ (as a pipe would fail on it), put by the admin; returns (key, its quarantine key).
    Outside every pipe's folder, so the pipe player ignores its S3 event."""
    key = f"{env.aws.s3.raw_prefix}/iam-test-quarantine/{name}.parquet"
    aws.client(env, "s3").put_object(
        Bucket=env.aws.s3.bucket, Key=key, Body=b"not parquet", ServerSideEncryption="aws:kms",
        SSEKMSKeyId=aws.data_key_arn(env),
    )  # fmt: skip
    return key, quarantine.quarantine_key(catalog.QUARANTINE_PREFIX, key)


def _exists(env: Environment, key: str) -> bool:
    try:
        aws.client(env, "s3").head_object(Bucket=env.aws.s3.bucket, Key=key)
        return True
    except ClientError:
        return False


def _cleanup(env: Environment, *keys: str) -> None:
    for key in keys:
        aws.client(env, "s3").delete_object(Bucket=env.aws.s3.bucket, Key=key)


def test_the_quarantine_move_works_under_its_role_and_writes_nothing_else_in_raw(env: Environment) -> None:
    key, target = _failed_file(env, "moved")
    bucket, key_arn = env.aws.s3.bucket, aws.data_key_arn(env)
    try:
        with aws.as_quarantine_handler(env):
            s3 = aws.client(env, "s3")
            assert quarantine.move_to_quarantine(s3, bucket, key, target, key_arn) == "moved"
            assert quarantine.move_to_quarantine(s3, bucket, key, target, key_arn) == "already_quarantined"
            other = f"{iam_policy.source_prefix(env, NO_PAN_SOURCE)}iam-test/by-quarantine.txt"
            with pytest.raises(ClientError, match="AccessDenied"):  # raw/ is read + delete only for this role
                s3.put_object(Bucket=bucket, Key=other, Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn)
        assert not _exists(env, key) and _exists(env, target)
    finally:
        _cleanup(env, key, target)


@pytest.mark.parametrize(
    ("sid", "action"),
    [
        ("ReadRawAndQuarantine", "s3:GetObject"),  # the HEAD of the failed file
        ("WriteQuarantineAndRecords", "s3:PutObject"),  # the copy
        ("RemoveFailedFile", "s3:DeleteObject"),  # the delete after the verified copy
    ],
)
def test_without_one_grant_the_quarantine_move_is_refused_and_the_file_stays(
    env: Environment, sid: str, action: str
) -> None:
    key, target = _failed_file(env, f"refused-{action.split(':')[1]}")
    try:
        # moto answers a refused HEAD/GetObject with a bare 403 ("Forbidden"), the others "AccessDenied"
        with (
            quarantine_policy_without(env, sid, action),
            aws.as_quarantine_handler(env),
            pytest.raises(ClientError, match=r"AccessDenied|Forbidden"),
        ):
            quarantine.move_to_quarantine(aws.client(env, "s3"), env.aws.s3.bucket, key, target, aws.data_key_arn(env))
        assert _exists(env, key), "a refused move must keep the original"
    finally:
        _cleanup(env, key, target)


def test_the_alert_publisher_publishes_to_its_topics_and_no_other(env: Environment) -> None:
    admin_sns = aws.client(env, "sns")
    other = admin_sns.create_topic(Name=f"{iam_policy.resource_prefix(env)}-iam-test-other-topic")["TopicArn"]
    try:
        with aws.as_alert_publisher(env):
            sns = aws.client(env, "sns")
            for team in env.aws.alert_topics:
                sns.publish(TopicArn=topic_arn(env, team), Message='{"iam_test": true}')
            with pytest.raises(ClientError, match="AccessDenied"):
                sns.publish(TopicArn=other, Message='{"iam_test": true}')
        # the deployed statements without PublishAlerts: its own topic is refused too
        kept = [
            st
            for st in aws_bootstrap.alert_publisher_statements(env, aws.data_key_arn(env))
            if st["Sid"] != "PublishAlerts"
        ]
        _put_role_policy(env, iam_policy.alert_publisher_role_name(env), kept)
        with aws.as_alert_publisher(env), pytest.raises(ClientError, match="AccessDenied"):
            aws.client(env, "sns").publish(TopicArn=topic_arn(env, "data_engineering"), Message='{"iam_test": true}')
    finally:
        aws_bootstrap.ensure_roles(env, aws.data_key_arn(env))
        admin_sns.delete_topic(TopicArn=other)


def test_the_pipe_player_and_the_alerts_act_as_those_roles(env: Environment) -> None:
    """The local code paths, not only the context managers: with a grant taken from the role, the pipe player's
    quarantine and `alerts.publish` are refused (as the admin they would go through)."""
    key, target = _failed_file(env, "pipe-player")
    try:
        with (
            quarantine_policy_without(env, "RemoveFailedFile", "s3:DeleteObject"),
            pytest.raises(ClientError, match="AccessDenied"),
        ):
            snowpipe.quarantine(env, None, "IAM_TEST_PIPE", key, "not parquet")  # refused before any SQL
        assert _exists(env, key)
    finally:
        _cleanup(env, key, target)
    kept = [
        st
        for st in aws_bootstrap.alert_publisher_statements(env, aws.data_key_arn(env))
        if st["Sid"] != "PublishAlerts"
    ]
    _put_role_policy(env, iam_policy.alert_publisher_role_name(env), kept)
    message = {"team": "devops", "state": "FIRING", "alert_type": "iam_test"}
    try:
        with pytest.raises(ClientError, match="AccessDenied"):
            alerts.publish(env, message)
    finally:
        aws_bootstrap.ensure_roles(env, aws.data_key_arn(env))
    alerts.publish(env, message)  # the deployed grant restored: published


# -- what moto cannot enforce (documented; these tests fail the day moto starts enforcing it) -------------------


def test_moto_checks_secrets_manager_and_kms_actions_but_not_their_resources(env: Environment) -> None:
    """moto evaluates non-S3 actions against the resource "*" (moto/core/responses.py `call_action`), so the local
    rendering widens secretsmanager/kms statements to "*": the action is enforced, the ARN is not. AWS scopes
    GetSecretValue to the secret ARN ("Actions, resources, and condition keys for AWS Secrets Manager",
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecretsmanager.html). The ARN scoping
    is therefore tested on the synthesized policy (tests/infra/test_secrets_and_access.py) and by the hook above."""
    with aws.as_source_task(env, NO_PAN_SOURCE):
        value = aws.client(env, "secretsmanager").get_secret_value(SecretId=env.secrets.pan_tokenization_key)
        assert json.loads(value["SecretString"])  # AWS would refuse this role (no PAN column); moto does not
        with pytest.raises(ClientError, match="AccessDenied"):  # an action the role lacks is refused
            aws.client(env, "kms").describe_key(KeyId=env.aws.s3.kms_key_alias)


def test_moto_does_not_evaluate_policy_conditions(env: Environment) -> None:
    """moto evaluates only StringEquals, and only against values a request carries for AssumeRole
    (moto/iam/policy_conditions.py), so `s3:prefix` on ListBucket is not enforced: AWS limits the listing to the
    prefix ("Example: Allow a user to list only the objects in a prefix", s3:prefix condition key,
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html)."""
    with aws.as_source_task(env, NO_PAN_SOURCE):
        aws.client(env, "s3").list_objects_v2(Bucket=env.aws.s3.bucket, Prefix=f"{env.aws.s3.raw_prefix}/", MaxKeys=1)
