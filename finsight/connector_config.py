"""The `--config` JSON of one PostgreSQL source's Airbyte connector, from environments/<env>.yaml.

Secrets stay a reference (`secret`: the Secrets Manager name the connector reads at run time) unless the caller
asks for them resolved; then username/password come from Secrets Manager (never from a file or the code).
"""

from __future__ import annotations

from typing import Any

from finsight.config import Environment
from finsight.secrets import read_secret


class ConnectorConfigError(ValueError):
    pass


def connector_config(env: Environment, source: str, resolve_secrets: bool = False) -> dict[str, Any]:
    if source in env.api_sources:
        raise ConnectorConfigError(f"--source: {source!r} is an API source; protocol configs cover PostgreSQL only")
    if source not in env.postgres_sources:
        known = ", ".join(env.postgres_sources)
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
        "secret": conn.secret,
    }
    if resolve_secrets:
        secret = read_secret(env, conn.secret)
        config["username"] = secret["username"].get_secret_value()
        config["password"] = secret["password"].get_secret_value()
    return config
