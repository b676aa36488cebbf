"""Connections to Snowflake (fakesnow locally) for the connector-side loader, procedures and the DAG runner."""

from __future__ import annotations

import atexit
from typing import Any

import snowflake.connector
from cryptography.hazmat.primitives import serialization

from finsight.config import Environment
from finsight.secrets import read_secret

# Local stack only: a fakesnow server that is gone fails a query in seconds, not after minutes of retries
# (tests/chaos/test_warehouse_faults.py bounds a whole cycle with the server killed mid-MERGE).
LOCAL_LOGIN_TIMEOUT_S = 15
LOCAL_NETWORK_TIMEOUT_S = 20


def connection_parameters(env: Environment, warehouse: str = "transform") -> dict[str, Any]:
    """Connector / Snowpark parameters; credentials come from Secrets Manager only."""
    secret = read_secret(env, env.secrets.snowflake_service_user)
    params: dict[str, Any] = {
        "account": env.snowflake.account,
        "user": env.snowflake.user,
        "role": env.snowflake.role,
        "database": env.snowflake.database,
        "warehouse": env.snowflake.warehouse_name(warehouse),
    }
    if env.is_local:
        assert env.local is not None
        params |= {
            "host": "127.0.0.1",
            "port": env.local.fakesnow_port,
            "protocol": "http",  # loopback only; every real account is reached over TLS
            # fail instead of retrying for many minutes when the local server is gone: a request is retried for
            # at most network_timeout seconds (each read still waits up to socket_timeout for a long query)
            "login_timeout": LOCAL_LOGIN_TIMEOUT_S,
            "network_timeout": LOCAL_NETWORK_TIMEOUT_S,
            "password": secret["password"].get_secret_value(),
        }
    else:
        pem = secret["private_key"].get_secret_value().encode()
        key = serialization.load_pem_private_key(pem, password=None)
        params["private_key"] = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        params["authenticator"] = "SNOWFLAKE_JWT"
    return params


def connect(env: Environment, schema: str | None = None) -> snowflake.connector.SnowflakeConnection:
    params = connection_parameters(env)
    if schema:
        params["schema"] = schema
    return snowflake.connector.connect(**params)


def snowpark_session(env: Environment) -> Any:
    """A Snowpark session: how procedure handlers are run locally (Snowflake passes its own session)."""
    from snowflake.snowpark import Session

    # a current schema is needed: fakesnow's MERGE creates helper tables in it
    session = Session.builder.configs(connection_parameters(env) | {"schema": env.snowflake.schemas["ops"]}).create()
    # callers close their session; Snowpark's own at-exit close would query a server that may be gone by then
    atexit.unregister(session._close_at_exit)
    return session
