"""CloudWatch log groups: every one KMS-encrypted with the ops key and kept for LOG_RETENTION_DAYS."""

from __future__ import annotations

from cdktn_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktn_provider_aws.kms_key import KmsKey
from constructs import Construct

from finsight_infra.naming import LOG_RETENTION_DAYS, Names


def log_group(scope: Construct, cid: str, name: str, key: KmsKey, names: Names) -> CloudwatchLogGroup:
    return CloudwatchLogGroup(
        scope,
        cid,
        name=name,
        kms_key_id=key.arn,
        retention_in_days=LOG_RETENTION_DAYS,
        tags=names.tags,
    )
