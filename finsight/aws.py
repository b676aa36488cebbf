"""boto3 clients for an environment: moto on the local stack, the real AWS APIs (TLS) everywhere else."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

from finsight.config import Environment

_RETRIES = Config(retries={"max_attempts": 8, "mode": "adaptive"})


def client(env: Environment, service: str) -> Any:
    return _client(env.aws.region, env.aws.endpoint_url, service)


@lru_cache(maxsize=32)
def _client(region: str, endpoint_url: str | None, service: str) -> Any:
    if endpoint_url:
        # moto accepts any key pair; real environments use the ECS task role / OIDC role, never static keys
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto placeholder, not a credential
            config=_RETRIES,
        )
    return boto3.client(service, region_name=region, config=_RETRIES)


def kms_key_id(env: Environment) -> str:
    """Resolve the raw bucket's CMK alias to its key id (every S3 write names it explicitly)."""
    return client(env, "kms").describe_key(KeyId=env.aws.s3.kms_key_alias)["KeyMetadata"]["KeyId"]
