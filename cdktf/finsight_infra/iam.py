"""IAM roles, each scoped to one job: per-source task and execution roles, the scheduler, and the two roles
Snowflake assumes (read raw files; publish alerts). Resource ARNs are spelled out; no wildcard resources
except where AWS offers no resource-level permission (ecr:GetAuthorizationToken).
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktn_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktn_provider_aws.iam_role import IamRole
from cdktn_provider_aws.iam_role_policy import IamRolePolicy
from cdktn_provider_aws.kms_key import KmsKey
from constructs import Construct

from finsight_infra.kms import Keys
from finsight_infra.naming import Names, Source
from finsight_infra.policy import Statement, allow, assume_role, aws_principal, document, service_principal


@dataclass(frozen=True)
class ConnectorRoles:
    task: IamRole
    execution: IamRole


def _role(scope: Construct, cid: str, name: str, trust: str, names: Names, *statements: Statement) -> IamRole:
    role = IamRole(scope, cid, name=name, assume_role_policy=trust, tags=names.tags)
    IamRolePolicy(scope, f"{cid}-policy", name=name, role=role.id, policy=document(*statements))
    return role


def _ecs_tasks_trust(names: Names) -> str:
    return assume_role(
        service_principal("ecs-tasks.amazonaws.com"),
        {"StringEquals": {"aws:SourceAccount": names.account_id}},
    )


def _read_secrets(names: Names, src: Source, secrets_key: KmsKey) -> list[Statement]:
    arns = [names.secret_arn_pattern(src.secret)]
    if src.needs_pan_key:
        arns.append(names.secret_arn_pattern(names.env.secrets.pan_tokenization_key))
    return [
        allow("ReadOwnSecret", "secretsmanager:GetSecretValue", arns),
        allow(
            "DecryptSecretsViaSecretsManager",
            "kms:Decrypt",
            secrets_key.arn,
            {"StringEquals": {"kms:ViaService": f"secretsmanager.{names.region}.amazonaws.com"}},
        ),
    ]


def connector_roles(
    scope: Construct, names: Names, src: Source, keys: Keys, log_group: CloudwatchLogGroup
) -> ConnectorRoles:
    prefix_objects = f"arn:aws:s3:::{names.raw_bucket}/{names.source_prefix(src.name)}*"
    state_objects = f"arn:aws:s3:::{names.raw_bucket}/{names.source_state_prefix(src.name)}*"
    task = _role(
        scope,
        f"task-role-{src.name}",
        names.task_role(src.name),
        _ecs_tasks_trust(names),
        names,
        # parts stream by multipart upload; a failed part file is aborted so nothing half-written stays
        allow("WriteOwnRawPrefix", ["s3:PutObject", "s3:AbortMultipartUpload"], prefix_objects),
        # watermarks: read at start, written after the batch's manifest (connectors/landing/state.py)
        allow("ReadWriteOwnState", ["s3:GetObject", "s3:PutObject"], state_objects),
        # a relaunched backfill chunk lists its checkpoints to skip finished work (connectors/backfill.py)
        allow(
            "ListOwnBackfillCheckpoints",
            "s3:ListBucket",
            f"arn:aws:s3:::{names.raw_bucket}",
            {"StringLike": {"s3:prefix": [f"{names.source_state_prefix(src.name)}backfills/*"]}},
        ),
        allow("EncryptWithDataKey", ["kms:GenerateDataKey", "kms:Encrypt"], keys.data.arn),
        # Completing a multipart SSE-KMS upload makes S3 decrypt the part keys on the caller's behalf.
        allow(
            "MultipartUploadViaS3",
            "kms:Decrypt",
            keys.data.arn,
            {"StringEquals": {"kms:ViaService": f"s3.{names.region}.amazonaws.com"}},
        ),
        # Long backfills re-read credentials after a rotation instead of restarting the task.
        *_read_secrets(names, src, keys.secrets),
    )
    execution = _role(
        scope,
        f"exec-role-{src.name}",
        names.execution_role(src.name),
        _ecs_tasks_trust(names),
        names,
        allow("EcrAuth", "ecr:GetAuthorizationToken", "*"),  # AWS offers no resource-level scoping for this one
        # The release repository lives in the build account; its repository policy lets these roles pull.
        allow(
            "PullReleaseImage",
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            names.release_repository_arn,
        ),
        allow("WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], f"{log_group.arn}:*"),
        # No secret access: the task definition injects none (the task role reads them at run time).
    )
    return ConnectorRoles(task=task, execution=execution)


def scheduler_role(
    scope: Construct,
    names: Names,
    cluster_arn: str,
    task_definition_arns: list[str],
    passed_roles: list[str],
    dlq_arn: str,
    ops_key: KmsKey,
) -> IamRole:
    trust = assume_role(
        service_principal("scheduler.amazonaws.com"), {"StringEquals": {"aws:SourceAccount": names.account_id}}
    )
    return _role(
        scope,
        "scheduler-role",
        names.scheduler_role,
        trust,
        names,
        allow("RunConnectorTasks", "ecs:RunTask", task_definition_arns, {"ArnEquals": {"ecs:cluster": cluster_arn}}),
        allow("TagTasks", "ecs:TagResource", "*", {"StringEquals": {"ecs:CreateAction": "RunTask"}}),
        allow(
            "PassConnectorRoles",
            "iam:PassRole",
            passed_roles,
            {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        ),
        allow("DeadLetter", "sqs:SendMessage", dlq_arn),
        allow("ScheduleAndDlqEncryption", ["kms:Decrypt", "kms:GenerateDataKey"], ops_key.arn),
    )


def snowflake_storage_role(scope: Construct, names: Names, data_key: KmsKey, snowflake_iam_user_arn: str) -> IamRole:
    """Snowflake's storage integration reads the raw prefix (stages and Snowpipe COPY); it never writes."""
    bucket = f"arn:aws:s3:::{names.raw_bucket}"
    trust = assume_role(
        aws_principal(snowflake_iam_user_arn), {"StringEquals": {"sts:ExternalId": names.sf_storage_external_id}}
    )
    return _role(
        scope,
        "snowflake-storage-role",
        names.snowflake_storage_role,
        trust,
        names,
        allow("ReadRawObjects", ["s3:GetObject", "s3:GetObjectVersion"], f"{bucket}/{names.raw_prefix}/*"),
        allow("LocateBucket", "s3:GetBucketLocation", bucket),
        allow("ListRawPrefix", "s3:ListBucket", bucket, {"StringLike": {"s3:prefix": [f"{names.raw_prefix}/*"]}}),
        allow("DecryptRaw", "kms:Decrypt", data_key.arn),
    )


def snowflake_alerts_role(
    scope: Construct, names: Names, ops_key: KmsKey, topic_arn: str, sns_iam_user_arn: str, external_id: str
) -> IamRole:
    """Snowflake's notification integration publishes pipe/task errors to the data-engineering alert topic."""
    trust = assume_role(aws_principal(sns_iam_user_arn), {"StringEquals": {"sts:ExternalId": external_id}})
    return _role(
        scope,
        "snowflake-alerts-role",
        names.snowflake_alerts_role,
        trust,
        names,
        allow("PublishAlerts", "sns:Publish", topic_arn),
        allow("EncryptAlerts", ["kms:GenerateDataKey*", "kms:Decrypt"], ops_key.arn),
    )


def snowflake_archive_role(
    scope: Construct, names: Names, data_key: KmsKey, archive_bucket_arn: str, snowflake_iam_user_arn: str
) -> IamRole:
    """Snowflake's external volume reads and writes the Iceberg archive of CURATED (nothing else)."""
    prefix = names.archive.prefix
    trust = assume_role(
        aws_principal(snowflake_iam_user_arn), {"StringEquals": {"sts:ExternalId": names.sf_archive_external_id}}
    )
    return _role(
        scope,
        "snowflake-archive-role",
        names.snowflake_archive_role,
        trust,
        names,
        allow(
            "ReadWriteArchive",
            ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject"],
            f"{archive_bucket_arn}/{prefix}/*",
        ),
        allow("LocateBucket", "s3:GetBucketLocation", archive_bucket_arn),
        allow("ListArchive", "s3:ListBucket", archive_bucket_arn, {"StringLike": {"s3:prefix": [f"{prefix}/*"]}}),
        allow("UseDataKey", ["kms:Decrypt", "kms:GenerateDataKey"], data_key.arn),
    )
