"""A real PostgreSQL 15 cluster under `.local/postgres`, playing FinSight's 12 operational databases.

PostgreSQL refuses to run as root; when we are root (CI) the cluster belongs to the `postgres` OS user.
Admin work goes over the unix socket (trust, filesystem-protected: no network path for TLS to protect); TCP on
127.0.0.1 needs TLS and a password (pg_hba `hostssl` only), which is exactly how the connectors reach RDS:
verify-full against a CA file, credentials from Secrets Manager.

With a CA (`ca_file`), the server certificate, its key and the pg_hba file live under `<root>/tls` and `<root>`,
owned by the cluster owner, and are passed on the command line at every start: a cluster initialised before TLS
existed picks them up on its next start, and `start` restarts a running server that does not serve TLS yet.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from finsight.config import Environment
from finsight.local.process import ServiceError, port_open, wait_until
from finsight.local.tls import ensure_ca, ensure_server_certificate

PG_BINARIES = ("initdb", "pg_ctl")
SUPERUSER = "postgres"
# TCP only with TLS (any user, including the connectors' source roles); non-TLS TCP matches no line and is refused
HBA_RULES = """\
# written by finsight.local.postgres at every start: edits here are overwritten
# TYPE    DATABASE  USER  ADDRESS        METHOD
local     all       all                  trust
hostssl   all       all   127.0.0.1/32   scram-sha-256
"""


def _as_cluster_owner(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", SUPERUSER, "--", *argv]
    return argv


def _pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if not found:
        raise ServiceError(f"{name} not found: install PostgreSQL 15 server binaries (Debian package 'postgresql')")
    return str(found)


def cluster_root(state_dir: Path) -> Path:
    """`<state_dir>/postgres`, unless (as root) the `postgres` user cannot reach it, e.g. a clone under /root.

    Then the cluster lives in /var/tmp, in a folder named after the state dir so two checkouts never share one.
    """
    wanted = state_dir.resolve() / "postgres"
    if os.geteuid() != 0 or all(os.stat(p).st_mode & 0o001 for p in wanted.parents if p.exists()):
        return wanted
    digest = hashlib.sha256(str(wanted).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"finsight-postgres-{digest}"  # noqa: S108 - fixed, per-checkout name; 0700 dir


@dataclass(frozen=True)
class LocalPostgres:
    root: Path  # .local/postgres
    port: int
    ca_file: Path | None = None  # the local CA (config: sslrootcert); None: no TCP TLS setup (admin-only clusters)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    @property
    def socket_file(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{self.port}"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def hba_file(self) -> Path:
        return self.root / "pg_hba.conf"

    def _chown_to_owner(self, *paths: Path) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SUPERUSER)
            for path in paths:
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def prepare_tls(self) -> bool:
        """CA, server certificate and pg_hba in place; True when anything the server reads changed."""
        assert self.ca_file is not None
        ca = ensure_ca(self.ca_file)
        self.tls_dir.mkdir(exist_ok=True)
        os.chmod(self.tls_dir, 0o700)
        cert, key = self.tls_dir / "server.crt", self.tls_dir / "server.key"
        changed = ensure_server_certificate(ca, cert, key)
        if not self.hba_file.is_file() or self.hba_file.read_text() != HBA_RULES:
            self.hba_file.write_text(HBA_RULES)
            changed = True
        os.chmod(self.hba_file, 0o600)
        # PostgreSQL refuses a key file not owned by itself (or root) or readable by others
        self._chown_to_owner(self.tls_dir, cert, key, self.hba_file)
        return changed

    def _tls_options(self) -> str:
        if self.ca_file is None:
            return ""
        return (
            f" -c ssl=on -c ssl_cert_file={self.tls_dir / 'server.crt'} -c ssl_key_file={self.tls_dir / 'server.key'}"
            f" -c ssl_min_protocol_version=TLSv1.2 -c hba_file={self.hba_file}"
        )

    def serving_tls(self) -> bool:
        """The running server has TLS on and reads our pg_hba (a stack started before TLS has neither)."""
        with self.admin_connect() as conn:
            ssl = conn.execute("SHOW ssl").fetchone()
            hba = conn.execute("SHOW hba_file").fetchone()
        return bool(ssl and ssl[0] == "on" and hba and Path(hba[0]) == self.hba_file)

    def running(self) -> bool:
        # all three: TCP alone can answer while the unix socket (what admin_connect uses) is not there yet
        return (self.data_dir / "postmaster.pid").exists() and self.socket_file.exists() and port_open(self.port)

    def _stopped(self) -> bool:
        # the postmaster removes its pid file last: until then a new start would meet the old server's lock
        return not port_open(self.port) and not (self.data_dir / "postmaster.pid").exists()

    def _prepare_dirs(self) -> None:
        for d in (self.root, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SUPERUSER)
            for d in (self.root, self.socket_dir):
                os.chown(d, owner.pw_uid, owner.pw_gid)
            # the cluster owner must be able to reach its directory through every parent
            for parent in self.root.resolve().parents:
                if not os.stat(parent).st_mode & 0o001:
                    raise ServiceError(f"{parent} is not traversable by the '{SUPERUSER}' user; chmod o+x it")
        os.chmod(self.root, 0o700)

    def init(self) -> bool:
        if (self.data_dir / "PG_VERSION").exists():
            return False
        self._prepare_dirs()
        subprocess.run(
            _as_cluster_owner(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        return True

    def start(self) -> bool:
        self.init()
        tls_changed = self.prepare_tls() if self.ca_file is not None else False
        if self.running():
            if self.ca_file is None or self.serving_tls():
                if tls_changed:  # a reissued certificate or new pg_hba: a reload re-reads both
                    with self.admin_connect() as conn:
                        conn.execute("SELECT pg_reload_conf()")
                return False
            self.stop()  # started before TLS: the TLS settings are command-line options, so restart
        if port_open(self.port):
            raise ServiceError(f"postgres: port {self.port} is taken by another process (not ours)")
        self._prepare_dirs()
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off{self._tls_options()}"
        result = subprocess.run(
            _as_cluster_owner(
                [_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-l", str(self.logfile), "-o", options, "-w", "start"]
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ServiceError(f"postgres did not start: {result.stderr.strip()}; see {self.logfile}")
        wait_until(self.running, 30, "postgres", self.logfile)
        return True

    def stop(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        subprocess.run(
            _as_cluster_owner([_pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            check=False,
        )
        wait_until(self._stopped, 60, "postgres shutdown", self.logfile)
        return True

    def admin_connect(self, database: str = "postgres") -> psycopg.Connection:
        """Superuser over the unix socket: only the local stack's bootstrap and the synthetic sources use this."""
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname=database, autocommit=True
        )

    def ensure_database(self, database: str, reader: str, password: str) -> None:
        """Create the database and a read-only login role for the connector, (re)setting its password."""
        with self.admin_connect() as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (reader,)).fetchone()
            verb = "ALTER" if role else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(reader), sql.Literal(password))
            )
        with self.admin_connect(database) as conn:
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(reader))
            )
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(reader)))
            # the connector must see every open transaction's start (its read horizon): pg_stat_activity in full
            conn.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(reader)))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(reader)))
            conn.execute(
                sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {}").format(
                    sql.Identifier(reader)
                )
            )


def local_ca_file(env: Environment, root: Path) -> Path:
    """The one CA file the local sources' `sslrootcert` names (under `root`, the repository, as the state dir is):
    the stack creates it, the connectors verify with it."""
    files = {src.connection.ca_file(root) for src in env.postgres_sources.values() if src.connection}
    if len(files) != 1 or None in files:
        raise ServiceError(
            f"environments/{env.name}.yaml: postgres_defaults.sslrootcert must name one CA file for every local "
            f"source (the CA `finsight local up` creates), got {sorted(map(str, files))}"
        )
    return Path(str(files.pop()))
