"""Faults around the connector process and its source: SIGKILL mid-COPY and mid-upload (multipart), PostgreSQL
restarted mid-extract, the source's credentials rotated mid-run.

Timing comes from events, never from sleeps: an admin transaction holds a lock on the table, so the connector's COPY
is provably in flight (waiting on the lock in pg_stat_activity) when the fault strikes; for the upload, the fault
proxy holds UploadPart requests back, so the kill lands between the first part and the completion.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import pytest
from psycopg import sql

from connectors.landing.state import load_state
from connectors.run import ExtractionError, SourceRun, extract_source
from finsight.aws import client
from finsight.config import Environment, Table, repo_root
from finsight.local.cycle import CycleSummary, hourly_cycle
from finsight.local.graph import on_landed
from finsight.local.stack import LocalStack
from tests.chaos.fault_proxy import FaultPlan, S3FaultProxy
from tests.chaos.harness import touch, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.chaos, pytest.mark.timeout(600)]
LEDGER = "ledger.ledger_entries"


def _reader(env: Environment, source: str) -> str:
    secret = env.postgres_sources[source].connection.secret  # type: ignore[union-attr]
    return json.loads(client(env, "secretsmanager").get_secret_value(SecretId=secret)["SecretString"])["username"]


@contextmanager
def _locked(stack: LocalStack, table: Table) -> Iterator[psycopg.Connection]:
    """An admin transaction holding ACCESS EXCLUSIVE on the table: the connector's read waits until it ends."""
    conn = stack.admin_connect(table.source)
    conn.autocommit = False
    try:
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table.name)))
        yield conn
    finally:
        with suppress(psycopg.Error):  # the server may have been restarted under it
            conn.rollback()
            conn.close()


def _copy_waiting(stack: LocalStack, role: str, table: str = "ledger_entries") -> bool:
    """The connector's bulk read of `table` is in flight, held on the lock (ADBC prepares the query, then streams
    it with binary COPY: the kill lands between the start of the read and its end)."""
    with stack.postgres.admin_connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s AND state = 'active' "
            "AND wait_event_type = 'Lock' AND query ILIKE %s",
            (role, f'%FROM "{table}"%'),
        ).fetchone()
    return bool(row and row[0])


def _child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.chaos.extract_child", *args], cwd=repo_root(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()  # SIGKILL: no cleanup, no atexit, as an OOM kill or a lost host
    proc.wait(timeout=30)
    assert proc.returncode == -9


class _Background(threading.Thread):
    """Run a callable on a thread; keep its result or exception."""

    def __init__(self, fn: Any, *args: Any) -> None:
        super().__init__(daemon=True)
        self.fn, self.args, self.result, self.error = fn, args, None, None

    def run(self) -> None:
        try:
            self.result = self.fn(*self.args)
        except Exception as exc:  # the scenario asserts on it
            self.error = exc

    def outcome(self, timeout: float) -> Any:
        self.join(timeout)
        assert not self.is_alive(), f"{self.fn.__name__} still running after {timeout:.0f}s"
        return self.result


def _recover(env: Environment, source: str) -> SourceRun:
    run = extract_source(env, source)
    pipe, dag = on_landed(env)
    assert not pipe.errors and dag is not None and dag.state == "SUCCEEDED", (pipe.errors, dag and dag.state)
    return run


def test_connector_killed_mid_copy(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    s = scenario(
        "connector SIGKILLed mid-COPY",
        "SIGKILL while its bulk read (ADBC binary COPY path) of ledger_entries is in flight",
        "rerun: the watermark had not moved; the batch without a manifest never merges",
    )
    table = local_env.table(LEDGER)
    touch(local_stack, local_env, LEDGER, 200)
    watermark = load_state(local_env, table)
    with _locked(local_stack, table):
        proc = _child("ledger")
        try:
            role = _reader(local_env, "ledger")
            wait_for(lambda: proc.poll() is None and _copy_waiting(local_stack, role), 180, "the connector's COPY")
            s.fault()
            _kill(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert load_state(local_env, table) == watermark
    _recover(local_env, "ledger")
    s.verify(local_env)


def test_connector_killed_mid_multipart_upload(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    s = scenario(
        "connector SIGKILLed mid-upload (multipart)",
        "SIGKILL after the first UploadPart, before completion",
        "the incomplete upload is no object (Snowpipe never sees it); rerun lands the batch",
    )
    touch(local_stack, local_env, "payments.payments", 3000)
    s3, bucket = client(local_env, "s3"), local_env.aws.s3.bucket
    plan = FaultPlan("slow", every=1, delay_s=120, only_multipart_parts=True)  # parts hang: the kill lands mid-upload
    with S3FaultProxy(local_env.local.moto_port, plan) as proxy:  # type: ignore[union-attr]
        proc = _child("payments", "--s3-endpoint", proxy.url, "--part-bytes", str(32 * 1024))
        try:
            wait_for(lambda: plan.part_requests >= 1 or proc.poll() is not None, 180, "the first UploadPart")
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            s.fault()
            _kill(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix="raw/payments/").get("Uploads", [])
    assert uploads, "no multipart upload was in flight when the connector died"
    for upload in uploads:
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=upload["Key"])
    _recover(local_env, "payments")
    for upload in uploads:  # what the bucket's AbortIncompleteMultipartUpload rule does in AWS
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    s.verify(local_env)


def test_postgres_restarted_mid_extract(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    s = scenario(
        "PostgreSQL restarted mid-extract",
        "pg_ctl restart (fast) while the hourly cycle's COPY runs",
        "cycle PARTIAL naming the failed sources; the next cycle catches up",
    )
    table = local_env.table(LEDGER)
    touch(local_stack, local_env, LEDGER, 200)
    with _locked(local_stack, table):
        cycle = _Background(hourly_cycle, local_env)
        cycle.start()
        role = _reader(local_env, "ledger")
        wait_for(lambda: _copy_waiting(local_stack, role), 300, "the cycle's COPY of ledger_entries")
        s.fault()
        local_stack.postgres.stop()
        local_stack.postgres.start()
    summary: CycleSummary = cycle.outcome(400)
    assert cycle.error is None, cycle.error
    assert any("'ledger'" in e for e in summary.extract_errors), summary.extract_errors
    assert summary.dag is not None and summary.dag.state == "PARTIAL"  # what landed merged; the run says so
    assert not summary.ok
    again = hourly_cycle(local_env)
    assert again.ok and again.dag is not None and again.dag.state == "SUCCEEDED", again.extract_errors
    s.verify(local_env)


def test_credentials_rotated_mid_run(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    s = scenario(
        "source credentials rotated mid-run",
        "reader password changed in PostgreSQL and Secrets Manager while the connector reads",
        "the open session finishes; the next run reads the new secret",
    )
    table = local_env.table(LEDGER)
    secret_id = local_env.postgres_sources["ledger"].connection.secret  # type: ignore[union-attr]
    sm = client(local_env, "secretsmanager")
    original = sm.get_secret_value(SecretId=secret_id)["SecretString"]
    creds = json.loads(original)
    role = creds["username"]

    def set_password(secret: str, password: str) -> None:
        with local_stack.postgres.admin_connect() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        sm.put_secret_value(SecretId=secret_id, SecretString=secret)

    touch(local_stack, local_env, LEDGER, 200)
    rotated = secrets.token_urlsafe(24)
    try:
        with _locked(local_stack, table):
            run = _Background(extract_source, local_env, "ledger")
            run.start()
            wait_for(lambda: _copy_waiting(local_stack, role), 180, "the connector's COPY")
            s.fault()
            set_password(json.dumps({**creds, "password": rotated}), rotated)
        run.outcome(300)
        if run.error is not None:  # a connection opened after the rotation with the old secret: fails, named
            assert isinstance(run.error, ExtractionError) and "'ledger'" in str(run.error)
            assert rotated not in str(run.error) and creds["password"] not in str(run.error)
        _recover(local_env, "ledger")  # reads the rotated secret
        s.verify(local_env)
    finally:
        set_password(original, creds["password"])
