"""The `--config` JSON of one source's Airbyte connector (PostgreSQL or API), from environments/<env>.yaml.

Secrets stay a reference (PostgreSQL `secret`, API `secret_name`: the Secrets Manager name the connector reads at
run time) unless the caller asks for them resolved; then the credentials (username/password; an API's api_key, or
PayPal's client_id/client_secret) come from Secrets Manager (never from a file or the code).
"""

from __future__ import annotations

from typing import Any

from finsight.config import Environment, repo_root
from finsight.secrets import read_secret


class ConnectorConfigError(ValueError):
    pass


def connector_config(env: Environment, source: str, resolve_secrets: bool = False) -> dict[str, Any]:
    if source in env.api_sources:
        return api_connector_config(env, source, resolve_secrets)
    if source not in env.postgres_sources:
        known = ", ".join([*env.postgres_sources, *env.api_sources])
        raise ConnectorConfigError(f"--source: unknown source {source!r} in {env.name}; known: {known}")
    conn = env.postgres_sources[source].connection
    assert conn is not None  # filled from postgres_defaults by the loader
    config: dict[str, Any] = {
        "env": env.name,
        "source": source,
        "host": conn.host,
        "port": conn.port,
        "database": conn.database,
        "sslmode": conn.sslmode,
        # a file path the connector can open from any cwd: the local CA is relative to the repository
        **({"sslrootcert": str(cafile)} if (cafile := conn.ca_file(repo_root())) else {}),
        "secret": conn.secret,
    }
    if resolve_secrets:
        secret = read_secret(env, conn.secret)
        config["username"] = secret["username"].get_secret_value()
        config["password"] = secret["password"].get_secret_value()
    return config


def api_connector_config(env: Environment, source: str, resolve_secrets: bool = False) -> dict[str, Any]:
    """env + source (the streams, cursors, keys and PCI columns come from environments/<env>.yaml at run time),
    the base URL and the secret's name; the date range, lookback and HTTP policy are left to the environment."""
    api = env.api_sources[source]
    config: dict[str, Any] = {"env": env.name, "source": source, "base_url": api.base_url, "secret_name": api.secret}
    if resolve_secrets:
        secret = read_secret(env, api.secret)
        config |= {f: secret[f].get_secret_value() for f in api.credential_fields}
    return config
