"""Create, on the moto server, what cdktf/ creates in real AWS: the KMS key, raw bucket, queue, topics, secrets.

Idempotent: safe on every `finsight local up`. Secret values are generated here, stored in Secrets Manager and read
back through the same code path production uses; they are never printed.
"""

from __future__ import annotations

import json
import secrets as pysecrets
from typing import Any

from finsight.aws import client
from finsight.config import Environment

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
    out[env.secrets.pan_tokenization_key] = _ensure_secret(
        env, env.secrets.pan_tokenization_key, lambda: {"current_version": "1", "keys": {"1": pysecrets.token_hex(32)}}
    )
    return out


def bootstrap(env: Environment) -> dict[str, dict[str, str]]:
    key_id = ensure_kms_key(env)
    ensure_bucket(env, key_id)
    ensure_topics(env)
    return ensure_secrets(env)
