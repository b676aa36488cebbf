"""Connections to Snowflake (fakesnow locally) for the connector-side loader, procedures and the DAG runner."""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import snowflake.connector

from finsight import keypair, time_zone
from finsight.config import Environment
from finsight.secrets import read_secret

# Local stack only: a fakesnow server that is gone fails a query in seconds, not after minutes of retries
# (tests/chaos/test_warehouse_faults.py bounds a whole cycle with the server killed mid-MERGE).
LOCAL_LOGIN_TIMEOUT_S = 15
LOCAL_NETWORK_TIMEOUT_S = 20


def connection_parameters(
    env: Environment, warehouse: str = "transform", key: keypair.KeyFile | None = None
) -> dict[str, Any]:
    """Connector / Snowpark parameters; credentials come from Secrets Manager only.

    Locally a password (fakesnow); everywhere else key-pair auth through `key`, a file that exists only inside
    `login_parameters`. Every session runs in UTC whatever the account default (finsight/time_zone.py).
    """
    params: dict[str, Any] = {
        "account": env.snowflake.account,
        "user": env.snowflake.user,
        "role": env.snowflake.role,
        "database": env.snowflake.database,
        "warehouse": env.snowflake.warehouse_name(warehouse),
        "session_parameters": dict(time_zone.SESSION_PARAMETERS),
    }
    if env.is_local:
        assert env.local is not None
        secret = read_secret(env, env.secrets.snowflake_service_user)
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
        if key is None:
            raise ValueError(f"{env.name} uses key-pair auth: open the key file with login_parameters(env)")
        params |= key.connector_parameters()
    return params


@contextmanager
def login_parameters(env: Environment, warehouse: str = "transform") -> Iterator[dict[str, Any]]:
    """`connection_parameters`, valid inside the block: connect in it (the connector reads the key file once, at
    connect); the key file is removed when the block ends."""
    if env.is_local:
        yield connection_parameters(env, warehouse)
        return
    with keypair.private_key_file(env) as key:
        yield connection_parameters(env, warehouse, key)


def connect(env: Environment, schema: str | None = None) -> snowflake.connector.SnowflakeConnection:
    with login_parameters(env) as params:
        if schema:
            params["schema"] = schema
        return snowflake.connector.connect(**params)


def snowpark_session(env: Environment) -> Any:
    """A Snowpark session: how procedure handlers are run locally (Snowflake passes its own session)."""
    from snowflake.snowpark import Session

    # a current schema is needed: fakesnow's MERGE creates helper tables in it
    with login_parameters(env) as params:
        session = Session.builder.configs(params | {"schema": env.snowflake.schemas["ops"]}).create()
    # callers close their session; Snowpark's own at-exit close would query a server that may be gone by then
    atexit.unregister(session._close_at_exit)
    return session
