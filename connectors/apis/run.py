"""Extract one API source: the provider's declarative manifest through airbyte-cdk, landed like a database table.

Per stream: records -> PAN scrub -> typed key columns + `_raw` -> Parquet parts -> manifest -> state (the parts
are connectors.apis.streams; Adyen's CSV reports are read by connectors.apis.adyen.reports instead of the CDK).
The CDK emits a state message each time a slice (date window, partition) is fully read; the state saved after
landing is the last one it emitted, so a stream that fails mid-way lands what it read and the next run resumes
from its last committed window (MERGE keeps re-read rows idempotent). A failed stream does not stop the others.
"""

from __future__ import annotations

import time
from datetime import datetime

from airbyte_cdk.models import (
    AirbyteMessage,
    Type,
)

from connectors.apis.adyen.reports import extract_reports
from connectors.apis.manifest import build_manifest
from connectors.apis.streams import StreamLanding, cdk_config, check_transport, http_numbers, read_messages, utc_now
from connectors.landing.state import load_state
from connectors.landing.writer import BatchResult
from connectors.pan_key import tokenizer_for
from connectors.pci import PanTokenizer
from connectors.run import ExtractionError, SourceRun, check_mode
from finsight.aws import as_source_task
from finsight.config import ApiSource, ApiStream, Environment
from finsight.ops.log_context import bind
from finsight.secrets import read_secret


def _trace_error(message: AirbyteMessage) -> tuple[str | None, str] | None:
    trace = message.trace
    if trace is None or trace.error is None:
        return None
    stream = trace.error.stream_descriptor.name if trace.error.stream_descriptor else None
    return stream, trace.error.internal_message or trace.error.message or "stream failed"


def extract_declarative(
    env: Environment,
    name: str,
    api: ApiSource,
    streams: list[ApiStream],
    mode: str,
    window: tuple[datetime, datetime] | None,
    tokenizer: PanTokenizer,
) -> list[StreamLanding]:
    read_at = utc_now()
    config = cdk_config(env, api, read_secret(env, api.secret), read_at, window)
    manifest = build_manifest(api, [s.name for s in streams], http_numbers(env))
    states = {s.name: load_state(env, s) for s in streams} if mode == "incremental" else {}
    landings = {s.name: StreamLanding(env, s, tokenizer, read_at, mode) for s in streams}
    for stream_name, landing in landings.items():
        landing.initial = states.get(stream_name)
    failure: str | None = None
    try:
        for message in read_messages(manifest, config, list(landings), mode, states):
            if message.type == Type.RECORD and message.record is not None:
                landings[message.record.stream].add(message.record.data)
            elif message.type == Type.STATE and message.state is not None and message.state.stream is not None:
                stream_name = message.state.stream.stream_descriptor.name
                blob = message.state.stream.stream_state
                if stream_name in landings and blob is not None:
                    landings[stream_name].committed = dict(vars(blob))
            elif message.type == Type.TRACE and (err := _trace_error(message)) is not None:
                stream_name, text = err
                if stream_name in landings and landings[stream_name].error is None:
                    landings[stream_name].error = text.splitlines()[0]
    except Exception as exc:  # the CDK raises at the end when any stream failed; anything else fails them all
        failure = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if failure and not any(landing.error for landing in landings.values()):
        for landing in landings.values():
            landing.error = failure
    return list(landings.values())


def extract_api_source(
    env: Environment,
    source: str,
    mode: str = "incremental",
    tables: list[str] | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> SourceRun:
    """Same contract as connectors.run.extract_source, for an `api_sources` entry."""
    check_mode(mode, window)
    with bind(source=source), as_source_task(env, source):  # only what the source's task role grants
        return _extract_api_source(env, source, mode, tables, window)


def _extract_api_source(
    env: Environment,
    source: str,
    mode: str,
    tables: list[str] | None,
    window: tuple[datetime, datetime] | None,
) -> SourceRun:
    started = time.monotonic()
    api = env.api_sources[source]
    check_transport(env, source, api)
    streams = [s for s in api.streams.values() if tables is None or s.name in tables]
    try:
        tokenizer = tokenizer_for(env)
        if api.kind == "adyen":
            landings = extract_reports(env, source, api, streams, mode, window, tokenizer)
        else:
            landings = extract_declarative(env, source, api, streams, mode, window, tokenizer)
    except Exception as exc:  # secrets, KMS, S3 state: nothing landed or moved; one failed source, not a crash
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise ExtractionError(f"source {source!r}: {type(exc).__name__}: {first_line}; watermarks kept") from exc
    results: list[BatchResult] = []
    failures: list[str] = []
    for landing in landings:
        batch_id = landing.writer.batch_id if landing.writer else None
        try:
            with bind(table=landing.stream.qualified, batch_id=batch_id):
                results.append(landing.finish())
        except Exception as exc:  # a landing failure keeps the stream's state where it was
            landing.error = landing.error or f"{type(exc).__name__}: {exc}"
            landing.committed = None
        if landing.error:
            kept = "watermark at its last committed window" if landing.committed else "watermark unchanged"
            failures.append(
                f"{landing.stream.qualified}: {landing.error} (read {landing.read} records before failing; {kept})"
            )
    if failures:
        raise ExtractionError(f"source {source!r}: {len(failures)} stream(s) failed:\n" + "\n".join(failures))
    return SourceRun(source=source, batches=results, seconds=time.monotonic() - started)
