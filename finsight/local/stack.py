"""The embedded local stack: PostgreSQL, moto (AWS), fakesnow (Snowflake) and the mock payment APIs.

Everything binds to 127.0.0.1 on the ports of `environments/local.yaml`; pids and logs live under `.local/`.
`up` and `down` are idempotent.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from finsight import aws
from finsight.config import Environment, repo_root
from finsight.iam_policy import role_arn, snowflake_storage_role_name
from finsight.local import aws_bootstrap
from finsight.local.postgres import LocalPostgres, cluster_root, local_ca_file
from finsight.local.process import BackgroundService
from finsight.private_file import write_private


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    port: int
    running: bool
    pid: int | None


def _mock_credential(secret: dict[str, str]) -> str:
    """The mock servers take one credential string per provider; PayPal's is `client_id:client_secret`."""
    if "client_id" in secret:
        return f"{secret['client_id']}:{secret['client_secret']}"
    return secret["api_key"]


class LocalStack:
    def __init__(self, env: Environment, root: Path | None = None) -> None:
        if env.local is None:
            raise ValueError(f"environment {env.name!r} has no local stack (only `local` does)")
        self.env = env
        self.ports = env.local
        self.state_dir = (root or repo_root()) / env.local.state_dir
        self.postgres = LocalPostgres(
            cluster_root(self.state_dir), self.ports.postgres_port, local_ca_file(env, root or repo_root())
        )
        self.moto = BackgroundService("moto", self.state_dir, self.ports.moto_port)
        self.fakesnow = BackgroundService("fakesnow", self.state_dir, self.ports.fakesnow_port)
        self.mock_apis = BackgroundService("mock-apis", self.state_dir, self.ports.mock_api_port)
        # every statement the local Snowflake received, for `finsight sql check --log`
        self.statement_log = self.state_dir / "logs" / "snowflake-statements.jsonl"

    # -- lifecycle ----------------------------------------------------------------------------
    def up(self, seed_sources: bool = True) -> list[str]:
        """Start whatever is not running, then (re)apply AWS objects, credentials and source data."""
        started: list[str] = []
        py = sys.executable
        # with strict IAM moto checks every call from its first (the bootstrap opens one window for its admin)
        moto_env = {"INITIAL_NO_AUTH_ACTION_COUNT": "0" if self.ports.strict_iam else "inf"}
        # finsight.local.moto_server: moto.server, with SNS actions checked against their topic
        moto = [py, "-m", "finsight.local.moto_server", "-H", "127.0.0.1", "-p", str(self.ports.moto_port)]
        if self.moto.start(moto, env=moto_env):
            started.append("moto")
            aws.forget_sessions()
            self.fakesnow.stop()  # its S3 session belonged to the previous moto
        secrets = aws_bootstrap.bootstrap(self.env)
        s3_credentials = self._snowflake_storage_credentials()
        if self.postgres.start():
            started.append("postgres")
        self._ensure_source_databases(secrets)
        if seed_sources:
            self.seed()
        if self.fakesnow.start(
            [
                py,
                "-m",
                "finsight.local.fakesnow_server",
                "--port",
                str(self.ports.fakesnow_port),
                "--db-dir",
                str(self.state_dir / "fakesnow"),
                "--s3-endpoint",
                f"127.0.0.1:{self.ports.moto_port}",
                "--region",
                self.env.aws.region,
                "--owner-role",
                self.env.snowflake.role,
                "--statement-log",
                str(self.statement_log),
                *([] if self.ports.strict_snowflake else ["--lenient"]),
                *(["--s3-credentials-file", str(s3_credentials)] if s3_credentials else []),
            ]
        ):
            started.append("fakesnow")
        api_keys = {name: _mock_credential(secrets[api.secret]) for name, api in self.env.api_sources.items()}
        if self.mock_apis.start(
            [
                py,
                "-m",
                "finsight.local.mock_apis",
                "--port",
                str(self.ports.mock_api_port),
                "--seed",
                str(self.ports.seed),
                "--scale",
                str(self.ports.scale),
            ],
            env={"FINSIGHT_MOCK_API_CREDENTIALS": json.dumps(api_keys)},
        ):
            started.append("mock-apis")
        return started

    def _snowflake_storage_credentials(self) -> Path | None:
        """A 0600 file with the storage role's session: the local Snowflake reads S3 as Snowflake's role does."""
        if not aws.strict_iam(self.env):
            return None
        creds = aws.role_credentials(self.env, role_arn(self.env, snowflake_storage_role_name(self.env)))
        path = aws.local_aws_dir(self.env) / "snowflake-storage-credentials.json"
        session = {"key_id": creds.access_key_id, "secret": creds.secret_access_key}
        write_private(path, json.dumps(session | {"session_token": creds.session_token}))
        return path

    @contextmanager
    def used(self, seed_sources: bool = True) -> Iterator[LocalStack]:
        """The stack up for the `with` block, stopped after it only when this call started it: a developer's running
        stack is used and left running (the test session, `make bench`)."""
        started = self.up(seed_sources=seed_sources)
        try:
            yield self
        finally:
            if started:
                self.down()

    def down(self) -> list[str]:
        stopped = [s.name for s in (self.mock_apis, self.fakesnow, self.moto) if s.stop()]
        if self.postgres.stop():
            stopped.append("postgres")
        return stopped

    def status(self) -> list[ServiceStatus]:
        rows = [ServiceStatus("postgres", self.postgres.port, self.postgres.running(), None)]
        rows += [
            ServiceStatus(s.name, s.port, s.running(), s.pid()) for s in (self.moto, self.fakesnow, self.mock_apis)
        ]
        return rows

    def running(self) -> bool:
        return all(s.running for s in self.status())

    # -- sources -------------------------------------------------------------------------------
    def _ensure_source_databases(self, secrets: dict[str, dict[str, str]]) -> None:
        for _name, src in self.env.postgres_sources.items():
            assert src.connection is not None
            creds = secrets[src.connection.secret]
            self.postgres.ensure_database(src.connection.database, creds["username"], creds["password"])

    def admin_connect(self, source: str) -> psycopg.Connection:
        src = self.env.postgres_sources[source]
        assert src.connection is not None
        return self.postgres.admin_connect(src.connection.database)

    def seed(self) -> dict[str, int]:
        from finsight.synthetic import create_source_tables, seed_sources

        create_source_tables(self.env, self.admin_connect)
        return seed_sources(self.env, self.admin_connect, scale=self.ports.scale, seed=self.ports.seed)

    def mutate(self, step: int):
        from finsight.synthetic import mutate_sources

        return mutate_sources(self.env, self.admin_connect, step=step, seed=self.ports.seed)
