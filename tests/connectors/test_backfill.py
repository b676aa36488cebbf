"""`finsight backfill`: chunk planning (pure, property-tested), parameter errors, and real backfills on the local stack
(PostgreSQL -> moto S3 -> fakesnow RAW -> CURATED): exact window, reruns, SIGKILL + resume, failures, watermark.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from finsight_infra.naming import Names
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from psycopg import sql
from typer.testing import CliRunner

import connectors.__main__ as entry
from connectors.backfill import (
    CONNECTOR_CONTAINER,
    MAX_WINDOW,
    BackfillError,
    BackfillPlan,
    CheckpointStore,
    Chunk,
    ecs_overrides,
    format_duration,
    make_plan,
    parse_duration,
    plan_windows,
)
from connectors.landing.state import load_state
from finsight import marts, migrate, warehouse
from finsight.aws import client
from finsight.cli.main import app
from finsight.config import Environment, Table, load_environment, repo_root
from finsight.local.backfill import load_and_merge
from finsight.local.stack import LocalStack

FINSIGHT = Path(sys.executable).with_name("finsight")
TABLE = "payments.payments"


@pytest.fixture(scope="module")
def env() -> Environment:
    return load_environment("local")


# -- durations and windows (pure) ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "span"),
    [("30m", timedelta(minutes=30)), ("6h", timedelta(hours=6)), ("1d", timedelta(days=1)),
     ("7d", timedelta(days=7)), ("2w", timedelta(days=14)), (" 1D ", timedelta(days=1))],
)  # fmt: skip
def test_chunk_durations(text: str, span: timedelta) -> None:
    assert parse_duration(text) == span


@pytest.mark.parametrize("text", ["0d", "1x", "day", "-1d", "", "1.5d", "d"])
def test_bad_chunk_duration_names_the_option(text: str) -> None:
    with pytest.raises(BackfillError, match=r"^--chunk: ") as err:
        parse_duration(text)
    assert err.value.option == "--chunk"


def test_same_duration_same_backfill_id() -> None:
    plan = BackfillPlan("payments", ("payments",), datetime(2024, 1, 1), datetime(2024, 2, 1), timedelta(hours=24))
    assert format_duration(timedelta(hours=24)) == "1d" and format_duration(timedelta(minutes=90)) == "90m"
    assert plan.backfill_id == "all_20240101T000000_20240201T000000_1d"


def test_backfill_id_differs_for_every_parameter() -> None:
    base = dict(source="payments", tables=("payments",), start=datetime(2024, 1, 1), end=datetime(2024, 2, 1),
                chunk=timedelta(days=1))  # fmt: skip
    variants = [
        base,
        {**base, "start": datetime(2024, 1, 2)},
        {**base, "end": datetime(2024, 2, 2)},
        {**base, "chunk": timedelta(hours=6)},
        {**base, "table": "payments"},
        {**base, "start": datetime(2024, 1, 1, 0, 0, 0, 500_000)},
    ]
    ids = {BackfillPlan(**v).backfill_id for v in variants}  # type: ignore[arg-type]
    assert len(ids) == len(variants)


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)),
    span_minutes=st.integers(min_value=1, max_value=MAX_WINDOW // timedelta(minutes=1)),
    chunk_minutes=st.integers(min_value=1, max_value=60 * 24 * 60),
)
def test_windows_cover_the_range_without_gap_or_overlap(start: datetime, span_minutes: int, chunk_minutes: int) -> None:
    span, chunk = timedelta(minutes=span_minutes), timedelta(minutes=chunk_minutes)
    assume(span / chunk <= 5000)
    end = start + span
    windows = plan_windows(start, end, chunk)
    assert len(windows) == math.ceil(span / chunk)
    assert windows[0][0] == start and windows[-1][1] == end
    for (_, upper), (lower, _) in itertools.pairwise(windows):
        assert upper == lower  # contiguous: no gap, no overlap
    assert all(hi - lo == chunk for lo, hi in windows[:-1])
    assert timedelta(0) < windows[-1][1] - windows[-1][0] <= chunk
    # every table gets every window, and chunk keys are unique (checkpoints cannot collide)
    plan = BackfillPlan("ledger", ("accounts", "ledger_entries"), start, end, chunk)
    chunks = plan.chunks()
    assert len(chunks) == 2 * len(windows) == len({c.key for c in chunks})


def test_chunk_state_from_its_records() -> None:
    from connectors.backfill import _state

    t0, t1 = datetime(2026, 1, 1, 0, 0, 0), datetime(2026, 1, 1, 0, 0, 5)
    assert _state({"started": t0}) == "started"  # running, or killed before it finished
    assert _state({"started": t0, "failed": t0}) == "failed"  # failed within the second it started
    assert _state({"failed": t0, "started": t1}) == "started"  # retried after a failure
    assert _state({"started": t1, "failed": t0, "done": t0}) == "done"  # done is final


# -- parameters: clear errors naming the option --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "option", "words"),
    [
        (("payments", None, "2024-01-01", "2026-01-03"), "--start", "at most 2 years"),
        (("payments", None, "2022-06-01", "2026-01-01"), "--start", "at most 2 years"),
        (("payments", None, "2024-01-02", "2024-01-01"), "--end", "must be after --start"),
        (("payments", None, "2024-01-01", "2024-01-01"), "--end", "must be after --start"),
        (("payments", None, "2024-13-01", "2024-01-02"), "--start", "not an ISO date"),
        (("payments", None, "2024-01-01", "yesterday"), "--end", "not an ISO date"),
        (("payments", "refunds", "2024-01-01", "2024-01-02"), "--table", "not a table of payments"),
        (("nosuch", None, "2024-01-01", "2024-01-02"), "--source", "unknown PostgreSQL source"),
    ],
)
def test_bad_parameters(env: Environment, args: tuple[Any, ...], option: str, words: str) -> None:
    with pytest.raises(BackfillError, match=f"^{option}: .*{words}"):
        make_plan(env, *args)


def test_a_window_ending_in_the_future_is_refused(env: Environment) -> None:
    now = datetime(2026, 11, 27, 11, 30)
    assert make_plan(env, "payments", None, "2026-11-20", "2026-11-27T11:00", "1d", now=now).end < now
    with pytest.raises(BackfillError, match=r"^--end: 2026-11-28T00:00:00 is in the future"):
        make_plan(env, "payments", None, "2026-11-20", "2026-11-28", "1d", now=now)


def test_two_years_is_the_limit(env: Environment) -> None:
    plan = make_plan(env, "payments", "payments.payments", "2024-01-01", "2026-01-01", "7d")
    assert plan.end - plan.start == MAX_WINDOW  # 2024 is a leap year: 731 days is allowed
    with pytest.raises(BackfillError, match="at most 2 years"):
        make_plan(env, "payments", None, "2024-01-01", "2026-01-01T00:01", "7d")


def test_cli_usage_errors_exit_2_before_touching_anything() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["backfill", "--env", "local", "--source", "payments", "--start", "2022-01-01",
                                 "--end", "2026-01-01"])  # fmt: skip
    assert result.exit_code == 2
    assert "--start" in result.stderr and "at most 2 years" in result.stderr
    result = runner.invoke(app, ["backfill", "--source", "payments", "--start", "2024-01-01", "--end", "2024-02-30"])
    assert result.exit_code == 2 and "--end" in result.stderr
    result = runner.invoke(app, ["backfill", "--source", "payments", "--end", "2024-02-01"])
    assert result.exit_code == 2 and "--start is required" in result.stderr


# -- ECS: the same variables as the CLI, read back by the entrypoint -----------------------------------------------
def test_ecs_overrides_round_trip_through_the_entrypoint(env: Environment) -> None:
    dev = load_environment("dev")
    plan = make_plan(dev, "payments", "payments", "2024-01-01", "2024-01-03T12:00", "1d")
    overrides = ecs_overrides(dev, plan)
    assert len(overrides) == 3
    assert Names(dev).container_name == CONNECTOR_CONTAINER  # the container the task definition runs
    for override, (lower, upper) in zip(overrides, plan.windows(), strict=True):
        (container,) = override["containerOverrides"]
        assert container["name"] == CONNECTOR_CONTAINER
        variables = {v["name"]: v["value"] for v in container["environment"]}
        inv = entry.read_invocation(variables)
        assert (inv.env, inv.source, inv.mode) == ("dev", "payments", "backfill")
        assert entry.resolve_window(inv, 7, datetime(2024, 3, 1)) == (lower, upper)
        assert inv.backfill_id == plan.backfill_id and inv.tables == ("payments",)
    every_table = make_plan(dev, "ledger", None, "2024-01-01", "2024-01-02", "1d")
    (container,) = ecs_overrides(dev, every_table)[0]["containerOverrides"]
    assert "FINSIGHT_TABLES" not in {v["name"] for v in container["environment"]}


BACKFILL = {"FINSIGHT_ENV": "dev", "FINSIGHT_SOURCE": "payments", "FINSIGHT_MODE": "backfill"}
WINDOW = {"FINSIGHT_BACKFILL_START": "2024-01-01", "FINSIGHT_BACKFILL_END": "2024-01-02"}


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({**BACKFILL, "FINSIGHT_MODE": "incremental", "FINSIGHT_BACKFILL_ID": "x"}, "FINSIGHT_BACKFILL_ID"),
        ({**BACKFILL, "FINSIGHT_BACKFILL_ID": "x"}, "FINSIGHT_BACKFILL_ID"),  # no explicit window
        ({**BACKFILL, **WINDOW, "FINSIGHT_BACKFILL_ID": "../other"}, "FINSIGHT_BACKFILL_ID"),
        ({**BACKFILL, "FINSIGHT_TABLES": "payments;refunds"}, "FINSIGHT_TABLES"),
        ({**BACKFILL, "FINSIGHT_TABLES": " , "}, "FINSIGHT_TABLES"),
        ({**BACKFILL, "FINSIGHT_TABLES": "payments,refunds"}, "FINSIGHT_TABLES"),  # refunds: another source
    ],
)
def test_entrypoint_backfill_variables(environ: dict[str, str], variable: str, capsys: pytest.CaptureFixture) -> None:
    assert entry.main([], dict(environ)) == entry.EXIT_USAGE
    errors = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"usage_error"' in line]
    assert errors and errors[0]["variable"] == variable


# -- on the real stack ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(local_stack: LocalStack, env: Environment) -> LocalStack:
    migrate.deploy(env)  # RAW and CURATED tables exist
    return local_stack


def _window(stack: LocalStack, table: Table, days: int) -> tuple[datetime, datetime]:
    """`days` whole days ending at the last full hour of the source's data, bounds at half a second: seeded cursors
    are whole seconds, so no row sits on a bound, whichever side of a bound an extractor includes."""
    with stack.admin_connect(table.source) as conn:
        latest = conn.execute(
            sql.SQL("SELECT max({}) AT TIME ZONE 'UTC' FROM {}").format(
                sql.Identifier(table.cursor), sql.Identifier(table.name)
            )
        ).fetchone()[0]
    end = latest.replace(minute=0, second=0, microsecond=500_000) - timedelta(hours=1)
    return end - timedelta(days=days), end


def _source_rows(stack: LocalStack, table: Table, window: tuple[datetime, datetime]) -> list[tuple[Any, ...]]:
    cursor = sql.Identifier(table.cursor)
    query = sql.SQL(
        "SELECT {pk}, {cur} AT TIME ZONE 'UTC' FROM {tbl} "
        "WHERE {cur} >= (%(lo)s::timestamp AT TIME ZONE 'UTC') AND {cur} < (%(hi)s::timestamp AT TIME ZONE 'UTC')"
    ).format(pk=sql.SQL(", ").join(map(sql.Identifier, table.primary_key)), cur=cursor, tbl=sql.Identifier(table.name))
    with stack.admin_connect(table.source) as conn:
        return [tuple(r) for r in conn.execute(query, {"lo": window[0], "hi": window[1]}).fetchall()]


def _warehouse_rows(env: Environment, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(query, params)
        return [tuple(r) for r in cur.fetchall()]


def _curated_rows(env: Environment, table: Table, window: tuple[datetime, datetime]) -> list[tuple[Any, ...]]:
    cols = ", ".join(c.upper() for c in [*table.primary_key, table.cursor])
    cur = table.cursor.upper()
    return _warehouse_rows(
        env, f"SELECT {cols} FROM CURATED.{table.curated_name} WHERE {cur} >= %s AND {cur} < %s", window
    )


def _fresh_window(env: Environment, table: Table, window: tuple[datetime, datetime], chunk: str) -> BackfillPlan:
    """Merge whatever is pending, then remove the window from CURATED and forget any earlier checkpoints of this
    backfill: what CURATED holds for the window afterwards can only come from the backfill under test."""
    load_and_merge(env, [table], window, run_id="test-backfill-setup")
    _warehouse_rows(
        env,
        f"DELETE FROM CURATED.{table.curated_name} WHERE {table.cursor.upper()} >= %s AND {table.cursor.upper()} < %s",
        window,
    )
    assert _curated_rows(env, table, window) == []
    plan = make_plan(env, table.source, table.name, window[0].isoformat(), window[1].isoformat(), chunk)
    store = CheckpointStore(env, plan.source, plan.backfill_id)
    s3 = client(env, "s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env.aws.s3.bucket, Prefix=store.prefix):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=env.aws.s3.bucket, Key=obj["Key"])
    return plan


def _backfill(plan: BackfillPlan, *extra: str) -> tuple[int, dict[str, Any], str]:
    args = ["backfill", "--env", "local", "--source", plan.source, "--table", f"{plan.source}.{plan.table}",
            "--start", plan.start.isoformat(), "--end", plan.end.isoformat(), "--chunk", format_duration(plan.chunk),
            *extra]  # fmt: skip
    result = CliRunner().invoke(app, args)
    summary = json.loads(result.stdout) if "--json" in extra and result.stdout.strip() else {}
    return result.exit_code, summary, result.output


def _assert_no_duplicate_keys(env: Environment, table: Table) -> None:
    pk = ", ".join(c.upper() for c in table.primary_key)
    dupes = f"SELECT {pk} FROM CURATED.{table.curated_name} GROUP BY {pk} HAVING COUNT(*) > 1"
    assert _warehouse_rows(env, f"SELECT COUNT(*) FROM ({dupes})") == [(0,)]


@pytest.mark.stack
def test_backfill_lands_exactly_the_window_and_keeps_the_watermark(stack: LocalStack, env: Environment) -> None:
    table = env.table(TABLE)
    window = _window(stack, table, days=3)
    plan = _fresh_window(env, table, window, "1d")
    watermark = load_state(env, table)
    source = _source_rows(stack, table, window)
    assert len(source) > 100

    code, summary, output = _backfill(plan, "--parallel", "3", "--json")
    assert code == 0, output
    assert (summary["chunks"], summary["chunks_done"], summary["chunks_skipped"]) == (3, 3, 0)
    assert summary["rows"] == len(source)

    # the backfill's own batches hold exactly the source rows of the window, each once
    batch_ids = summary["batch_ids"]
    assert len(batch_ids) == 3
    marks = ", ".join(["%s"] * len(batch_ids))
    cols = ", ".join(c.upper() for c in [*table.primary_key, table.cursor])
    landed = _warehouse_rows(env, f"SELECT {cols} FROM RAW.{table.raw_name} WHERE _BATCH_ID IN ({marks})", batch_ids)
    assert sorted(landed) == sorted(source)
    modes = _warehouse_rows(env, f"SELECT DISTINCT MODE FROM OPS.LANDED_BATCHES WHERE BATCH_ID IN ({marks})", batch_ids)
    assert modes == [("backfill",)]
    # ... merged into CURATED, and the hourly watermark did not move
    assert sorted(_curated_rows(env, table, window)) == sorted(source)
    # ... by OPS.BACKFILL(table, start, end), the procedure Snowflake runs
    assert summary["merge"]["errors"] == [] and [b["table"] for b in summary["merge"]["backfills"]] == [TABLE]
    assert set(batch_ids) <= set(summary["merge"]["backfills"][0]["batches"])
    # ... and the marts reading the table rebuilt the dates the window touched (the CURATED rows came back)
    called = summary["merge"]["backfills"][0]
    readers = {m.name for m in marts.marts() if TABLE in {u.table for u in m.upstreams}}
    assert readers and {m["mart"] for m in called["marts"]} == readers, called["marts"]
    assert all(m["mode"] != "unchanged" and m["partitions"] > 0 for m in called["marts"]), called["marts"]
    for mart in readers:
        rebuilt = f"SELECT COUNT(*) FROM MARTS.{mart.upper()} WHERE _RUN_ID = %s"
        assert _warehouse_rows(env, rebuilt, (called["run_id"],))[0][0] > 0, mart
    assert load_state(env, table) == watermark

    # every checkpoint is KMS-encrypted, and `status` reads the progress back
    s3 = client(env, "s3")
    store = CheckpointStore(env, plan.source, plan.backfill_id)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=env.aws.s3.bucket, Prefix=store.prefix)["Contents"]]
    assert len(keys) == 1 + 2 * 3  # the plan, and a `started` and a `done` record per chunk
    for key in keys:
        assert s3.head_object(Bucket=env.aws.s3.bucket, Key=key)["ServerSideEncryption"] == "aws:kms"
    status = CliRunner().invoke(app, ["backfill", "status", "--env", "local", "--source", "payments", "--json"])
    (mine,) = [s for s in json.loads(status.stdout) if s["backfill_id"] == plan.backfill_id]
    assert (mine["state"], mine["chunks_total"], mine["chunks_done"], mine["rows"]) == ("finished", 3, 3, len(source))


@pytest.mark.stack
def test_rerun_skips_finished_chunks_and_duplicates_nothing(stack: LocalStack, env: Environment) -> None:
    table = env.table(TABLE)
    window = _window(stack, table, days=2)
    window = (window[0] - timedelta(days=5), window[1] - timedelta(days=5))  # not the other tests' window
    plan = _fresh_window(env, table, window, "12h")
    code, first, output = _backfill(plan, "--json")
    assert code == 0, output
    assert first["chunks_done"] == 4

    code, _, output = _backfill(plan)  # the text output says what it skipped
    assert code == 0, output
    assert "skipping 4 chunk(s) finished by an earlier run" in output
    assert "0 run now, 4 already finished" in output

    # forget one chunk: the rerun extracts exactly that one again, and CURATED still holds each key once
    store = CheckpointStore(env, plan.source, plan.backfill_id)
    redo = plan.chunks()[1]
    client(env, "s3").delete_object(Bucket=env.aws.s3.bucket, Key=store.chunk_key(redo, "done"))
    code, third, output = _backfill(plan, "--json")
    assert code == 0, output
    assert (third["chunks_done"], third["chunks_skipped"]) == (1, 3)
    assert len(third["batch_ids"]) == 1 and third["merge"]["rows"] > 0  # the same rows, landed and merged again
    _assert_no_duplicate_keys(env, table)
    assert sorted(_curated_rows(env, table, window)) == sorted(_source_rows(stack, table, window))


@pytest.mark.stack
def test_resume_after_sigkill(stack: LocalStack, env: Environment) -> None:
    table = env.table(TABLE)
    window = _window(stack, table, days=2)
    window = (window[0] - timedelta(days=10), window[1] - timedelta(days=10))
    plan = _fresh_window(env, table, window, "1h")  # 48 short chunks: the kill lands well before the last one
    total = len(plan.chunks())
    store = CheckpointStore(env, plan.source, plan.backfill_id)
    args = [str(FINSIGHT), "backfill", "--env", "local", "--source", "payments", "--table", "payments", "--chunk",
            "1h", "--parallel", "1", "--start", window[0].isoformat(), "--end", window[1].isoformat()]  # fmt: skip
    proc = subprocess.Popen(args, cwd=repo_root(), env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not store.finished() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # no cleanup, no atexit: as an OOM kill or a lost host
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    finished = len(store.finished())
    assert 1 <= finished < total, f"killed after {finished} of {total} chunks"

    code, summary, output = _backfill(plan, "--json")
    assert code == 0, output
    assert summary["chunks_skipped"] == finished  # at least what the killed run had checkpointed
    assert summary["chunks_done"] == total - finished
    _assert_no_duplicate_keys(env, table)
    assert sorted(_curated_rows(env, table, window)) == sorted(_source_rows(stack, table, window))


@pytest.mark.stack
def test_failed_chunks_are_named_and_retried(stack: LocalStack, env: Environment) -> None:
    table = env.table(TABLE)
    window = _window(stack, table, days=1)
    window = (window[0] - timedelta(days=15), window[1] - timedelta(days=15))
    plan = _fresh_window(env, table, window, "12h")
    reader = json.loads(
        client(env, "secretsmanager").get_secret_value(
            SecretId=env.postgres_sources[table.source].connection.secret  # type: ignore[union-attr]
        )["SecretString"]
    )["username"]
    revoke = sql.SQL("REVOKE SELECT ON {} FROM {}").format(sql.Identifier(table.name), sql.Identifier(reader))
    grant = sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(table.name), sql.Identifier(reader))
    with stack.admin_connect(table.source) as conn:
        conn.execute(revoke)
    try:
        code, summary, output = _backfill(plan)
    finally:
        with stack.admin_connect(table.source) as conn:
            conn.execute(grant)
    assert code == 1
    for chunk in plan.chunks():
        assert f"failed chunk: {chunk.label(plan.source)}" in output
    assert output.count("ExtractionError: source 'payments'") >= 2  # the extractor's own message, per chunk
    status = CliRunner().invoke(app, ["backfill", "status", "--env", "local", "--source", "payments"])
    line = next(li for li in status.stdout.splitlines() if plan.backfill_id in li)
    assert " failed " in line and "0/2 chunks" in line
    assert status.stdout.count(f"failed  {table.name} [") >= 2

    code, summary, output = _backfill(plan, "--json")
    assert code == 0, output
    assert (summary["chunks_done"], summary["chunks_skipped"], summary["chunks_failed"]) == (2, 0, 0)
    assert sorted(_curated_rows(env, table, window)) == sorted(_source_rows(stack, table, window))


@pytest.mark.stack
def test_entrypoint_checkpoints_its_window(stack: LocalStack, env: Environment, capsys: pytest.CaptureFixture) -> None:
    table = env.table(TABLE)
    window = _window(stack, table, days=1)
    window = (window[0] - timedelta(days=20), window[1] - timedelta(days=20))
    plan = _fresh_window(env, table, window, "1d")
    (overrides,) = ecs_overrides(env, plan)
    variables = {v["name"]: v["value"] for v in overrides["containerOverrides"][0]["environment"]}
    watermark = load_state(env, table)
    assert entry.main([], dict(variables)) == entry.EXIT_OK
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (done,) = [e for e in events if e.get("event") == "chunk_done"]
    assert done["rows"] == len(_source_rows(stack, table, window))
    assert CheckpointStore(env, plan.source, plan.backfill_id).finished() == {Chunk(table.name, *window).key}
    # relaunching the same RunTask (ECS retry, operator) skips the finished chunk
    assert entry.main([], dict(variables)) == entry.EXIT_OK
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [e["table"] for e in events if e.get("event") == "chunk_skipped"] == [TABLE]
    assert not [e for e in events if e.get("event") == "chunk_done"]
    assert load_state(env, table) == watermark
