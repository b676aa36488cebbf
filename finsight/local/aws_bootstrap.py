"""Create, on the moto server, what cdktf/ creates in real AWS: the KMS key, raw bucket, queue, topics, secrets,
and (with `local.strict_iam`) the connector task roles and the Snowflake storage role with the policies cdktf
deploys (finsight.iam_policy), under an admin user whose key lives in a 0600 file.

Idempotent: safe on every `finsight local up`. Secret values are generated here, stored in Secrets Manager and read
back through the same code path production uses; they are never printed.
"""

from __future__ import annotations

import contextlib
import json
import secrets as pysecrets
import urllib.request
from typing import Any

from finsight import catalog, iam_policy
from finsight.aws import (
    LOCAL_SESSION_SECONDS,
    Credentials,
    admin_credentials_file,
    client,
    data_key_file,
    strict_iam,
    unauthenticated_client,
    write_admin_credentials,
)
from finsight.config import Environment
from finsight.ops.ownership import topic_arn

RAW_EVENTS_QUEUE = "raw-landing-events"


def ensure_kms_key(env: Environment) -> str:
    kms = client(env, "kms")
    try:
        return kms.describe_key(KeyId=env.aws.s3.kms_key_alias)["KeyMetadata"]["KeyId"]
    except kms.exceptions.NotFoundException:
        key_id = kms.create_key(Description=f"{env.aws.s3.bucket} raw data CMK")["KeyMetadata"]["KeyId"]
        kms.enable_key_rotation(KeyId=key_id)
        kms.create_alias(AliasName=env.aws.s3.kms_key_alias, TargetKeyId=key_id)
        return key_id


def queue_name(env: Environment) -> str:
    return f"{env.aws.s3.bucket}-{RAW_EVENTS_QUEUE}"


def ensure_bucket(env: Environment, key_id: str) -> None:
    s3 = client(env, "s3")
    bucket = env.aws.s3.bucket
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            k: True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
        },
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    # No bucket policy locally: moto 5.2 evaluates Deny statements but not their TLS/SSE conditions, so the real
    # policy (cdktf/) would deny every put. The landing writer names the KMS key on each put; tests check it.
    s3.delete_bucket_policy(Bucket=bucket)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=lifecycle(env))
    # Snowpipe auto-ingest listens to object-created events on the raw prefix
    sqs = client(env, "sqs")
    # short visibility: a failed load is retried by the next drain within seconds, not after AWS's 30 s default
    queue_url = sqs.create_queue(QueueName=queue_name(env))["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": "2"})
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": f"{env.aws.s3.raw_prefix}/"}]}},
                }
            ]
        },
    )


def lifecycle(env: Environment) -> dict[str, Any]:
    r = env.retention
    return {
        "Rules": [
            {
                "ID": "raw-retention",
                "Status": "Enabled",
                "Filter": {"Prefix": f"{env.aws.s3.raw_prefix}/"},
                "Transitions": [{"Days": r.raw_infrequent_access_after_days, "StorageClass": "STANDARD_IA"}],
                "Expiration": {"Days": r.raw_days},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
            }
        ]
    }


def ensure_topics(env: Environment) -> dict[str, str]:
    sns = client(env, "sns")
    return {team: sns.create_topic(Name=name)["TopicArn"] for team, name in env.aws.alert_topics.items()}


def _ensure_secret(env: Environment, name: str, make_value: Any) -> dict[str, str]:
    sm = client(env, "secretsmanager")
    try:
        return json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    except sm.exceptions.ResourceNotFoundException:
        value = make_value()
        sm.create_secret(Name=name, SecretString=json.dumps(value), KmsKeyId=env.aws.s3.kms_key_alias)
        return value


def ensure_secrets(env: Environment) -> dict[str, dict[str, str]]:
    """Create every secret the pipeline reads (generated values); returns them for the local stack's own setup."""
    out: dict[str, dict[str, str]] = {}
    for name, src in env.postgres_sources.items():
        assert src.connection is not None
        out[src.connection.secret] = _ensure_secret(
            env,
            src.connection.secret,
            lambda name=name: {"username": f"finsight_reader_{name}", "password": pysecrets.token_urlsafe(24)},
        )
    for name, api in env.api_sources.items():
        # PayPal authenticates with an OAuth client id + secret; the others with one API key
        make = (
            (lambda name=name: {"client_id": f"{name}-client", "client_secret": pysecrets.token_urlsafe(24)})
            if api.kind == "paypal"
            else (lambda name=name: {"api_key": f"{name}_{pysecrets.token_urlsafe(24)}"})
        )
        out[api.secret] = _ensure_secret(env, api.secret, make)
    out[env.secrets.snowflake_service_user] = _ensure_secret(
        env,
        env.secrets.snowflake_service_user,
        lambda: {"user": env.snowflake.user, "password": pysecrets.token_urlsafe(24)},
    )
    out[env.secrets.snowflake_governance_user] = _ensure_secret(
        env,
        env.secrets.snowflake_governance_user,
        lambda: {"user": catalog.governance_deploy_user(env), "password": pysecrets.token_urlsafe(24)},
    )
    out[env.secrets.pan_tokenization_key] = _ensure_secret(
        env, env.secrets.pan_tokenization_key, lambda: {"current_version": "1", "keys": {"1": pysecrets.token_hex(32)}}
    )
    return out


def bootstrap(env: Environment) -> dict[str, dict[str, str]]:
    if strict_iam(env):
        ensure_admin(env)
    else:
        set_iam_enforcement(env, False)
    key_id = ensure_kms_key(env)
    key_arn = client(env, "kms").describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    data_key_file(env).parent.mkdir(parents=True, exist_ok=True)
    data_key_file(env).write_text(key_arn)  # what the ECS task definition injects in AWS (a non-secret)
    ensure_bucket(env, key_id)
    ensure_topics(env)
    out = ensure_secrets(env)
    if strict_iam(env):
        ensure_roles(env, key_arn)
    return out


# -- IAM ----------------------------------------------------------------------------------------------------------
ADMIN_USER = "finsight-local-admin"
# moto compares these services' actions with "*" only (no resource ARN: moto/core/responses.py call_action), so a
# statement scoped to a key or secret ARN would never match; locally they are widened to "*" (action still checked).
# SNS is scoped: the local moto server (finsight.local.moto_server) checks sns actions against their TopicArn.
MOTO_UNSCOPED_SERVICES = frozenset({"kms", "secretsmanager", "logs", "ecr"})


def set_iam_enforcement(env: Environment, on: bool) -> None:
    """moto's switch (INITIAL_NO_AUTH_ACTION_COUNT, set by its reset-auth endpoint): 0 = every call is checked."""
    assert env.aws.endpoint_url is not None
    count = b"0" if on else b"inf"
    url = f"{env.aws.endpoint_url}/moto-api/reset-auth"
    # text/plain: with urllib's default form type, Flask would parse the body away from request.data
    headers = {"Content-Type": "text/plain"}
    request = urllib.request.Request(url, data=count, headers=headers, method="POST")  # noqa: S310 - local moto
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()


def _admin_works(env: Environment) -> bool:
    if not admin_credentials_file(env).exists():
        return False
    try:
        client(env, "iam").get_user(UserName=ADMIN_USER)
        return True
    except Exception:
        return False


def ensure_admin(env: Environment) -> None:
    """The identity of `local up` and of the tests' setup: an IAM user allowed everything, its key in a 0600 file."""
    set_iam_enforcement(env, True)
    if _admin_works(env):
        return
    set_iam_enforcement(env, False)  # the one window without auth: create the admin, then close it
    try:
        iam = unauthenticated_client(env, "iam")
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_user(UserName=ADMIN_USER)
        admin = iam_policy.document(iam_policy.allow("LocalAdmin", "*", "*"))
        iam.put_user_policy(UserName=ADMIN_USER, PolicyName=ADMIN_USER, PolicyDocument=admin)
        key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        write_admin_credentials(env, Credentials(key["AccessKeyId"], key["SecretAccessKey"]))
    finally:
        set_iam_enforcement(env, True)


def moto_statements(statements: list[iam_policy.Statement]) -> list[iam_policy.Statement]:
    """The local rendering: the same statements, with resources moto cannot match (see MOTO_UNSCOPED_SERVICES)."""
    out = []
    for st in statements:
        services = {a.split(":", 1)[0] for a in st["Action"]}
        out.append({**st, "Resource": ["*"]} if services <= MOTO_UNSCOPED_SERVICES else st)
    return out


def _ensure_role(env: Environment, name: str, statements: list[iam_policy.Statement]) -> None:
    """In AWS, ECS (or Snowflake) assumes the role; locally the admin plays that part, so the trust names it."""
    iam = client(env, "iam")
    admin_arn = f"arn:aws:iam::{env.aws.account_id}:user/{ADMIN_USER}"
    trust = iam_policy.assume_role(iam_policy.aws_principal(admin_arn))
    try:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, MaxSessionDuration=LOCAL_SESSION_SECONDS)
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust)
    document = iam_policy.document(*moto_statements(statements))
    iam.put_role_policy(RoleName=name, PolicyName=name, PolicyDocument=document)


def ensure_roles(env: Environment, data_key_arn: str) -> None:
    # one local key encrypts the data and the secrets (AWS has two); the statements are the deployed ones
    for source in [*env.postgres_sources, *env.api_sources]:
        statements = iam_policy.connector_task_statements(env, source, data_key_arn, data_key_arn)
        _ensure_role(env, iam_policy.task_role_name(env, source), statements)
    for role, statements in service_role_statements(env, data_key_arn).items():
        _ensure_role(env, role, statements)


def service_role_statements(env: Environment, data_key_arn: str) -> dict[str, list[iam_policy.Statement]]:
    """The roles of what AWS and Snowflake run as services, by name: Snowflake's storage integration (stages,
    Snowpipe COPY), the quarantine Lambda, and the alert publisher."""
    return {
        iam_policy.snowflake_storage_role_name(env): iam_policy.snowflake_storage_statements(env, data_key_arn),
        iam_policy.quarantine_role_name(env): iam_policy.quarantine_handler_statements(env, data_key_arn),
        iam_policy.alert_publisher_role_name(env): alert_publisher_statements(env, data_key_arn),
    }


def alert_publisher_statements(env: Environment, key_arn: str) -> list[iam_policy.Statement]:
    """Locally `finsight.ops.alerts` plays every publisher of AWS (Snowflake's integration, EventBridge, Budgets):
    the local role may publish to each team's topic (and no other). Local topics are not encrypted."""
    topics = [topic_arn(env, team) for team in env.aws.alert_topics]
    return iam_policy.alert_publisher_statements(topics, key_arn)


def grant_service_roles(env: Environment, policy_name: str) -> None:
    """Let the service roles (storage, quarantine, alerts) work on `env`'s bucket and topics too (a test's private
    bucket and topic): the deployed statements, for those, as one more inline policy on each role. Without it the
    local Snowflake, the quarantine move and the alert are refused, as they would be in AWS."""
    if not strict_iam(env):
        return
    iam = client(env, "iam")
    for role, statements in service_role_statements(env, data_key_file(env).read_text().strip()).items():
        document = iam_policy.document(*moto_statements(statements))
        iam.put_role_policy(RoleName=role, PolicyName=policy_name, PolicyDocument=document)


def revoke_service_roles(env: Environment, policy_name: str) -> None:
    if strict_iam(env):
        iam = client(env, "iam")
        for role in service_role_statements(env, data_key_file(env).read_text().strip()):
            iam.delete_role_policy(RoleName=role, PolicyName=policy_name)
