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

from finsight.iam_policy import alert_publisher_statements, connector_task_statements, snowflake_storage_statements
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


def connector_roles(
    scope: Construct, names: Names, src: Source, keys: Keys, log_group: CloudwatchLogGroup
) -> ConnectorRoles:
    # the statements are finsight.iam_policy's: the local stack renders the very same ones on moto
    statements = connector_task_statements(names.env, src.name, keys.data.arn, keys.secrets.arn)
    task = _role(scope, f"task-role-{src.name}", names.task_role(src.name), _ecs_tasks_trust(names), names, *statements)
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
    trust = assume_role(
        aws_principal(snowflake_iam_user_arn), {"StringEquals": {"sts:ExternalId": names.sf_storage_external_id}}
    )
    statements = snowflake_storage_statements(names.env, data_key.arn)
    return _role(scope, "snowflake-storage-role", names.snowflake_storage_role, trust, names, *statements)


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
        *alert_publisher_statements(topic_arn, ops_key.arn),
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
