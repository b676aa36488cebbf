"""IAM policies as plain data: one definition, two renderings (cdktn for AWS, boto3 on the local moto server).

Statements stay readable dicts and render with `json.dumps`. Token strings (e.g. `bucket.arn`) survive `json.dumps`
unchanged and resolve at synth, so policies can mix literal ARNs derived from the config with references to
resources in the same stack; the local bootstrap passes the moto resources' real ARNs instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from finsight import catalog
from finsight.config import Environment, PciClass

# The config has no project key; this is the one place it is spelled (cdktf naming reads it from here).
PROJECT = "finsight"

Statement = dict[str, Any]


def _listify(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allow(
    sid: str,
    actions: str | Sequence[str],
    resources: str | Sequence[str],
    condition: dict[str, Any] | None = None,
    principal: dict[str, Any] | None = None,
) -> Statement:
    return _statement("Allow", sid, actions, resources, condition, principal)


def deny(
    sid: str,
    actions: str | Sequence[str],
    resources: str | Sequence[str],
    condition: dict[str, Any] | None = None,
    principal: dict[str, Any] | None = None,
) -> Statement:
    return _statement("Deny", sid, actions, resources, condition, principal)


def _statement(
    effect: str,
    sid: str,
    actions: str | Sequence[str],
    resources: str | Sequence[str],
    condition: dict[str, Any] | None,
    principal: dict[str, Any] | None,
) -> Statement:
    st: Statement = {"Sid": sid, "Effect": effect}
    if principal is not None:
        st["Principal"] = principal
    st["Action"] = _listify(actions)
    st["Resource"] = _listify(resources)
    if condition:
        st["Condition"] = condition
    return st


def document(*statements: Statement) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def service_principal(service: str) -> dict[str, str]:
    return {"Service": service}


def aws_principal(arn: str | Sequence[str]) -> dict[str, Any]:
    return {"AWS": arn if isinstance(arn, str) else list(arn)}


def assume_role(principal: dict[str, Any], condition: dict[str, Any] | None = None) -> str:
    st: Statement = {"Sid": "AssumeRole", "Effect": "Allow", "Principal": principal, "Action": ["sts:AssumeRole"]}
    if condition:
        st["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [st]})


DENY_INSECURE_TRANSPORT = {"Bool": {"aws:SecureTransport": "false"}}


# -- names every rendering shares ------------------------------------------------------------------


def resource_prefix(env: Environment) -> str:
    return f"{PROJECT}-{env.name}"


def task_role_name(env: Environment, source: str) -> str:
    return f"{resource_prefix(env)}-task-{source}"


def snowflake_storage_role_name(env: Environment) -> str:
    return f"{resource_prefix(env)}-snowflake-storage"


def quarantine_role_name(env: Environment) -> str:
    """The quarantine Lambda's role (cdktf quarantine.py); locally the pipe player's move acts as it."""
    return f"{resource_prefix(env)}-quarantine"


def alert_publisher_role_name(env: Environment) -> str:
    """The role Snowflake's notification integration assumes to publish alerts; locally `finsight.ops.alerts`
    and the pipe player publish as it."""
    return f"{resource_prefix(env)}-snowflake-alerts"


def role_arn(env: Environment, role_name: str) -> str:
    return f"arn:aws:iam::{env.aws.account_id}:role/{role_name}"


def secret_arn_pattern(env: Environment, secret_name: str) -> str:
    """Secrets Manager appends 6 random characters to a secret's ARN."""
    return f"arn:aws:secretsmanager:{env.aws.region}:{env.aws.account_id}:secret:{secret_name}-??????"


def source_secret(env: Environment, source: str) -> str:
    if source in env.postgres_sources:
        connection = env.postgres_sources[source].connection
        assert connection is not None  # the model validator guarantees it
        return connection.secret
    return env.api_sources[source].secret


def needs_pan_key(env: Environment, source: str) -> bool:
    """Whether a source's role may read the PAN tokenization key: a PostgreSQL source with a PAN column (tokenized
    on landing), and every API source, whose records and log texts are scrubbed for stray card numbers with that key
    (connectors/apis/pans.py): a card number in a payload lands as a token, the run does not fail on upstream data.
    The key itself is read only when first used (connectors.pan_key), so a source with nothing to tokenize never
    asks for it.
    """
    if source in env.api_sources:
        return True
    source_cfg = env.postgres_sources.get(source)
    if source_cfg is None:
        return False
    return any(c.pci is PciClass.PAN for t in source_cfg.tables.values() for c in t.columns.values())


def source_prefix(env: Environment, source: str) -> str:
    """Everything one connector lands (data, PK snapshots, manifests): finsight.catalog's layout."""
    return f"{env.aws.s3.raw_prefix}/{catalog.source_folder(source)}"


def source_state_prefix(source: str) -> str:
    """Where one connector keeps its watermarks and backfill checkpoints (read + write)."""
    return f"{catalog.STATE_PREFIX}/{source}/"


# -- role policies -----------------------------------------------------------------------------------


def connector_task_statements(
    env: Environment, source: str, data_key_arn: str, secrets_key_arn: str
) -> list[Statement]:
    """What one source's connector task may do: land under its own prefix, keep its own state, read its secrets."""
    bucket = f"arn:aws:s3:::{env.aws.s3.bucket}"
    own_prefix, state = source_prefix(env, source), source_state_prefix(source)
    secrets = [secret_arn_pattern(env, source_secret(env, source))]
    if needs_pan_key(env, source):
        secrets.append(secret_arn_pattern(env, env.secrets.pan_tokenization_key))
    region = env.aws.region
    return [
        # parts stream by multipart upload; a failed part file is aborted so nothing half-written stays
        allow("WriteOwnRawPrefix", ["s3:PutObject", "s3:AbortMultipartUpload"], f"{bucket}/{own_prefix}*"),
        # watermarks: read at start, written after the batch's manifest (connectors/landing/state.py)
        allow("ReadWriteOwnState", ["s3:GetObject", "s3:PutObject"], f"{bucket}/{state}*"),
        # A relaunched backfill chunk lists its checkpoints; a watermark read of a key that does not exist yet
        # answers 403 instead of 404 without ListBucket (GetObject API reference), so the state prefix is listable.
        allow("ListOwnState", "s3:ListBucket", bucket, {"StringLike": {"s3:prefix": [f"{state}*"]}}),
        allow("EncryptWithDataKey", ["kms:GenerateDataKey", "kms:Encrypt"], data_key_arn),
        # Completing a multipart SSE-KMS upload makes S3 decrypt the part keys on the caller's behalf.
        allow(
            "MultipartUploadViaS3",
            "kms:Decrypt",
            data_key_arn,
            {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
        ),
        # Long backfills re-read credentials after a rotation instead of restarting the task.
        allow("ReadOwnSecret", "secretsmanager:GetSecretValue", secrets),
        allow(
            "DecryptSecretsViaSecretsManager",
            "kms:Decrypt",
            secrets_key_arn,
            {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
        ),
    ]


def snowflake_storage_statements(env: Environment, data_key_arn: str) -> list[Statement]:
    """Snowflake's storage integration reads the raw prefix (stages and Snowpipe COPY); it never writes."""
    bucket = f"arn:aws:s3:::{env.aws.s3.bucket}"
    raw = env.aws.s3.raw_prefix
    return [
        allow("ReadRawObjects", ["s3:GetObject", "s3:GetObjectVersion"], f"{bucket}/{raw}/*"),
        allow("LocateBucket", "s3:GetBucketLocation", bucket),
        allow("ListRawPrefix", "s3:ListBucket", bucket, {"StringLike": {"s3:prefix": [f"{raw}/*"]}}),
        allow("DecryptRaw", "kms:Decrypt", data_key_arn),
    ]


def quarantine_handler_statements(env: Environment, data_key_arn: str) -> list[Statement]:
    """What finsight.quarantine does (the Lambda, and the local pipe player's move): read a failed raw file, copy it
    under quarantine/ with the raw key, verify the copy, delete the original; the Lambda also writes one record per
    file under the LOAD_ERRORS pipe's prefix. Nothing else of raw/ is writable."""
    bucket = f"arn:aws:s3:::{env.aws.s3.bucket}"
    raw_prefix, held_prefix = env.aws.s3.raw_prefix, catalog.QUARANTINE_PREFIX
    raw, held = f"{bucket}/{raw_prefix}/*", f"{bucket}/{held_prefix}/*"
    records = f"{bucket}/{catalog.load_errors_records_prefix(env)}*"
    return [
        # read the failed file (copy source) and the copy (verification)
        allow("ReadRawAndQuarantine", "s3:GetObject", [raw, held]),
        # the copy, and the OPS.LOAD_ERRORS records (below raw/, where the LOAD_ERRORS pipe reads)
        allow("WriteQuarantineAndRecords", "s3:PutObject", [held, records]),
        allow("RemoveFailedFile", "s3:DeleteObject", raw),
        # without ListBucket S3 answers 403 instead of 404 for a missing key: a redelivery could not tell
        # "already moved" from "not allowed"
        allow(
            "TellMissingKeys",
            "s3:ListBucket",
            bucket,
            {"StringLike": {"s3:prefix": [f"{raw_prefix}/*", f"{held_prefix}/*"]}},
        ),
        allow("UseRawKey", ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], data_key_arn),
    ]


def lambda_runtime_statements(log_group_arn: str, dlq_arn: str) -> list[Statement]:
    """What the Lambda runtime needs beside the handler's own work (AWS only: no local counterpart)."""
    return [
        allow("WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], f"{log_group_arn}:*"),
        allow("DeadLetter", "sqs:SendMessage", dlq_arn),
    ]


def alert_publisher_statements(topic_arns: str | Sequence[str], topics_key_arn: str) -> list[Statement]:
    """Publish to the named alert topics (encrypted with `topics_key_arn`), nothing else.

    In AWS, Snowflake's notification integration publishes to the data-engineering topic only (DevOps alerts come
    from EventBridge and AWS Budgets through the topic policies). Locally `finsight.ops.alerts.sync` plays all of
    them, so the local role is granted every topic of `aws.alert_topics` (aws_bootstrap.ensure_roles)."""
    return [
        allow("PublishAlerts", "sns:Publish", topic_arns),
        allow("EncryptAlerts", ["kms:GenerateDataKey*", "kms:Decrypt"], topics_key_arn),
    ]
