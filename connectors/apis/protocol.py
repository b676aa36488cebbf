"""The Airbyte protocol (spec, check, discover, read) for an API source: its declarative manifest, run by the CDK.

`ProtocolApiSource` answers each verb from the config it is handed (not one fixed at construction), so one object
serves `airbyte_cdk.entrypoint.launch` and the CDK's test job runner alike. Per call it completes the protocol
config into the CDK config of connectors.apis.streams.cdk_config (credentials from Secrets Manager when the config only
names `secret_name`, date range, lookback, HTTP policy from environments/<env>.yaml) and builds a fresh
ConcurrentDeclarativeSource from the manifest (connectors/apis/<kind>/manifest.yaml, with its `spec:`).

What the manifest alone does not say is added here, as the ECS path does it:
  - every RECORD is PAN-scrubbed exactly like the landed `_raw` (connectors.apis.pans.scrub_json: a Luhn-valid
    13-19 digit run becomes its token), and LOG/TRACE texts are scrubbed too;
  - the catalog declares each stream's primary key and cursor (from the config) with a schema that has them;
  - adyen's rows are CSV report lines (connectors/apis/adyen/reports.py): the manifest lists the reports newer
    than the state's batch number, each is downloaded, checked complete and emitted, then a STATE.
"""

from __future__ import annotations

import copy
import logging
import socket
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from airbyte_cdk.models import (
    AirbyteCatalog,
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteRecordMessage,
    AirbyteStateBlob,
    AirbyteStateMessage,
    AirbyteStateType,
    AirbyteStream,
    AirbyteStreamState,
    ConfiguredAirbyteCatalog,
    ConnectorSpecification,
    FailureType,
    Status,
    StreamDescriptor,
    SyncMode,
    Type,
)
from airbyte_cdk.sources import Source
from airbyte_cdk.sources.declarative.checks.check_stream import CheckStream
from airbyte_cdk.sources.declarative.concurrent_declarative_source import ConcurrentDeclarativeSource
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets, filter_secrets, get_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from pydantic import SecretStr

from connectors.apis.manifest import build_manifest
from connectors.apis.pans import scrub_json, scrub_text
from connectors.apis.streams import CDK_TIME, cdk_config, check_transport, http_numbers, utc_now
from connectors.pan_key import tokenizer_for
from connectors.pci import PanTokenizer
from finsight.config import ApiSource, ApiStream, Environment, load_environment
from finsight.secrets import read_secret

PASSED_THROUGH = ("lookback", "max_retries", "backoff_factor", "bases", "rate_dates_from", "rate_dates_to")
CHECK_MAX_RETRIES = 1
CHECK_CONNECT_SECONDS = 5.0  # the reachability probe: an OAuth token refresh alone retries for up to 300 s
ANY_SCALAR = {"type": ["null", "string", "number", "integer", "boolean"]}


def field_path(stream: ApiStream, column: str) -> list[str]:
    """A column's path in the provider's record (adyen's are CSV headers, taken whole)."""
    path = stream.path_of(column)
    return [path] if stream.path.startswith("/reports") else path.split(".")


def record_key(stream: ApiStream, column: str) -> list[str]:
    """The path of a key or cursor column in the emitted record: the CDK takes only top-level keys and cursors, so
    a nested one is copied up under the column's name (protocol_manifest), as paypal's manifest does its cursor."""
    path = field_path(stream, column)
    return [column] if len(path) > 1 else path


def stream_schema(stream: ApiStream) -> dict[str, Any]:
    """The record is the provider's JSON (open schema); the configured columns, keys and cursor are declared in it."""
    root: dict[str, Any] = {"type": "object", "additionalProperties": True, "properties": {}}
    keys = [*stream.primary_key, stream.cursor]
    for path in [field_path(stream, c) for c in stream.columns] + [record_key(stream, c) for c in keys]:
        node = root
        for part in path[:-1]:
            node = node["properties"].setdefault(
                part, {"type": ["null", "object"], "additionalProperties": True, "properties": {}}
            )
        node["properties"].setdefault(path[-1], dict(ANY_SCALAR))
    return {"$schema": "http://json-schema.org/draft-07/schema#", **root}


def protocol_manifest(api: ApiSource, env: Environment) -> dict[str, Any]:
    """build_manifest's manifest (what the ECS path runs) with each stream's primary key and schema declared."""
    manifest = build_manifest(api, None, http_numbers(env))
    for built in manifest["streams"]:
        stream = api.streams[built["name"]]
        built["primary_key"] = [record_key(stream, k) for k in stream.primary_key]
        built["schema_loader"] = {"type": "InlineSchemaLoader", "schema": stream_schema(stream)}
        transformations = built.setdefault("transformations", [])
        copied = {tuple(f["path"]) for t in transformations for f in t.get("fields", [])}
        nested = [c for c in dict.fromkeys([*stream.primary_key, stream.cursor]) if len(field_path(stream, c)) > 1]
        fields = [
            {"path": [c], "value": "{{ record" + "".join(f"[{p!r}]" for p in field_path(stream, c)) + " }}"}
            for c in nested
            if (c,) not in copied
        ]
        if fields:
            transformations.append({"type": "AddFields", "fields": fields})
    return manifest


def reach(base_url: str) -> None:
    """One TCP connect to the API's host, before any request: an unreachable host fails `check` in seconds. The
    CDK's OAuth refresh (PayPal) retries a refused connection with backoff for up to 300 s, whatever max_retries."""
    url = urlsplit(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=CHECK_CONNECT_SECONDS).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach {url.hostname}:{port}: {exc.strerror or exc}") from None


def _first_line(text: str) -> str:
    lines = [line for line in str(text).splitlines() if line.strip()]
    return lines[0].strip() if lines else ""


class ProtocolApiSource(Source):
    """One API source of an environment, spoken through the Airbyte protocol (see the module docstring)."""

    def __init__(self, env: Environment, source: str) -> None:
        if source not in env.api_sources:
            raise KeyError(f"{source!r} is not an API source of {env.name}; known: {', '.join(env.api_sources)}")
        self.env = env
        self.source = source
        self._tokenizer: PanTokenizer | None = None

    @property
    def name(self) -> str:
        return self.source

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return protocol_manifest(self.env.api_sources[self.source], self.env)

    def spec(self, logger: logging.Logger) -> ConnectorSpecification:
        return ConcurrentDeclarativeSource(source_config=copy.deepcopy(self.manifest)).spec(logger)

    # -- config ---------------------------------------------------------------------------------------------------
    def _resolve(self, config: Mapping[str, Any]) -> tuple[Environment, ApiSource]:
        if config.get("source", self.source) != self.source:
            raise ValueError(f"config is for source {config['source']!r}, this connector runs {self.source!r}")
        env = self.env if config.get("env", self.env.name) == self.env.name else load_environment(config["env"])
        api = env.api_sources[self.source]
        if config.get("base_url"):
            api = api.model_copy(update={"base_url": config["base_url"]})
        check_transport(env, self.source, api)
        return env, api

    def cdk_config(self, config: Mapping[str, Any]) -> tuple[Environment, ApiSource, dict[str, Any]]:
        """The protocol config completed into the CDK config (connectors.apis.streams.cdk_config, as the ECS path)."""
        env, api = self._resolve(config)
        fields = api.credential_fields
        if all(config.get(f) for f in fields):
            secret = {f: SecretStr(str(config[f])) for f in fields}
        else:
            secret = read_secret(env, config.get("secret_name") or api.secret)
        read_at = utc_now()
        window = None
        if config.get("start_date") or config.get("end_date"):
            end = _parse(config["end_date"]) if config.get("end_date") else read_at
            start = _parse(config["start_date"]) if config.get("start_date") else end - timedelta(days=api.initial_days)
            window = (start, end)
        built = cdk_config(env, api, secret, read_at, window)
        for value in get_secrets(self.spec(logging.getLogger("airbyte")).connectionSpecification, config):
            add_to_secrets(str(value))  # cdk_config replaced the entrypoint's list: the config's own stay masked
        built |= {k: config[k] for k in PASSED_THROUGH if k in config}
        if api.kind == "adyen":
            built["after_batch"] = int(config.get("after_batch", 0))
        return env, api, built

    def _declarative(
        self,
        config: dict[str, Any],
        catalog: ConfiguredAirbyteCatalog | None = None,
        state: list[AirbyteStateMessage] | None = None,
    ) -> ConcurrentDeclarativeSource:
        return ConcurrentDeclarativeSource(
            config=config, source_config=copy.deepcopy(self.manifest), catalog=catalog, state=state
        )

    # -- check ----------------------------------------------------------------------------------------------------
    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        """Reads the first page of the first stream; a failure is one plain line naming the source, never a secret
        or a stack trace (the CDK's own message is repr() of its exception text)."""
        try:
            _, api, built = self.cdk_config(config)
            reach(built["base_url"])
            if "max_retries" not in config:  # a probe answers in seconds (an unreachable host: not minutes of backoff)
                built["max_retries"] = min(built["max_retries"], CHECK_MAX_RETRIES)
            inner = self._declarative(built)
            checker = CheckStream(stream_names=[next(iter(api.streams))], parameters={})
            ok, reason = checker.check_connection(inner, _QuietLogger(logger), built)
        except Exception as exc:
            ok, reason = False, f"{type(exc).__name__}: {_first_line(str(exc))}"
        if ok:
            return AirbyteConnectionStatus(status=Status.SUCCEEDED)
        text = filter_secrets(_first_line(str(reason)) or "unavailable")
        return AirbyteConnectionStatus(status=Status.FAILED, message=f"source {self.source!r}: {text}")

    # -- discover -------------------------------------------------------------------------------------------------
    def discover(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteCatalog:
        _, api, built = self.cdk_config(config)
        if api.kind == "adyen":  # the manifest's stream lists reports; the protocol's stream is their rows
            streams = [self._adyen_stream(api, s) for s in api.streams.values()]
        else:
            streams = self._declarative(built).discover(logger, built).streams
        for stream in streams:
            spec = api.streams[stream.name]
            stream.source_defined_cursor = True
            stream.default_cursor_field = record_key(spec, spec.cursor)
            stream.source_defined_primary_key = [record_key(spec, k) for k in spec.primary_key]
        return AirbyteCatalog(streams=streams)

    @staticmethod
    def _adyen_stream(api: ApiSource, stream: ApiStream) -> AirbyteStream:
        return AirbyteStream(
            name=stream.name,
            json_schema=stream_schema(stream),
            supported_sync_modes=[SyncMode.full_refresh, SyncMode.incremental],
            is_resumable=True,
        )

    # -- read -----------------------------------------------------------------------------------------------------
    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: list[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        env, api, built = self.cdk_config(config)
        tokenizer = tokenizer_for(env)
        if api.kind == "adyen":
            windowed = bool(config.get("start_date") or config.get("end_date"))
            messages = self._read_reports(env, built, catalog, state or [], windowed)
        else:
            messages = self._declarative(built, catalog, state).read(logger, built, catalog, state)
        for message in messages:
            yield scrub_message(message, tokenizer)

    def _read_reports(
        self,
        env: Environment,
        built: dict[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: list[AirbyteStateMessage],
        windowed: bool,
    ) -> Iterator[AirbyteMessage]:
        """extract_reports' order: list the reports above the state's batch, then per report its rows and a STATE."""
        from connectors.apis.adyen.reports import download, parse

        for configured in catalog.streams:
            name = configured.stream.name
            after = int(built.get("after_batch", 0))
            if configured.sync_mode == SyncMode.incremental:
                for msg in state:
                    if msg.stream is not None and msg.stream.stream_descriptor.name == name and msg.stream.stream_state:
                        after = max(after, int(vars(msg.stream.stream_state).get("batch_number", 0)))
            listing = self._declarative(built | {"after_batch": after})
            reports = [
                m.record.data
                for m in listing.read(logging.getLogger("airbyte"), built, _full_catalog(listing, built, name), [])
                if m.type == Type.RECORD and m.record is not None
            ]
            reports.sort(key=lambda r: r["batchNumber"])
            if windowed:  # a backfill window: reports created inside it
                lo, hi = built["start_date"], built["end_date"]
                reports = [r for r in reports if lo <= r["createdAt"] < hi]
            for report in reports:
                try:
                    text = download(env, built["base_url"] + report["downloadPath"], built["api_key"], report)
                    rows, extra = parse(text, report)
                except Exception as exc:
                    message = f"source {self.source!r}: {name}: {_first_line(str(exc))}"
                    raise AirbyteTracedException(
                        message=message, internal_message=message, failure_type=FailureType.system_error
                    ) from None
                now = int(time.time() * 1000)
                for row, where in zip(rows, extra, strict=True):
                    record = AirbyteRecordMessage(stream=name, data={**row, **where}, emitted_at=now)
                    yield AirbyteMessage(type=Type.RECORD, record=record)
                blob = AirbyteStateBlob(batch_number=report["batchNumber"], report=report["name"])
                stream_state = AirbyteStreamState(stream_descriptor=StreamDescriptor(name=name), stream_state=blob)
                state_message = AirbyteStateMessage(type=AirbyteStateType.STREAM, stream=stream_state)
                yield AirbyteMessage(type=Type.STATE, state=state_message)


def _full_catalog(source: ConcurrentDeclarativeSource, config: dict[str, Any], name: str) -> ConfiguredAirbyteCatalog:
    from airbyte_cdk.models import ConfiguredAirbyteStream, DestinationSyncMode

    (stream,) = [s for s in source.discover(logging.getLogger("airbyte"), config).streams if s.name == name]
    configured = ConfiguredAirbyteStream(
        stream=stream, sync_mode=SyncMode.full_refresh, destination_sync_mode=DestinationSyncMode.append
    )
    return ConfiguredAirbyteCatalog(streams=[configured])


def scrub_message(message: AirbyteMessage, tokenizer: PanTokenizer) -> AirbyteMessage:
    """A RECORD's data scrubbed like the landed `_raw`; LOG and TRACE texts scrubbed too (nothing clear on stdout)."""
    if message.type == Type.RECORD and message.record is not None:
        message.record.data = scrub_json(message.record.data, tokenizer)
    elif message.type == Type.LOG and message.log is not None:
        message.log.message = scrub_text(message.log.message, tokenizer)
    elif message.type == Type.TRACE and message.trace is not None and message.trace.error is not None:
        error = message.trace.error
        for attr in ("message", "internal_message", "stack_trace"):
            if getattr(error, attr):
                setattr(error, attr, scrub_text(getattr(error, attr), tokenizer))
    return message


class _QuietLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """CheckStream logs a failed check with its traceback: keep the one line, drop the traceback."""

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("exc_info", None)
        self.logger.error(_first_line(str(msg).split("Error traceback:")[0]), *args, **kwargs)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return msg, kwargs


def _parse(text: str) -> datetime:
    return datetime.strptime(text, CDK_TIME)  # naive UTC, like cdk_config's read_at (the spec pins the Z)
