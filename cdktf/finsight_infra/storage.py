"""The raw landing bucket (name, prefix, KMS alias and retention all from config) and its access-log bucket."""

from __future__ import annotations

from dataclasses import dataclass

from cdktn_provider_aws.kms_key import KmsKey
from cdktn_provider_aws.s3_bucket import S3Bucket
from cdktn_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
    S3BucketLifecycleConfigurationRuleTransition,
)
from cdktn_provider_aws.s3_bucket_logging import S3BucketLoggingA
from cdktn_provider_aws.s3_bucket_notification import S3BucketNotification
from cdktn_provider_aws.s3_bucket_ownership_controls import (
    S3BucketOwnershipControls,
    S3BucketOwnershipControlsRule,
)
from cdktn_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktn_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktn_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktn_provider_aws.s3_bucket_versioning import S3BucketVersioningA, S3BucketVersioningVersioningConfiguration
from constructs import Construct

from finsight_infra.naming import LOG_RETENTION_DAYS, Names
from finsight_infra.policy import DENY_INSECURE_TRANSPORT, allow, deny, document, service_principal
from finsight_infra.principals import (
    S3_DATA_ACTIONS,
    archive_bucket_principals,
    deny_unlisted,
    raw_bucket_principals,
)

NONCURRENT_VERSION_DAYS = 30  # window to undo an accidental overwrite/delete of a landed file
ABORT_MULTIPART_DAYS = 2


@dataclass(frozen=True)
class Storage:
    raw: S3Bucket
    access_logs: S3Bucket
    archive: S3Bucket


def _noncurrent_expiry() -> list[S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration]:
    """Every bucket drops overwritten versions after NONCURRENT_VERSION_DAYS (one rule, shared)."""
    return [S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(noncurrent_days=NONCURRENT_VERSION_DAYS)]


def _abort_multipart() -> list[S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload]:
    """Every bucket removes the parts of uploads that never completed (a killed connector's multipart upload)."""
    return [
        S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(days_after_initiation=ABORT_MULTIPART_DAYS)
    ]


def _locked_bucket(scope: Construct, cid: str, name: str, names: Names) -> S3Bucket:
    """A bucket with ACLs disabled, every public access block on and versioning enabled."""
    bucket = S3Bucket(scope, cid, bucket=name, tags=names.tags)
    S3BucketOwnershipControls(
        scope,
        f"{cid}-ownership",
        bucket=bucket.id,
        rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"),
    )
    S3BucketPublicAccessBlock(
        scope,
        f"{cid}-public-access-block",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    S3BucketVersioningA(
        scope,
        f"{cid}-versioning",
        bucket=bucket.id,
        versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"),
    )
    return bucket


def _encryption(scope: Construct, cid: str, bucket: S3Bucket, key: KmsKey | None) -> None:
    default = (
        S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
            sse_algorithm="aws:kms", kms_master_key_id=key.arn
        )
        if key
        else S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(sse_algorithm="AES256")
    )
    S3BucketServerSideEncryptionConfigurationA(
        scope,
        f"{cid}-sse",
        bucket=bucket.id,
        rule=[
            S3BucketServerSideEncryptionConfigurationRuleA(
                apply_server_side_encryption_by_default=default,
                bucket_key_enabled=key is not None,  # S3 Bucket Keys cut KMS request cost for many small puts
                blocked_encryption_types=["SSE-C"],
            )
        ],
    )


def _raw_policy(bucket: S3Bucket, key: KmsKey, principals: list[str]) -> str:
    objects = f"{bucket.arn}/*"
    # Puts that name an encryption must name SSE-KMS with *our* key; puts that name none get the bucket default
    # (the same key). "IfExists" matters: UploadPart requests never carry the header, so a plain StringNotEquals
    # would break multipart uploads of large Parquet files.
    return document(
        deny("DenyInsecureTransport", "s3:*", [bucket.arn, objects], DENY_INSECURE_TRANSPORT, {"AWS": "*"}),
        deny(
            "DenyNonKmsPuts",
            "s3:PutObject",
            objects,
            {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}},
            {"AWS": "*"},
        ),
        deny(
            "DenyOtherKmsKeys",
            "s3:PutObject",
            objects,
            {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key.arn}},
            {"AWS": "*"},
        ),
        # nobody but the named roles reads, writes or lists objects, whatever their IAM policies grant
        deny_unlisted("OnlyNamedRolesTouchObjects", S3_DATA_ACTIONS, [bucket.arn, objects], principals),
    )


def _lifecycle(scope: Construct, names: Names, bucket: S3Bucket) -> None:
    retention = names.env.retention
    if retention.raw_days <= retention.raw_infrequent_access_after_days:
        raise ValueError("retention.raw_days must exceed retention.raw_infrequent_access_after_days")
    S3BucketLifecycleConfiguration(
        scope,
        "raw-lifecycle",
        bucket=bucket.id,
        rule=[
            S3BucketLifecycleConfigurationRule(
                id="raw-retention",
                status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix=f"{names.raw_prefix}/")],
                transition=[
                    S3BucketLifecycleConfigurationRuleTransition(
                        days=retention.raw_infrequent_access_after_days, storage_class="STANDARD_IA"
                    )
                ],
                expiration=[S3BucketLifecycleConfigurationRuleExpiration(days=retention.raw_days)],
                noncurrent_version_expiration=_noncurrent_expiry(),
                abort_incomplete_multipart_upload=_abort_multipart(),
            ),
            S3BucketLifecycleConfigurationRule(
                id="bucket-housekeeping",
                status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                abort_incomplete_multipart_upload=_abort_multipart(),
            ),
        ],
    )


def _access_log_bucket(scope: Construct, names: Names) -> S3Bucket:
    logs = _locked_bucket(scope, "access-logs", names.access_log_bucket, names)
    # S3 server access logging cannot deliver to SSE-KMS buckets, hence SSE-S3 here (see checkov-skips.yaml).
    _encryption(scope, "access-logs", logs, None)
    S3BucketLifecycleConfiguration(
        scope,
        "access-logs-lifecycle",
        bucket=logs.id,
        rule=[
            S3BucketLifecycleConfigurationRule(
                id="expire-access-logs",
                status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                expiration=[S3BucketLifecycleConfigurationRuleExpiration(days=LOG_RETENTION_DAYS)],
                noncurrent_version_expiration=_noncurrent_expiry(),
                abort_incomplete_multipart_upload=_abort_multipart(),
            )
        ],
    )
    S3BucketPolicy(
        scope,
        "access-logs-policy",
        bucket=logs.id,
        policy=document(
            allow(
                "S3ServerAccessLogs",
                "s3:PutObject",
                f"{logs.arn}/*",
                {
                    "ArnLike": {
                        "aws:SourceArn": [f"arn:aws:s3:::{names.raw_bucket}", f"arn:aws:s3:::{names.archive.bucket}"]
                    },
                    "StringEquals": {"aws:SourceAccount": names.account_id},
                },
                service_principal("logging.s3.amazonaws.com"),
            ),
            deny("DenyInsecureTransport", "s3:*", [logs.arn, f"{logs.arn}/*"], DENY_INSECURE_TRANSPORT, {"AWS": "*"}),
        ),
    )
    # Object events go to EventBridge (no rules yet): lets security tooling watch for unexpected access-log writes.
    S3BucketNotification(scope, "access-logs-events", bucket=logs.id, eventbridge=True)
    return logs


def _archive_lifecycle(scope: Construct, names: Names, bucket: S3Bucket) -> None:
    """Iceberg data files are immutable once written: tier them by age; old snapshots' files expire after the
    noncurrent window. Glacier Instant Retrieval stays readable in milliseconds, so Snowflake queries still work."""
    archive = names.archive
    S3BucketLifecycleConfiguration(
        scope,
        "archive-lifecycle",
        bucket=bucket.id,
        rule=[
            S3BucketLifecycleConfigurationRule(
                id="archive-tiering",
                status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix=f"{archive.prefix}/")],
                transition=[
                    S3BucketLifecycleConfigurationRuleTransition(
                        days=archive.infrequent_access_after_days, storage_class="STANDARD_IA"
                    ),
                    S3BucketLifecycleConfigurationRuleTransition(
                        days=archive.glacier_ir_after_days, storage_class="GLACIER_IR"
                    ),
                ],
                noncurrent_version_expiration=_noncurrent_expiry(),
                abort_incomplete_multipart_upload=_abort_multipart(),
            ),
            S3BucketLifecycleConfigurationRule(
                id="bucket-housekeeping",
                status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                abort_incomplete_multipart_upload=_abort_multipart(),
            ),
        ],
    )


def build_storage(scope: Construct, names: Names, data_key: KmsKey) -> Storage:
    logs = _access_log_bucket(scope, names)
    raw = _locked_bucket(scope, "raw", names.raw_bucket, names)
    _encryption(scope, "raw", raw, data_key)
    _lifecycle(scope, names, raw)
    S3BucketLoggingA(
        scope, "raw-access-logging", bucket=raw.id, target_bucket=logs.id, target_prefix=f"{names.raw_bucket}/"
    )
    S3BucketPolicy(scope, "raw-policy", bucket=raw.id, policy=_raw_policy(raw, data_key, raw_bucket_principals(names)))
    # CURATED history older than curated_archive.hot_months: Iceberg tables written by Snowflake (external volume).
    archive = _locked_bucket(scope, "archive", names.archive.bucket, names)
    _encryption(scope, "archive", archive, data_key)
    _archive_lifecycle(scope, names, archive)
    S3BucketLoggingA(
        scope,
        "archive-access-logging",
        bucket=archive.id,
        target_bucket=logs.id,
        target_prefix=f"{names.archive.bucket}/",
    )
    S3BucketPolicy(
        scope,
        "archive-policy",
        bucket=archive.id,
        policy=_raw_policy(archive, data_key, archive_bucket_principals(names)),
    )
    # Object events to EventBridge (no rules yet): security tooling can watch writes outside Snowflake's role.
    S3BucketNotification(scope, "archive-events", bucket=archive.id, eventbridge=True)
    return Storage(raw=raw, access_logs=logs, archive=archive)
