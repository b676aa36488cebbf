"""Secrets Manager *containers* (names from config, values never in code) encrypted with the secrets CMK.

Only PostgreSQL credentials rotate automatically (the standard single-user rotation Lambda, ARN passed as a
variable because it lives with the database team). Vendor API keys are issued by the payment providers, the
Snowflake key pair rotates through RSA_PUBLIC_KEY_2, and rotating the PAN tokenization key needs a re-tokenization
plan: those rotate by runbook, not by Lambda (see checkov-skips.yaml, CKV2_AWS_57).
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktn import TerraformVariable
from cdktn_provider_aws.kms_key import KmsKey
from cdktn_provider_aws.secretsmanager_secret import SecretsmanagerSecret
from cdktn_provider_aws.secretsmanager_secret_rotation import (
    SecretsmanagerSecretRotation,
    SecretsmanagerSecretRotationRotationRules,
)
from constructs import Construct

from finsight_infra.naming import Names

POSTGRES_ROTATION_DAYS = 30
RECOVERY_WINDOW_DAYS = 30


@dataclass(frozen=True)
class Secrets:
    by_source: dict[str, SecretsmanagerSecret]
    snowflake_service_user: SecretsmanagerSecret
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
    rotation_lambda = TerraformVariable(
        scope,
        "postgres_rotation_lambda_arn",
        type="string",
        description="ARN of the Secrets Manager rotation Lambda for PostgreSQL credentials",
    )
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
    return Secrets(
        by_source=by_source,
        snowflake_service_user=_secret(
            scope, "secret-snowflake-user", secrets.snowflake_service_user, "Snowflake service user key", key, names
        ),
        pan_tokenization_key=_secret(
            scope, "secret-pan-key", secrets.pan_tokenization_key, "PAN tokenization HMAC key", key, names
        ),
    )
