"""Key-pair auth: the service user's private key, from Secrets Manager to a private file for one login.

The Snowflake connector, Snowpark and schemachange all read the key the same way, from a PEM file:
  - connector (and Snowpark, which passes its configs to the connector): `private_key_file` and
    `private_key_file_pwd` (snowflake/connector/connection.py `_get_private_bytes_from_file`, read once at connect);
  - schemachange 4.4: SNOWFLAKE_PRIVATE_KEY_FILE and SNOWFLAKE_PRIVATE_KEY_FILE_PWD
    (schemachange/config/utils.py `get_snowflake_private_key_file[_pwd]`, mapped in
    config/DeployConfig.py `get_session_kwargs` to the connector's `private_key_file[_pwd]`). It has no variable
    for key *text*: an unknown SNOWFLAKE_PRIVATE_KEY is passed through (`get_all_snowflake_env_vars`) as the
    connector's `private_key`, which wants base64 DER, so PEM text there fails with "Failed to ... private key".
The passphrase goes to schemachange as SNOWFLAKE_PRIVATE_KEY_FILE_PWD (its documented way), not in a
connections.toml: schemachange expands `$VAR` inside connections.toml values (`_expand_env_vars_in_dict`), which
would corrupt a passphrase containing `$`.

The file lives in a fresh directory only this user can enter (mkdtemp: 0700), is created 0600 before a byte is
written, and is removed with its directory when the block ends, on error too. Key material never goes into an
environment variable, argv, a log or an error message.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from finsight.config import Environment
from finsight.secrets import read_secret

PRIVATE_KEY_FIELD = "private_key"  # PEM, PKCS#8 (encrypted or not)  # pragma: allowlist secret (a field name)
PASSPHRASE_FIELD = "private_key_passphrase"  # noqa: S105 - a field name; only when the PEM is encrypted
KEY_FILE_NAME = "rsa_key.p8"


class KeyPairSecretError(ValueError):
    """The secret lacks what key-pair auth needs; names the secret and its fields, never a value."""


@dataclass(frozen=True)
class KeyFile:
    path: Path
    passphrase: SecretStr | None

    def connector_parameters(self) -> dict[str, Any]:
        """For snowflake.connector.connect and Snowpark's Session.builder.configs alike."""
        params: dict[str, Any] = {"authenticator": "SNOWFLAKE_JWT", "private_key_file": str(self.path)}
        if self.passphrase is not None:
            params["private_key_file_pwd"] = self.passphrase.get_secret_value()
        return params

    def schemachange_environment(self) -> dict[str, str]:
        """For the schemachange process: the file's path (and the passphrase), never the key."""
        out = {"SNOWFLAKE_PRIVATE_KEY_FILE": str(self.path)}
        if self.passphrase is not None:
            out["SNOWFLAKE_PRIVATE_KEY_FILE_PWD"] = self.passphrase.get_secret_value()
        return out


@contextmanager
def private_key_file(env: Environment, secret_name: str | None = None) -> Iterator[KeyFile]:
    """The service user's key (or `secret_name`'s) as a 0600 file that exists for the block only."""
    name = secret_name or env.secrets.snowflake_service_user
    secret = read_secret(env, name)
    if PRIVATE_KEY_FIELD not in secret:
        raise KeyPairSecretError(
            f"secret {name!r} ({env.name}) has no {PRIVATE_KEY_FIELD!r} field: key-pair auth needs the PEM private "
            f"key there (optional {PASSPHRASE_FIELD!r} when it is encrypted); fields present: {sorted(secret)}"
        )
    pem = secret[PRIVATE_KEY_FIELD].get_secret_value()
    if "-----BEGIN" not in pem or "PRIVATE KEY-----" not in pem:
        raise KeyPairSecretError(f"secret {name!r} ({env.name}): {PRIVATE_KEY_FIELD!r} is not a PEM private key")
    directory = Path(tempfile.mkdtemp(prefix="finsight-sf-key-"))  # 0700, a fresh name
    try:
        path = directory / KEY_FILE_NAME
        # O_EXCL + mode 0600 at creation: the key is never readable by anyone else, not even for an instant
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pem if pem.endswith("\n") else pem + "\n")
        yield KeyFile(path=path, passphrase=secret.get(PASSPHRASE_FIELD))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
