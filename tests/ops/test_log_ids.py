"""Every structured log line of an extraction carries the run id and source, and every line about a table its
batch id, so one batch can be followed from the connector's log to S3 (and on to RAW `_BATCH_ID`)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from finsight import catalog
from finsight.aws import client
from finsight.config import Environment, repo_root
from finsight.local.stack import LocalStack
from finsight.ops.log_context import IdsFilter, bind, submit

SOURCE = "subscriptions"  # two tables: read on two threads, each line must still carry its own ids


def test_ids_follow_work_into_threads_and_never_leak_across_tables() -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(IdsFilter())
    log = logging.getLogger("finsight.test.log_ids")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    def table(name: str) -> None:
        with bind(table=name, batch_id=f"b-{name}"):
            log.info("landed", extra={"fields": {"rows": 1}})

    try:
        with bind(run_id="r1", source="s"), ThreadPoolExecutor(2) as pool:
            for f in [submit(pool, table, n) for n in ("a", "b")]:
                f.result()
        log.info("after")
    finally:
        log.removeHandler(handler)
    landed = sorted((r.fields for r in records if r.msg == "landed"), key=lambda f: f["table"])  # type: ignore[attr-defined]
    assert landed == [{"run_id": "r1", "source": "s", "table": t, "batch_id": f"b-{t}", "rows": 1} for t in "ab"]
    assert not getattr(records[-1], "fields", {})  # outside the blocks nothing is bound any more


@pytest.mark.stack
def test_entrypoint_log_lines_carry_run_source_table_and_batch(local_env: Environment, local_stack: LocalStack) -> None:
    run_id = "ops-log-ids-test"
    environ = {**os.environ, "FINSIGHT_ENV": "local", "FINSIGHT_SOURCE": SOURCE, "FINSIGHT_MODE": "full",
               "FINSIGHT_RUN_ID": run_id}  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "connectors"], cwd=repo_root(), capture_output=True, text=True,
                         timeout=300, env=environ)  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines and all(line.get("run_id") == run_id and line.get("source") == SOURCE for line in lines), lines
    tables = [line for line in lines if "table" in line]
    assert {line["table"] for line in tables} == {f"{SOURCE}.{t}" for t in local_env.postgres_sources[SOURCE].tables}
    assert all(line.get("batch_id") for line in tables), tables
    # the landing writer's own line (worker thread) and the entrypoint's summary name the same batch per table
    by_table: dict[str, set[str]] = {}
    for line in tables:
        by_table.setdefault(line["table"], set()).add(line["batch_id"])
    assert all(len(ids) == 1 for ids in by_table.values()), by_table
    landed = [line for line in lines if line.get("event") == "batch_landed"]
    assert landed, "a full read lands every table"
    for line in landed:  # from the log line to the batch's files in S3: same partition as its manifest
        partition = line["manifest"].split("/_manifests/")[1].rsplit("/", 1)[0]
        folder = catalog.s3_key(local_env, catalog.table_folder(local_env.table(line["table"])))
        prefix = f"{folder}{partition}/{line['batch_id']}-"
        assert client(local_env, "s3").list_objects_v2(Bucket=local_env.aws.s3.bucket, Prefix=prefix)["KeyCount"]
