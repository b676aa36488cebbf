"""Adyen-like settlement reports: what the manifest cannot say.

The declarative manifest lists the published reports (auth, retries, Retry-After). Each report newer than the
watermark (its batch number) is downloaded once, checked complete (byte size and row count the list announced),
parsed into typed rows that keep their report name and line number, and landed as its own batch; the watermark
moves to that batch number only after the batch's manifest is in S3. A failing download stops the run there: the
next run resumes with that report, never skips it.
"""

from __future__ import annotations

import csv
import io
import random
import time
from datetime import datetime
from typing import Any

import requests

from connectors.apis.manifest import build_manifest
from connectors.apis.records import to_arrow
from connectors.apis.streams import StreamLanding, cdk_config, http_numbers, land, read_messages, utc_now
from connectors.landing.state import load_state
from connectors.pci import PanTokenizer
from finsight.config import ApiSource, ApiStream, Environment
from finsight.secrets import read_secret

RETRY_STATUSES = {500, 502, 503, 504}


class ReportError(RuntimeError):
    """A report could not be downloaded complete within the retry budget."""


def _wait(env: Environment, attempt: int) -> float:
    c = env.connectors
    return c.api_backoff_factor * 2**attempt + random.uniform(0, 2 * c.api_backoff_jitter_seconds)  # noqa: S311


def download(env: Environment, url: str, api_key: str, report: dict[str, Any]) -> str:
    """The report's CSV text, retried on 429 (Retry-After), 5xx, timeouts and incomplete bodies."""
    c = env.connectors
    last = "no attempt"
    for attempt in range(c.api_max_retries + 1):
        if attempt:
            time.sleep(_wait(env, attempt - 1) if not last.startswith("429") else float(last.split(":")[1]))
        try:
            resp = requests.get(url, headers={"X-API-Key": api_key}, timeout=(10, c.api_read_timeout_seconds))
        except (requests.Timeout, requests.ConnectionError) as exc:
            last = f"{type(exc).__name__}"
            continue
        if resp.status_code == 429:
            last = f"429:{resp.headers.get('Retry-After', '1')}"
            continue
        if resp.status_code in RETRY_STATUSES:
            last = f"HTTP {resp.status_code}"
            continue
        if resp.status_code != 200:
            raise ReportError(f"report {report['name']}: HTTP {resp.status_code} (not retried)")
        body = resp.content
        if len(body) != report["size"]:
            last = f"incomplete body ({len(body)} of {report['size']} bytes)"
            continue
        return body.decode()
    raise ReportError(f"report {report['name']}: gave up after {c.api_max_retries + 1} attempts, last: {last}")


def parse(text: str, report: dict[str, Any]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """CSV rows (header -> text) plus where each came from: report name and line number (header = line 1)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if len(rows) != report["rows"]:
        raise ReportError(f"report {report['name']}: {len(rows)} rows parsed, the list announced {report['rows']}")
    extra = [{"report_name": report["name"], "line_number": i + 2} for i in range(len(rows))]
    return rows, extra


def extract_reports(
    env: Environment,
    name: str,
    api: ApiSource,
    streams: list[ApiStream],
    mode: str,
    window: tuple[datetime, datetime] | None,
    tokenizer: PanTokenizer,
) -> list[StreamLanding]:
    (stream,) = streams  # adyen serves exactly one stream: settlement_details
    secret = read_secret(env, api.secret)
    after = int(load_state(env, stream).get("batch_number", 0)) if mode == "incremental" else 0
    landings: list[StreamLanding] = []
    probe = StreamLanding(env, stream, tokenizer, utc_now(), mode)
    try:
        read_at = utc_now()
        config = cdk_config(env, api, secret, read_at, window) | {"after_batch": after}
        manifest = build_manifest(api, [stream.name], http_numbers(env))
        reports = []
        for message in read_messages(manifest, config, [stream.name], "full", {}):
            if message.record is not None:
                reports.append(message.record.data)
        reports.sort(key=lambda r: r["batchNumber"])
        if window is not None:  # backfill: reports created inside the window
            lo, hi = (w.strftime("%Y-%m-%dT%H:%M:%SZ") for w in window)
            reports = [r for r in reports if lo <= r["createdAt"] < hi]
        for report in reports:
            landing = StreamLanding(env, stream, tokenizer, utc_now(), mode)
            landings.append(landing)
            text = download(env, config["base_url"] + report["downloadPath"], config["api_key"], report)
            rows, extra = parse(text, report)
            landing.read = len(rows)
            land(landing.writer_for_batch(), to_arrow(stream, rows, tokenizer, extra))
            landing.committed = {"batch_number": report["batchNumber"], "report": report["name"]}
            landing.finish()
    except Exception as exc:
        failed = landings[-1] if landings and landings[-1].result is None else probe
        failed.committed = None
        failed.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if failed is probe:
            landings.append(probe)
    return landings
