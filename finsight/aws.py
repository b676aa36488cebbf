"""boto3 clients for an environment: moto on the local stack, the real AWS APIs (TLS) everywhere else.

Identity. In AWS a process already runs as its role (the ECS task role of its source). Locally, with
`local.strict_iam` on, moto enforces IAM: tools and tests act as the local admin user (a 0600 file under the
local state dir, written by `finsight local up`), and `acting_as(env, role_arn)` makes every client built in that
context (threads started with `finsight.ops.log_context.submit` included) use the role's STS session instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from finsight.config import Environment, repo_root
from finsight.iam_policy import (
    alert_publisher_role_name,
    quarantine_role_name,
    role_arn,
    snowflake_storage_role_name,
    task_role_name,
)
from finsight.private_file import write_private

_RETRIES = Config(retries={"max_attempts": 8, "mode": "adaptive"})
# Set on each ECS task definition (cdktf compute.py); written by the local bootstrap for the local stack.
DATA_KEY_ARN_VAR = "FINSIGHT_DATA_CMK_ARN"
# Role sessions last as long as a local run may (moto's STS default is one hour).
LOCAL_SESSION_SECONDS = 12 * 3600

_acting_role: ContextVar[str | None] = ContextVar("finsight_aws_role", default=None)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def client(env: Environment, service: str) -> Any:
    return _client(env.aws.region, env.aws.endpoint_url, service, _local_credentials(env))


@lru_cache(maxsize=128)
def _client(region: str, endpoint_url: str | None, service: str, creds: Credentials | None) -> Any:
    if endpoint_url:
        assert creds is not None
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            aws_session_token=creds.session_token,
            config=_RETRIES,
        )
    # real environments use the ECS task role / OIDC role, never static keys
    return boto3.client(service, region_name=region, config=_RETRIES)


# -- local identities ----------------------------------------------------------------------------


def strict_iam(env: Environment) -> bool:
    return env.local is not None and env.aws.endpoint_url is not None and env.local.strict_iam


def local_aws_dir(env: Environment) -> Path:
    assert env.local is not None
    return repo_root() / env.local.state_dir / "aws"


def admin_credentials_file(env: Environment) -> Path:
    return local_aws_dir(env) / "admin-credentials.json"


def data_key_file(env: Environment) -> Path:
    return local_aws_dir(env) / "data-key-arn"


# moto accepts any key pair while IAM is not enforced; not a credential
_OPEN_MOTO = Credentials("local", "local")


def _local_credentials(env: Environment) -> Credentials | None:
    if not env.aws.endpoint_url:
        return None
    if not strict_iam(env):
        return _OPEN_MOTO
    role = _acting_role.get()
    admin = admin_credentials(env)
    return admin if role is None else _role_session(env.aws.region, env.aws.endpoint_url, admin, role)


def unauthenticated_client(env: Environment, service: str) -> Any:
    """For the bootstrap's one window with IAM enforcement off (creating the admin user): any key pair passes."""
    assert env.aws.endpoint_url is not None
    return _client(env.aws.region, env.aws.endpoint_url, service, _OPEN_MOTO)


class LocalStackNotUpError(RuntimeError):
    """The local stack was never brought up in this state dir: the CLI answers it as a stack that is down."""


def admin_credentials(env: Environment) -> Credentials:
    path = admin_credentials_file(env)
    try:
        return _read_admin(str(path), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise LocalStackNotUpError(
            f"no local AWS admin credentials at {path}: run `finsight local up --env {env.name}`"
        ) from None


@lru_cache(maxsize=4)
def _read_admin(path: str, _mtime_ns: int) -> Credentials:  # the mtime keys the cache: a new key is re-read
    data = json.loads(Path(path).read_text())
    return Credentials(data["access_key_id"], data["secret_access_key"])


def write_admin_credentials(env: Environment, creds: Credentials) -> None:
    """0600 from the first byte: the key never sits readable by others, and it is never printed."""
    secret = {"access_key_id": creds.access_key_id, "secret_access_key": creds.secret_access_key}
    write_private(admin_credentials_file(env), json.dumps(secret))
    forget_sessions()


@lru_cache(maxsize=64)
def _role_session(region: str, endpoint_url: str, admin: Credentials, role_arn: str) -> Credentials:
    sts = _client(region, endpoint_url, "sts", admin)
    session = role_arn.rsplit("/", 1)[-1][:64]
    out = sts.assume_role(RoleArn=role_arn, RoleSessionName=session, DurationSeconds=LOCAL_SESSION_SECONDS)
    c = out["Credentials"]
    return Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


def role_credentials(env: Environment, role_arn: str) -> Credentials:
    """A local role session (for processes that take credentials, e.g. the local Snowflake's S3 reader)."""
    assert env.aws.endpoint_url is not None
    return _role_session(env.aws.region, env.aws.endpoint_url, admin_credentials(env), role_arn)


def forget_sessions() -> None:
    """After moto restarted (new admin key, new roles): cached sessions and clients are void."""
    _role_session.cache_clear()
    _client.cache_clear()


@contextmanager
def acting_as(env: Environment, role_arn: str) -> Iterator[None]:
    """Make AWS calls in this context as `role_arn` (locally: an STS session; in AWS: the process's own role)."""
    token = _acting_role.set(role_arn if strict_iam(env) else None)
    try:
        yield
    finally:
        _acting_role.reset(token)


# -- the data key ------------------------------------------------------------------------------------


def data_key_arn(env: Environment) -> str:
    """The raw bucket's CMK by key ARN: what every S3 write names, and what the bucket policy pins.

    Taken from the task environment (no kms:DescribeKey at run time: no role grants it and the private subnets
    have no KMS endpoint); locally from the file the bootstrap writes.
    """
    if env.local is not None:
        path = data_key_file(env)
        if not path.exists():
            raise RuntimeError(f"no local data key ARN at {path}: run `finsight local up --env {env.name}`")
        arn = path.read_text().strip()
    else:
        arn = os.environ.get(DATA_KEY_ARN_VAR, "")
    if not arn:
        raise RuntimeError(f"{DATA_KEY_ARN_VAR} is not set: the task definition injects the raw data key's ARN")
    if not arn.startswith("arn:aws:kms:") or ":key/" not in arn:
        raise RuntimeError(f"{DATA_KEY_ARN_VAR}={arn!r} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)")
    return arn


def as_source_task(env: Environment, source: str) -> AbstractContextManager[None]:
    """Act as the source's ECS task role: one source's connector can touch only what its role grants."""
    return acting_as(env, role_arn(env, task_role_name(env, source)))


def as_snowflake_storage(env: Environment) -> AbstractContextManager[None]:
    """Act as the role Snowflake's storage integration assumes (stages, Snowpipe COPY)."""
    return acting_as(env, role_arn(env, snowflake_storage_role_name(env)))


def as_quarantine_handler(env: Environment) -> AbstractContextManager[None]:
    """Act as the quarantine Lambda's role: move a failed raw file to quarantine/ (finsight.quarantine)."""
    return acting_as(env, role_arn(env, quarantine_role_name(env)))


def as_alert_publisher(env: Environment) -> AbstractContextManager[None]:
    """Act as the role that publishes alerts (Snowflake's notification integration in AWS): sns:Publish only."""
    return acting_as(env, role_arn(env, alert_publisher_role_name(env)))
