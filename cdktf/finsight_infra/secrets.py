"""Secrets Manager *containers* (names from config, values never in code) encrypted with the secrets CMK.

Only PostgreSQL credentials rotate automatically (the standard single-user rotation Lambda, ARN from config
`source_network.rotation_lambda_arn`, because it lives with the database team). Vendor API keys are issued by the
payment providers and the Snowflake key pair rotates through RSA_PUBLIC_KEY_2: both by runbook.

The PAN tokenization key is versioned (`{"current_version": "2", "keys": {"1": ..., "2": ...}}`, tokens carry
`v<version>$`): `finsight pan-key rotate --env E` adds a version and makes it current, keeping the old ones for
verification, under the MFA-gated rotator role below. Its resource policy lets nobody else read it but the task
roles of the connectors that tokenize card numbers, and nobody but the rotator write it (checkov-skips.yaml,
CKV2_AWS_57).
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktn import TerraformVariable
from cdktn_provider_aws.iam_role import IamRole
from cdktn_provider_aws.iam_role_policy import IamRolePolicy
from cdktn_provider_aws.kms_key import KmsKey
from cdktn_provider_aws.secretsmanager_secret import SecretsmanagerSecret
from cdktn_provider_aws.secretsmanager_secret_policy import SecretsmanagerSecretPolicy
from cdktn_provider_aws.secretsmanager_secret_rotation import (
    SecretsmanagerSecretRotation,
    SecretsmanagerSecretRotationRotationRules,
)
from constructs import Construct

from finsight import tfvars
from finsight_infra.naming import Names
from finsight_infra.policy import allow, assume_role, aws_principal, deny, document

POSTGRES_ROTATION_DAYS = 30
RECOVERY_WINDOW_DAYS = 30


@dataclass(frozen=True)
class Secrets:
    by_source: dict[str, SecretsmanagerSecret]
    snowflake_service_user: SecretsmanagerSecret
    snowflake_governance_user: SecretsmanagerSecret
    pan_tokenization_key: SecretsmanagerSecret


def _secret(scope: Construct, cid: str, name: str, description: str, key: KmsKey, names: Names) -> SecretsmanagerSecret:
    return SecretsmanagerSecret(
        scope,
        cid,
        name=name,
        description=description,
        kms_key_id=key.arn,
        recovery_window_in_days=RECOVERY_WINDOW_DAYS,
        tags=names.tags,
    )


def build_secrets(scope: Construct, names: Names, key: KmsKey) -> Secrets:
    rotation_var = tfvars.variable("postgres_rotation_lambda_arn")
    rotation_lambda = TerraformVariable(scope, rotation_var.name, type="string", description=rotation_var.description)
    by_source: dict[str, SecretsmanagerSecret] = {}
    for src in names.sources:
        secret = _secret(scope, f"secret-{src.name}", src.secret, f"{src.kind} source {src.name}", key, names)
        by_source[src.name] = secret
        if src.kind == "postgres":
            SecretsmanagerSecretRotation(
                scope,
                f"secret-{src.name}-rotation",
                secret_id=secret.id,
                rotation_lambda_arn=rotation_lambda.string_value,
                rotation_rules=SecretsmanagerSecretRotationRotationRules(
                    automatically_after_days=POSTGRES_ROTATION_DAYS
                ),
            )
    secrets = names.env.secrets
    pan_key = _secret(
        scope, "secret-pan-key", secrets.pan_tokenization_key, "PAN tokenization HMAC keys (versioned)", key, names
    )
    _pan_key_access(scope, names, pan_key, key)
    return Secrets(
        by_source=by_source,
        snowflake_service_user=_secret(
            scope, "secret-snowflake-user", secrets.snowflake_service_user, "Snowflake service user key", key, names
        ),
        snowflake_governance_user=_secret(
            scope,
            "secret-snowflake-governance-user",
            secrets.snowflake_governance_user,
            "Snowflake governance deploy user key (migrations-governance/)",
            key,
            names,
        ),
        pan_tokenization_key=pan_key,
    )


# Reading the key is tokenizing (or forging tokens); writing or re-labelling a version decides which key tokenizes
# from then on (a planted AWSCURRENT would make every new token computable by whoever planted it).
PAN_KEY_READ = ["secretsmanager:GetSecretValue"]
PAN_KEY_WRITE = [
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:RotateSecret",
    "secretsmanager:CancelRotateSecret",
]


def pan_key_readers(names: Names) -> list[str]:
    """Role ARNs that may read the PAN key: the task roles of connectors that tokenize (PostgreSQL sources with
    `pci: pan` columns, and every API source, whose records are scrubbed for card numbers), and the rotator."""
    tasks = [names.role_arn(names.task_role(src.name)) for src in names.sources if src.needs_pan_key]
    return [*tasks, names.role_arn(names.pan_key_rotator_role)]


def pan_key_writers(names: Names) -> list[str]:
    """Only the MFA-gated rotator adds or promotes a version (finsight pan-key rotate)."""
    return [names.role_arn(names.pan_key_rotator_role)]


def _pan_key_access(scope: Construct, names: Names, secret: SecretsmanagerSecret, key: KmsKey) -> None:
    """Deny-by-default on the PAN key: IAM grants elsewhere (an admin's ReadOnly, a new role) cannot open it, and
    the connectors that read it cannot write it."""
    SecretsmanagerSecretPolicy(
        scope,
        "secret-pan-key-policy",
        secret_arn=secret.arn,
        block_public_policy=True,
        policy=document(
            deny(
                "OnlyTokenizingConnectorsAndRotatorRead",
                PAN_KEY_READ,
                "*",
                {"StringNotEquals": {"aws:PrincipalArn": pan_key_readers(names)}},
                {"AWS": "*"},
            ),
            deny(
                "OnlyRotatorWritesVersions",
                PAN_KEY_WRITE,
                "*",
                {"StringNotEquals": {"aws:PrincipalArn": pan_key_writers(names)}},
                {"AWS": "*"},
            ),
        ),
    )
    # Rotation is a deliberate, MFA-gated human act (finsight pan-key rotate): a new version, old ones kept.
    rotator = IamRole(
        scope,
        "pan-key-rotator",
        name=names.pan_key_rotator_role,
        assume_role_policy=assume_role(
            aws_principal(names.env.governance.pan_key_rotators if names.env.governance else []),
            {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        ),
        max_session_duration=3600,
        tags=names.tags,
    )
    IamRolePolicy(
        scope,
        "pan-key-rotator-policy",
        name=names.pan_key_rotator_role,
        role=rotator.id,
        policy=document(
            allow(
                "RotatePanKey",
                ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:DescribeSecret"],
                names.secret_arn_pattern(names.env.secrets.pan_tokenization_key),
            ),
            allow(
                "SecretsKeyViaSecretsManager",
                ["kms:Decrypt", "kms:GenerateDataKey"],
                key.arn,
                {"StringEquals": {"kms:ViaService": f"secretsmanager.{names.region}.amazonaws.com"}},
            ),
        ),
    )
