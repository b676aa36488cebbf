"""Principal allow-lists of the resource policies that guard cardholder data at rest (issue 21 item 8).

IAM grants (iam.py, quarantine.py) say what each role may do. These lists back them from the resource side: the raw
and archive buckets and the data key deny their data actions to every principal of any account that is not named
here, whatever that principal's own IAM policy says (an administrator's broad policy, a role added later). They are
derived from naming, so they follow the sources in config; tests/infra/test_resource_policies.py fails when a role
the IAM policies grant is missing here, or when a list names a role nothing grants.

AWS evaluates `aws:PrincipalArn` as the role ARN for an assumed-role session, and it is absent for AWS service
principals (S3 publishing events, SNS delivering them), which `aws:PrincipalIsAWSService` keeps out of the deny:
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn
"""

from __future__ import annotations

from collections.abc import Sequence

from finsight_infra.naming import Names
from finsight_infra.policy import Statement, deny

# Object data actions only: bucket and key *management* (policy, lifecycle, rotation) stays with the deploy role's
# IAM policy, so Terraform can still manage what it created.
S3_DATA_ACTIONS = ["s3:GetObject*", "s3:PutObject*", "s3:DeleteObject*", "s3:ListBucket*", "s3:RestoreObject"]
KMS_DATA_ACTIONS = ["kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"]


def raw_bucket_principals(names: Names) -> list[str]:
    """Connector task roles (land and read their state), the quarantine Lambda, Snowpipe's storage role."""
    roles = [names.task_role(src.name) for src in names.sources]
    roles += [names.quarantine_role, names.snowflake_storage_role]
    return sorted(names.role_arn(r) for r in roles)


def archive_bucket_principals(names: Names) -> list[str]:
    """Only Snowflake's archive role writes and reads the Iceberg tables."""
    return [names.role_arn(names.snowflake_archive_role)]


def data_key_principals(names: Names) -> list[str]:
    """Everything stored under the data key lives in those two buckets (and the event path S3 and SNS use)."""
    return sorted({*raw_bucket_principals(names), *archive_bucket_principals(names)})


def deny_unlisted(sid: str, actions: Sequence[str], resources: str | Sequence[str], arns: Sequence[str]) -> Statement:
    condition = {
        "StringNotLike": {"aws:PrincipalArn": list(arns)},
        "Bool": {"aws:PrincipalIsAWSService": "false"},
    }
    return deny(sid, list(actions), resources, condition, {"AWS": "*"})
