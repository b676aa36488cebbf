"""Read secrets from AWS Secrets Manager (moto locally): the only place credentials come from.

Values are wrapped so that printing, logging or an exception message never shows them.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr

from finsight.aws import client
from finsight.config import Environment


class SecretNotFound(LookupError):  # noqa: N818 - reads as a sentence at the raise site
    """The named secret does not exist or is not readable (the name is safe to show; the value never is)."""


def read_secret(env: Environment, name: str) -> dict[str, SecretStr]:
    """Fetch a JSON secret; every field comes back as SecretStr (use .get_secret_value() at the point of use)."""
    sm = client(env, "secretsmanager")
    try:
        raw = sm.get_secret_value(SecretId=name)["SecretString"]
    except sm.exceptions.ResourceNotFoundException:
        raise SecretNotFound(f"secret {name!r} not found in Secrets Manager ({env.name})") from None
    try:
        data: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError:
        raise SecretNotFound(f"secret {name!r} is not a JSON object") from None
    # nested objects (e.g. versioned keys) stay JSON text inside the SecretStr
    return {k: SecretStr(json.dumps(v) if isinstance(v, dict | list) else str(v)) for k, v in data.items()}
