"""Remote state: one S3 backend per environment and stack, with S3-native locking (`use_lockfile`).

Terraform >= 1.10 locks with a conditional-write `.tflock` object next to the state, so no DynamoDB table is
needed (its locking is deprecated). The state bucket is bootstrapped once per account, outside these stacks
(a stack cannot hold the bucket that stores its own state): versioned, SSE-KMS, public access blocked.
"""

from __future__ import annotations

from cdktn import S3Backend, TerraformStack

from finsight_infra.naming import Names

# Keep in sync with "targetVersions" in cdktf/cdktf.json (the cdktn CLI reads that one).
TARGET_VERSIONS = {"terraform": ">=1.10.0", "opentofu": ">=1.10.0"}


def use_remote_state(stack: TerraformStack, names: Names, kind: str) -> S3Backend:
    # No `terraform.required_version` override: checkov 3.3's terraform_json parser fails on a plain string in the
    # terraform block ("this method receives only dicts") and silently scans nothing. cdktn's targetVersions
    # validation (TARGET_VERSIONS) and the deploy job's pinned Terraform cover the version floor instead.
    return S3Backend(
        stack,
        bucket=names.state_bucket,
        key=names.state_key(kind),
        region=names.region,
        encrypt=True,
        use_lockfile=True,
    )
