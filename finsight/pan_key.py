"""Rotation of the PAN tokenization key: a new key version becomes current, earlier versions stay for verification.

The secret (`secrets.pan_tokenization_key`) holds `{"current_version": "2", "keys": {"1": "<hex>", "2": "<hex>"}}`;
the legacy `{"hmac_key": "<hex>"}` is version 1. Connectors tokenize with the current version and tokens carry it
(`v<version>$<hmac>`), so a card number tokenized before and after a rotation is still matched by re-computing the
token under the version it names. Rotation is a deliberate act under the MFA-gated rotator role (cdktf secrets.py):
`finsight pan-key rotate --env prod`. No key value is ever printed, logged or returned.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from finsight.aws import client
from finsight.config import Environment

KEY_BYTES = 32  # HMAC-SHA256 key: 256 bits


class PanKeyError(ValueError):
    """The PAN key secret is missing or malformed; the message names the secret and the field, never a value."""


@dataclass(frozen=True)
class KeyStatus:
    secret: str
    current_version: str
    versions: list[str]


def _parse(name: str, raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise PanKeyError(f"secret {name!r} is not a JSON object") from None
    if not isinstance(data, dict):
        raise PanKeyError(f"secret {name!r} is not a JSON object")
    if "keys" not in data and "hmac_key" in data:  # legacy single key = version 1
        return {"current_version": "1", "keys": {"1": data["hmac_key"]}}
    keys, current = data.get("keys"), data.get("current_version")
    if not isinstance(keys, dict) or not keys or not all(str(v).isdigit() for v in keys):
        raise PanKeyError(f"secret {name!r}: field 'keys' must map version numbers to keys")
    if str(current) not in keys:
        raise PanKeyError(f"secret {name!r}: field 'current_version' ({current!r}) is not among 'keys'")
    return {"current_version": str(current), "keys": {str(k): v for k, v in keys.items()}}


def _read(env: Environment) -> tuple[str, dict[str, Any]]:
    name = env.secrets.pan_tokenization_key
    sm = client(env, "secretsmanager")
    try:
        raw = sm.get_secret_value(SecretId=name)["SecretString"]
    except sm.exceptions.ResourceNotFoundException:
        raise PanKeyError(f"secret {name!r} not found in Secrets Manager ({env.name})") from None
    return name, _parse(name, raw)


def status(env: Environment) -> KeyStatus:
    name, data = _read(env)
    return KeyStatus(name, data["current_version"], sorted(data["keys"], key=int))


def rotate(env: Environment) -> KeyStatus:
    """Add version max+1 with a fresh random key and make it current; every earlier version is kept."""
    name, data = _read(env)
    new_version = str(max(int(v) for v in data["keys"]) + 1)
    data["keys"][new_version] = secrets.token_hex(KEY_BYTES)
    data["current_version"] = new_version
    client(env, "secretsmanager").put_secret_value(SecretId=name, SecretString=json.dumps(data))
    return KeyStatus(name, new_version, sorted(data["keys"], key=int))
