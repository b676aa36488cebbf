"""Customer-managed KMS keys: one per trust zone, so a grant on one never opens another.

- data: the raw bucket (alias from config) and the S3 -> SNS -> SQS event path that carries object keys;
- secrets: Secrets Manager only;
- ops: logs, alert topics, ECR, scheduler payloads and its DLQ.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktn_provider_aws.kms_alias import KmsAlias
from cdktn_provider_aws.kms_key import KmsKey
from constructs import Construct

from finsight_infra.naming import Names
from finsight_infra.policy import Statement, allow, aws_principal, document, service_principal
from finsight_infra.principals import KMS_DATA_ACTIONS, data_key_principals, deny_unlisted


@dataclass(frozen=True)
class Keys:
    data: KmsKey
    secrets: KmsKey
    ops: KmsKey


def _key(scope: Construct, cid: str, alias: str, description: str, names: Names, *extra: Statement) -> KmsKey:
    root = f"arn:aws:iam::{names.account_id}:root"
    # Root delegation: the account's IAM policies (scoped per role in iam.py) decide who uses the key.
    admin = allow("AccountAdministers", "kms:*", "*", principal=aws_principal(root))
    key = KmsKey(
        scope,
        cid,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=document(admin, *extra),
        tags=names.tags,
    )
    KmsAlias(scope, f"{cid}-alias", name=alias, target_key_id=key.key_id)
    return key


def _service_use(sid: str, service: str, names: Names, condition: dict | None = None) -> Statement:
    cond = condition or {"StringEquals": {"aws:SourceAccount": names.account_id}}
    return allow(sid, ["kms:GenerateDataKey*", "kms:Decrypt"], "*", cond, service_principal(service))


def build_keys(scope: Construct, names: Names) -> Keys:
    data = _key(
        scope,
        "kms-data",
        names.data_key_alias,
        f"{names.prefix}: raw landing data and its S3 event notifications",
        names,
        # S3 publishes object-created events to the encrypted topic; SNS delivers them to the encrypted queue.
        _service_use("S3PublishesEvents", "s3.amazonaws.com", names),
        _service_use("SnsDeliversToQueue", "sns.amazonaws.com", names),
        # Root delegation lets any IAM policy of the account grant this key; for the cardholder data it protects,
        # only the named roles may decrypt or create data keys (services acting as themselves are not affected).
        deny_unlisted("OnlyNamedRolesUseDataKey", KMS_DATA_ACTIONS, "*", data_key_principals(names)),
    )
    secrets = _key(scope, "kms-secrets", names.secrets_key_alias, f"{names.prefix}: Secrets Manager", names)
    logs_arn = f"arn:aws:logs:{names.region}:{names.account_id}:log-group:*"
    ops = _key(
        scope,
        "kms-ops",
        names.ops_key_alias,
        f"{names.prefix}: logs, alert topics, container images, scheduler",
        names,
        allow(
            "CloudWatchLogsEncrypt",
            ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            "*",
            {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": logs_arn}},
            service_principal(f"logs.{names.region}.amazonaws.com"),
        ),
        # CloudWatch alarms publish to the encrypted alert topics.
        _service_use("CloudWatchAlarmsPublish", "cloudwatch.amazonaws.com", names),
        # the ECS task-state rule publishes connector failures straight to the data-engineering topic
        _service_use("EventBridgePublish", "events.amazonaws.com", names),
        # AWS Budgets alerts to the encrypted DevOps topic (budgets.py)
        _service_use("BudgetsPublish", "budgets.amazonaws.com", names),
    )
    return Keys(data=data, secrets=secrets, ops=ops)
