"""API connector tests: a fresh mock payment-API server over real HTTP (its own port and data per test), moto
(S3, KMS, Secrets Manager) and fakesnow from the local stack. Each test starts from empty API watermarks and empty
RAW/CURATED API tables, so no test depends on another's order or on earlier runs."""

from __future__ import annotations

import inspect
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from airbyte_cdk.sources.streams.http import rate_limiting
from werkzeug.serving import make_server

from connectors.apis.run import extract_api_source
from connectors.landing.state import load_state, reset_state
from connectors.run import SourceRun
from finsight import catalog, warehouse
from finsight.aws import client
from finsight.config import Environment
from finsight.local.aws_bootstrap import ensure_secrets
from finsight.local.mock_apis import create_app
from finsight.local.snowpipe import drain
from finsight.local.stack import LocalStack, _mock_credential
from snowpark.merge import merge_table

FAST_HTTP = {
    "api_read_timeout_seconds": 1.0,
    "api_max_retries": 3,
    "api_backoff_factor": 0.05,
    "api_backoff_jitter_seconds": 0.05,
}


@dataclass
class MockApi:
    url: str
    env: Environment  # the local environment, API sources pointed at this server, fast retry policy

    def fault(self, source: str, mode: str, count: int = 1, **extra: Any) -> None:
        body = {"source": source, "mode": mode, "count": count, **extra}
        requests.post(f"{self.url}/_admin/faults", json=body, timeout=5).raise_for_status()

    def pending_faults(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/_admin/faults", timeout=5).json()["faults"]

    def clear_faults(self) -> None:
        requests.delete(f"{self.url}/_admin/faults", timeout=5).raise_for_status()

    def mutate(self, source: str) -> dict[str, Any]:
        resp = requests.post(f"{self.url}/_admin/mutate", json={"source": source}, timeout=5)
        resp.raise_for_status()
        return resp.json()

    def records(self, source: str) -> dict[str, int]:
        return requests.get(f"{self.url}/_admin/records", params={"source": source}, timeout=5).json()

    def with_http(self, **policy: Any) -> Environment:
        return self.env.model_copy(update={"connectors": self.env.connectors.model_copy(update=policy)})

    def with_first_read_days(self, source: str, days: int, **policy: Any) -> Environment:
        """`with_http(**policy)`, the source's first read (no watermark yet) reaching `days` back, not 30."""
        env = self.with_http(**policy)
        api = env.api_sources[source].model_copy(update={"initial_days": days})
        return env.model_copy(update={"api_sources": {**env.api_sources, source: api}})

    def extract(self, source: str, env: Environment | None = None, **kwargs: Any) -> SourceRun:
        return extract_api_source(env or self.env, source, **kwargs)


MOCK_RATE_LIMIT = 500.0  # requests/second of the test's mock: tests that want 429s inject them


def _point_at(env: Environment, url: str) -> Environment:
    """The environment's API sources at the test's mock, paced (connectors/apis/manifest.api_budget) at its rate."""
    apis = {
        name: api.model_copy(update={"base_url": f"{url}/{name}", "rate_limit_per_second": MOCK_RATE_LIMIT})
        for name, api in env.api_sources.items()
    }
    connectors = env.connectors.model_copy(update=FAST_HTTP)
    return env.model_copy(update={"api_sources": apis, "connectors": connectors})


def clean_api_tables(env: Environment) -> None:
    """Empty watermarks, RAW, CURATED and the OPS ledger rows of every API stream."""
    for stream in env.api_tables():
        reset_state(env, stream)
    with warehouse.connect(env, schema=env.snowflake.schemas["raw"]) as conn:
        drain(env, conn.cursor())  # files an earlier run landed but never loaded must not leak into this test
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        for stream in env.api_tables():
            for layer in ("raw", "curated"):
                cur.execute(f"DELETE FROM {env.snowflake.qualified(layer, stream.raw_name)}")
            for ledger in (catalog.MANIFEST_TABLE, catalog.MERGED_TABLE):
                cur.execute(
                    f"DELETE FROM {env.snowflake.qualified('ops', ledger)} WHERE RAW_TABLE = '{stream.raw_name}'"
                )


@pytest.fixture(scope="session")
def api_stack(deployed_stack: LocalStack) -> LocalStack:
    """The stack with the RAW/CURATED tables of the API streams (migrations deployed unless already current)."""
    return deployed_stack


CDK_BACKOFF_PADDING_S = 1  # airbyte_cdk rate_limiting.user_defined_backoff_handler: retry_after + 1


class _UnpaddedSleep:
    """`time` as the CDK's retry handler sees it, without the second it adds to every backoff."""

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(max(0.0, seconds - CDK_BACKOFF_PADDING_S))


@pytest.fixture(autouse=True)
def _cdk_retries_unpadded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CDK sleeps the backoff our manifests declare plus one second before every retry ("extra second to cover
    any fractions of second", airbyte_cdk rate_limiting.user_defined_backoff_handler): ~1 s per retry these tests
    provoke, ~50 s of the suite, asleep. The backoff itself (Retry-After included) is still slept in full."""
    source = inspect.getsource(rate_limiting.user_defined_backoff_handler)
    assert f"sleep_time = retry_after + {CDK_BACKOFF_PADDING_S}" in source, "the CDK's retry padding changed"
    monkeypatch.setattr(rate_limiting, "time", _UnpaddedSleep)


@pytest.fixture
def mock_api(local_env: Environment, api_stack: LocalStack) -> Iterator[MockApi]:
    secrets = ensure_secrets(local_env)
    creds = {name: _mock_credential(secrets[api.secret]) for name, api in local_env.api_sources.items()}
    # generous rate limits: tests that want 429s inject them; scale 0.3 keeps each test to seconds
    limits = dict.fromkeys(local_env.api_sources, MOCK_RATE_LIMIT)
    app = create_app(creds, seed=7, scale=0.3, rate_limits=limits, sources=local_env.api_sources)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    env = _point_at(local_env, url)
    clean_api_tables(env)
    yield MockApi(url, env)
    server.shutdown()
    server.server_close()


def load_and_merge(env: Environment, source: str) -> None:
    """Snowpipe (local player) then the MERGE task of each of the source's streams."""
    with warehouse.connect(env, schema=env.snowflake.schemas["raw"]) as conn:
        run = drain(env, conn.cursor())
        assert not run.errors, run.errors
    session = warehouse.snowpark_session(env)
    try:
        for stream in env.api_sources[source].streams.values():
            merge_table(session, json.dumps(catalog.table_spec(stream)), "test-run")
    finally:
        session.close()


def curated_counts(env: Environment, source: str) -> dict[str, tuple[int, int]]:
    """stream -> (rows, distinct primary keys) in CURATED."""
    out = {}
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        for name, stream in env.api_sources[source].streams.items():
            keys = ", ".join(stream.primary_key)
            cur.execute(f"SELECT COUNT(*), COUNT(DISTINCT ({keys})) FROM CURATED.{stream.curated_name}")
            out[name] = tuple(cur.fetchone())
    return out


def landed_tables(env: Environment, run: SourceRun) -> dict[str, Any]:
    """table -> the Arrow table of everything the run landed for it (read back from S3)."""
    s3 = client(env, "s3")
    out: dict[str, Any] = {}
    for batch in run.batches:
        for key in batch.files:
            body = s3.get_object(Bucket=env.aws.s3.bucket, Key=key)["Body"].read()
            part = pq.read_table(io.BytesIO(body))
            part = part.rename_columns([c.lower() for c in part.column_names])
            out[batch.table] = pa.concat_tables([out[batch.table], part]) if batch.table in out else part
    return out


def state_of(env: Environment, qualified: str) -> dict[str, Any]:
    return load_state(env, env.table(qualified))
