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
from finsight import aws, iam_policy
from finsight.config import Environment
from finsight.local import aws_bootstrap
from finsight.local.stack import LocalStack

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
