"""The local PostgreSQL serves TLS as RDS does, and the connectors verify it as they verify RDS.

sslmode=verify-full against the CA file the config names (`sslrootcert`, created by `finsight local up`): a
connection with a second, throwaway CA fails the certificate check naming the source and the host; a source user
without TLS is refused by the server itself (pg_hba `hostssl` only); the keys stay private to their owners.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import psycopg
import pytest

from connectors.postgres.connection import SourceUnavailable, adbc_connect, connect, credentials
from finsight.config import Environment, repo_root
from finsight.local.postgres import SUPERUSER
from finsight.local.stack import LocalStack
from finsight.local.tls import ensure_ca, ensure_server_certificate

pytestmark = pytest.mark.stack
SOURCE = "merchants"


def _with_ca(env: Environment, source: str, cafile: Path) -> Environment:
    pg = env.postgres_sources[source]
    assert pg.connection is not None
    conn = pg.connection.model_copy(update={"sslrootcert": str(cafile)})
    return env.model_copy(
        update={"postgres_sources": {**env.postgres_sources, source: pg.model_copy(update={"connection": conn})}}
    )


def test_connectors_use_tls_verified_against_the_configured_ca(local_env: Environment, local_stack: LocalStack) -> None:
    conn_cfg = local_env.postgres_sources[SOURCE].connection
    assert conn_cfg is not None and conn_cfg.sslmode == "verify-full"
    assert conn_cfg.ca_file(repo_root()) == local_stack.postgres.ca_file and local_stack.postgres.ca_file.is_file()
    with connect(local_env, SOURCE) as conn:
        ssl = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert ssl is not None and ssl[0] is True and ssl[1] in ("TLSv1.2", "TLSv1.3")
    bulk = adbc_connect(local_env, SOURCE, credentials(local_env, SOURCE))
    try:
        cur = bulk.cursor()
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchall() == [(True,)]
    finally:
        bulk.close()


def test_a_second_ca_fails_the_certificate_check_naming_source_and_host(
    local_env: Environment, local_stack: LocalStack, tmp_path: Path
) -> None:
    stranger = ensure_ca(tmp_path / "ca.crt", "Some other CA")
    env = _with_ca(local_env, SOURCE, stranger.cert_file)
    conn_cfg = env.postgres_sources[SOURCE].connection
    assert conn_cfg is not None
    creds = credentials(env, SOURCE)
    for attempt in (lambda: connect(env, SOURCE, creds), lambda: adbc_connect(env, SOURCE, creds)):
        with pytest.raises(SourceUnavailable) as err:
            attempt()
        message = str(err.value)
        assert f"source {SOURCE!r}" in message and f"{conn_cfg.host}:{conn_cfg.port}" in message
        assert "certificate verify failed" in message and str(stranger.cert_file) in message
        assert creds.password not in message


def test_a_missing_ca_file_names_the_setting(local_env: Environment, tmp_path: Path) -> None:
    env = _with_ca(local_env, SOURCE, tmp_path / "nowhere.crt")
    with pytest.raises(SourceUnavailable, match=r"CA bundle .*nowhere\.crt \(postgres_sources\.<source>\.connection"):
        connect(env, SOURCE, credentials(env, SOURCE))


def test_a_source_user_without_tls_is_refused_by_the_server(local_env: Environment, local_stack: LocalStack) -> None:
    conn_cfg = local_env.postgres_sources[SOURCE].connection
    assert conn_cfg is not None
    creds = credentials(local_env, SOURCE)
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry .* no encryption"):
        psycopg.connect(
            host=conn_cfg.host,
            port=conn_cfg.port,
            dbname=conn_cfg.database,
            user=creds.user,
            password=creds.password,
            sslmode="disable",
            connect_timeout=10,
        )


def test_keys_are_private_to_their_owners(local_stack: LocalStack) -> None:
    pg = local_stack.postgres
    assert pg.ca_file is not None
    ca_key = pg.ca_file.with_name("ca.key")
    assert stat.S_IMODE(ca_key.stat().st_mode) == 0o600 and ca_key.stat().st_uid == os.geteuid()
    server_key = pg.tls_dir / "server.key"
    assert stat.S_IMODE(server_key.stat().st_mode) == 0o600
    owner = pwd.getpwnam(SUPERUSER).pw_uid if os.geteuid() == 0 else os.geteuid()
    assert server_key.stat().st_uid == owner  # PostgreSQL refuses a key it does not own (or root's, 0640)
    assert pg.serving_tls()


def test_certificates_are_kept_while_valid_and_reissued_for_a_new_ca(tmp_path: Path) -> None:
    ca = ensure_ca(tmp_path / "ca" / "ca.crt")
    again = ensure_ca(tmp_path / "ca" / "ca.crt")
    assert again.certificate() == ca.certificate()  # `local up` twice: same CA, clients keep trusting it
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    assert ensure_server_certificate(ca, cert, key) is True
    assert ensure_server_certificate(ca, cert, key) is False
    other = ensure_ca(tmp_path / "other" / "ca.crt")
    assert ensure_server_certificate(other, cert, key) is True  # no longer chains to the configured CA
