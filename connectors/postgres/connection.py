"""Connections to a source database, credentials from Secrets Manager only.

Two kinds: psycopg for control queries (snapshot, horizon, schema, key ranges) and ADBC for the Arrow bulk read
(PostgreSQL's binary COPY decoded into Arrow in C++, no Python object per row). Both use TLS with full verification
(sslmode=verify-full) against the CA bundle the config names (`sslrootcert`): the RDS global bundle in the image,
the local stack's own CA locally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg

from finsight.config import Environment, repo_root
from finsight.config.models import Connection
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


def _tls_settings(source: str, conn_cfg: Connection) -> dict[str, str]:
    """libpq's TLS keywords; the CA must exist, or libpq's own message would not say which config key is wrong."""
    settings = {"sslmode": conn_cfg.sslmode}
    cafile = conn_cfg.ca_file(repo_root())
    if cafile is not None:
        if conn_cfg.sslmode == "verify-full" and not cafile.is_file():
            raise SourceUnavailable(
                f"source {source!r} ({conn_cfg.host}:{conn_cfg.port}): CA bundle {cafile} "
                "(postgres_sources.<source>.connection.sslrootcert) does not exist"
            )
        settings["sslrootcert"] = str(cafile)
    return settings


def _connect_failure(source: str, conn_cfg: Connection, exc: Exception, creds: Credentials, what: str) -> str:
    first = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, creds)
    hint = ""
    if "certificate" in first.lower():
        cafile = conn_cfg.ca_file(repo_root())
        hint = f" (TLS: the server's certificate must chain to {cafile} and name {conn_cfg.host})"
    return f"source {source!r}: cannot connect{what} to {conn_cfg.host}:{conn_cfg.port}: {first}{hint}"


def connect(env: Environment, source: str, creds: Credentials | None = None) -> psycopg.Connection:
    conn_cfg = env.postgres_sources[source].connection
    assert conn_cfg is not None
    creds = creds or credentials(env, source)
    tls = _tls_settings(source, conn_cfg)
    try:
        return psycopg.connect(
            host=conn_cfg.host,
            port=conn_cfg.port,
            dbname=conn_cfg.database,
            user=creds.user,
            password=creds.password,
            application_name=application_name(source),
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            **tls,
        )
    except psycopg.Error as exc:
        raise SourceUnavailable(_connect_failure(source, conn_cfg, exc, creds, "")) from None


def adbc_connect(env: Environment, source: str, creds: Credentials) -> Any:
    import adbc_driver_postgresql.dbapi as adbc  # heavy import: only on the bulk path

    conn_cfg = env.postgres_sources[source].connection
    assert conn_cfg is not None
    tls = "".join(f"&{key}={quote(value, safe='/')}" for key, value in _tls_settings(source, conn_cfg).items())
    uri = (
        f"postgresql://{quote(creds.user, safe='')}:{quote(creds.password, safe='')}@{conn_cfg.host}:{conn_cfg.port}/"
        f"{quote(conn_cfg.database, safe='')}?application_name={application_name(source)}"
        f"&connect_timeout={CONNECT_TIMEOUT_SECONDS}{tls}"
    )
    try:
        return adbc.connect(uri, autocommit=True)  # transactions are explicit: BEGIN ... SET TRANSACTION SNAPSHOT
    except Exception as exc:
        raise SourceUnavailable(_connect_failure(source, conn_cfg, exc, creds, " (bulk reader)")) from None
