"""Connections to a source database, credentials from Secrets Manager only.

Two kinds: psycopg for control queries (snapshot, horizon, schema, key ranges) and ADBC for the Arrow bulk read
(PostgreSQL's binary COPY decoded into Arrow in C++, no Python object per row). TLS with full verification outside
the local stack (the config refuses anything else).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg

from finsight.config import Environment
from finsight.secrets import read_secret

CONNECT_TIMEOUT_SECONDS = 15


class SourceUnavailable(RuntimeError):  # noqa: N818 - reads as a sentence at the raise site
    """The source cannot be reached or read (connect, secret, snapshot): the message never holds a credential."""


def application_name(source: str) -> str:
    # the read horizon ignores the connector's own sessions by this prefix (they never write)
    return f"finsight-connector-{source}"


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password=***)"


def credentials(env: Environment, source: str) -> Credentials:
    conn_cfg = env.postgres_sources[source].connection
    assert conn_cfg is not None
    try:
        secret = read_secret(env, conn_cfg.secret)
    except Exception as exc:
        raise SourceUnavailable(f"source {source!r}: cannot read its secret: {str(exc).splitlines()[0]}") from None
    return Credentials(secret["username"].get_secret_value(), secret["password"].get_secret_value())


def redact(message: str, creds: Credentials) -> str:
    """Drivers may echo a connection string: never let the password through."""
    return message.replace(creds.password, "***").replace(quote(creds.password, safe=""), "***")


def connect(env: Environment, source: str, creds: Credentials | None = None) -> psycopg.Connection:
    conn_cfg = env.postgres_sources[source].connection
    assert conn_cfg is not None
    creds = creds or credentials(env, source)
    try:
        return psycopg.connect(
            host=conn_cfg.host,
            port=conn_cfg.port,
            dbname=conn_cfg.database,
            user=creds.user,
            password=creds.password,
            sslmode=conn_cfg.sslmode,
            application_name=application_name(source),
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except psycopg.Error as exc:
        first = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, creds)
        raise SourceUnavailable(f"source {source!r}: cannot connect: {first}") from None


def adbc_connect(env: Environment, source: str, creds: Credentials) -> Any:
    import adbc_driver_postgresql.dbapi as adbc  # heavy import: only on the bulk path

    conn_cfg = env.postgres_sources[source].connection
    assert conn_cfg is not None
    uri = (
        f"postgresql://{quote(creds.user, safe='')}:{quote(creds.password, safe='')}@{conn_cfg.host}:{conn_cfg.port}/"
        f"{quote(conn_cfg.database, safe='')}?sslmode={conn_cfg.sslmode}&application_name={application_name(source)}"
        f"&connect_timeout={CONNECT_TIMEOUT_SECONDS}"
    )
    try:
        return adbc.connect(uri, autocommit=True)  # transactions are explicit: BEGIN ... SET TRANSACTION SNAPSHOT
    except Exception as exc:
        first = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, creds)
        raise SourceUnavailable(f"source {source!r}: cannot connect (bulk reader): {first}") from None
