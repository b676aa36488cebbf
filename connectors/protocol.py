"""`python -m connectors <verb>`: the Airbyte protocol (spec, check, discover, read) for any source.

The verb runs through airbyte-cdk's own AirbyteEntrypoint, so the messages on stdout are the CDK's: SPEC,
CONNECTION_STATUS, CATALOG, RECORD, STATE, TRACE, LOG. The source is FINSIGHT_SOURCE (or the config's `source`);
the tables, cursors, keys and PCI columns come from environments/<config env>.yaml, the connection and
credentials from `--config` (written by `finsight connectors config`). The CDK validates the config against the
spec before check/discover/read and masks every `airbyte_secret` value in what it prints.

`protocol_source(env, source)` is the one factory: a PostgreSQL source (ProtocolPostgresSource, spec
connectors/specs/postgres.json) or an API source (connectors.apis.protocol.ProtocolApiSource: the provider's
declarative manifest and its `spec:`). Either answers every verb from the config it is handed, so the same
object works with `airbyte_cdk.entrypoint.launch` and with the CDK's standard-test job runner.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from airbyte_cdk.entrypoint import launch
from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteErrorTraceMessage,
    AirbyteMessage,
    AirbyteMessageSerializer,
    AirbyteTraceMessage,
    ConnectorSpecification,
    FailureType,
    Status,
    TraceType,
    Type,
)
from airbyte_cdk.sources import Source
from airbyte_cdk.sources.streams import Stream
from pydantic import ValidationError

from connectors.postgres.connection import Credentials, SourceUnavailable, connect, credentials
from connectors.postgres.source import PostgresSource, TableStream
from finsight.config import ConfigError, Environment, load_environment
from finsight.config.models import Connection as PgConnection

VERBS = ("spec", "check", "discover", "read")
SPECS = Path(__file__).parent / "specs"


def postgres_spec() -> ConnectorSpecification:
    return ConnectorSpecification(**json.loads((SPECS / "postgres.json").read_text()))


def bind_config(env: Environment, source: str, config: Mapping[str, Any]) -> Environment:
    """The environment with this source's connection taken from the protocol config (host, port, db, TLS, secret).

    The config's TLS settings are held to the environment's rules: verify-full with a CA file, and outside local
    nothing weaker (a config file must not be a way around environments/<env>.yaml's validation).
    """
    pg = env.postgres_sources[source]
    assert pg.connection is not None
    sslmode = config.get("sslmode", pg.connection.sslmode)
    sslrootcert = config.get("sslrootcert", pg.connection.sslrootcert)
    if not env.is_local and sslmode != "verify-full":
        raise ValueError(f"config sslmode {sslmode!r}: {env.name} requires verify-full")
    if sslmode == "verify-full" and not sslrootcert:
        raise ValueError("config sslrootcert: verify-full needs the CA bundle the server certificate chains to")
    try:
        conn = PgConnection.model_validate(
            pg.connection.model_dump()
            | {
                "host": config["host"],
                "port": int(config["port"]),
                "database": config["database"],
                "sslmode": sslmode,
                "sslrootcert": sslrootcert,
                "secret": config.get("secret", pg.connection.secret),
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"config {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    sources = {**env.postgres_sources, source: pg.model_copy(update={"connection": conn})}
    return env.model_copy(update={"postgres_sources": sources})


class ProtocolPostgresSource(PostgresSource):
    """PostgresSource driven by an Airbyte config instead of the ECS environment variables."""

    @property
    def name(self) -> str:  # the source's own name in the CDK's logs and our messages, as ProtocolApiSource's
        return self.source

    def spec(self, logger: logging.Logger) -> ConnectorSpecification:
        return postgres_spec()

    def _resolve(self, config: Mapping[str, Any]) -> tuple[Environment, Credentials]:
        if config.get("source", self.source) != self.source:
            raise ValueError(f"config is for source {config['source']!r}, this connector runs {self.source!r}")
        env = self.env if config.get("env", self.env.name) == self.env.name else load_environment(config["env"])
        env = bind_config(env, self.source, config)
        if config.get("password"):
            return env, Credentials(config["username"], config["password"])
        return env, credentials(env, self.source)  # a reference: Secrets Manager at run time

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        # the CDK's default wraps the reason in repr(): operators read this message, so keep it plain
        ok, reason = self.check_connection(logger, config)
        return AirbyteConnectionStatus(status=Status.SUCCEEDED if ok else Status.FAILED, message=None if ok else reason)

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> tuple[bool, Any]:
        try:
            env, creds = self._resolve(config)
            with connect(env, self.source, creds) as conn:
                conn.execute("SELECT 1")
        except SourceUnavailable as exc:  # names the source; the driver's text is already redacted
            return False, str(exc)
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return False, f"source {self.source!r}: {first}"
        return True, None

    def streams(self, config: Mapping[str, Any], lower_bound: Any = None) -> list[Stream]:
        env, creds = self._resolve(config)
        tables = env.postgres_sources[self.source].tables.values()
        return [TableStream(env, t, lower_bound, creds=creds) for t in tables]


def protocol_source(env: Environment, source: str) -> Source:
    """The Airbyte source of any source of `env`: PostgreSQL (12) or API (4); KeyError naming the known ones."""
    if source in env.api_sources:
        from connectors.apis.protocol import ProtocolApiSource

        return ProtocolApiSource(env, source)
    if source in env.postgres_sources:
        return ProtocolPostgresSource(env, source)
    known = ", ".join([*env.postgres_sources, *env.api_sources])
    raise KeyError(f"unknown source {source!r} in {env.name}; known: {known}")


def source_for(environ: Mapping[str, str], argv: Sequence[str]) -> Source:
    """FINSIGHT_SOURCE, else the `source` of --config; the catalog from FINSIGHT_ENV, else the config's env."""
    config: dict[str, Any] = {}
    if "--config" in argv and argv.index("--config") + 1 < len(argv):
        path = Path(argv[argv.index("--config") + 1])
        if path.is_file():
            try:
                config = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise UsageError("--config", f"{path} is not JSON: {exc}") from None
    source = environ.get("FINSIGHT_SOURCE") or config.get("source")
    if not source:
        raise UsageError("FINSIGHT_SOURCE", "not set and --config has no `source`")
    env_name = environ.get("FINSIGHT_ENV") or config.get("env") or "local"  # spec needs only the catalog
    try:
        env = load_environment(env_name)
    except ConfigError as exc:
        raise UsageError("FINSIGHT_ENV", f"environments/{env_name}.yaml does not load: {exc}") from None
    try:
        return protocol_source(env, source)
    except KeyError as exc:
        raise UsageError("FINSIGHT_SOURCE", str(exc.args[0])) from None


class UsageError(ValueError):
    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")


def config_errors(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Each violation of the source's connectionSpecification as `<field>: <what is wrong>` (the CDK's own message
    omits the field's name)."""
    from jsonschema import Draft7Validator

    found = sorted(Draft7Validator(schema).iter_errors(dict(config)), key=lambda e: list(e.path))
    out = []
    for err in found:
        where = ".".join(str(p) for p in err.path) or "config"
        # never echo a value: it may be the password
        what = f"{err.validator} {err.validator_value!r}" if err.path else err.message.split(" is ")[0]
        if err.validator in ("anyOf", "oneOf") and not err.path:  # the message would quote the whole config
            options = [" + ".join(branch.get("required", [])) for branch in err.validator_value]
            what = "needs " + " or ".join(o for o in options if o)
        elif err.validator == "type":
            what = f"must be of type {err.validator_value}"
        out.append(f"{where}: {what}")
    return out


def _emit(message: AirbyteMessage) -> None:
    print(json.dumps(AirbyteMessageSerializer.dump(message)))


def _invalid_config(verb: str, source: str, errors: list[str]) -> int:
    text = f"source {source!r}: invalid config: " + "; ".join(errors)
    if verb == "check":  # the protocol's answer to a bad config is a FAILED status, not a crash
        _emit(
            AirbyteMessage(
                type=Type.CONNECTION_STATUS,
                connectionStatus=AirbyteConnectionStatus(status=Status.FAILED, message=text),
            )
        )
        return 0
    _trace(text)
    return 1


def _trace(text: str) -> None:
    trace = AirbyteTraceMessage(
        type=TraceType.ERROR,
        emitted_at=time.time() * 1000,
        error=AirbyteErrorTraceMessage(message=text, failure_type=FailureType.config_error),
    )
    _emit(AirbyteMessage(type=Type.TRACE, trace=trace))


def main(argv: Sequence[str], environ: MutableMapping[str, str]) -> int:
    try:
        source = source_for(environ, argv)
    except UsageError as exc:
        _trace(str(exc))
        return 2
    if argv[0] != "spec" and "--config" in argv:
        config = json.loads(Path(argv[argv.index("--config") + 1]).read_text())
        schema = source.spec(logging.getLogger("airbyte")).connectionSpecification
        if errors := config_errors(config, schema):
            return _invalid_config(argv[0], source.name, errors)
    try:
        launch(source, list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception:  # the CDK already printed a TRACE error message for it
        return 1
    return 0
