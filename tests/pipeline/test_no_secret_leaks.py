"""No secret value ever reaches stdout, stderr or a log file: on a good run and on a failing one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finsight.aws import client
from finsight.config import Environment
from finsight.local.stack import LocalStack

pytestmark = pytest.mark.stack
FINSIGHT = str(Path(sys.executable).with_name("finsight"))


def _secret_values(env: Environment) -> set[str]:
    sm = client(env, "secretsmanager")
    values: set[str] = set()
    for page in sm.get_paginator("list_secrets").paginate():
        for item in page["SecretList"]:
            data = json.loads(sm.get_secret_value(SecretId=item["ARN"])["SecretString"])
            # user names are identifiers, not secrets; everything else must stay hidden
            values |= {str(v) for k, v in data.items() if k not in ("username", "user")}
    return {v for v in values if len(v) >= 8}


def _logs(stack: LocalStack) -> str:
    files = [*stack.state_dir.glob("logs/*.log"), stack.postgres.logfile]
    return "\n".join(f.read_text(errors="replace") for f in files if f.exists())


def test_good_and_failing_runs_print_no_secret(local_env: Environment, local_stack: LocalStack) -> None:
    secrets = _secret_values(local_env)
    assert len(secrets) >= 12 + 4 + 2
    good = subprocess.run([FINSIGHT, "run", "--env", "local"], capture_output=True, text=True, timeout=600)
    assert good.returncode == 0, good.stderr[-2000:]

    # break one source's credentials: the run must fail loudly, name the source, and still hide every value
    sm = client(local_env, "secretsmanager")
    name = local_env.postgres_sources["disputes"].connection.secret
    original = sm.get_secret_value(SecretId=name)["SecretString"]
    wrong = {**json.loads(original), "password": "Wr0ngPassw0rd-not-the-real-one"}  # pragma: allowlist secret
    sm.put_secret_value(SecretId=name, SecretString=json.dumps(wrong))
    try:
        bad = subprocess.run([FINSIGHT, "run", "--env", "local"], capture_output=True, text=True, timeout=600)
    finally:
        sm.put_secret_value(SecretId=name, SecretString=original)
    assert bad.returncode == 1
    assert "disputes" in bad.stderr and "password authentication failed" in bad.stderr
    assert "Traceback" not in bad.stderr

    text = good.stdout + good.stderr + bad.stdout + bad.stderr + _logs(local_stack)
    leaked = [v[:4] + "…" for v in secrets | {wrong["password"]} if v in text]
    assert not leaked, f"secret values found in output/logs: {leaked}"


# The ECS entrypoint with every logger of ours at DEBUG (the libraries keep the levels the entrypoint sets them to:
# botocore at DEBUG would print Secrets Manager's response bodies, which is why the entrypoint silences it).
_DEBUG_ENTRYPOINT = """
import logging, sys
import connectors.__main__ as entry

configure = entry.configure_logging


def debug_logging():
    configure()
    for name in ("", "finsight", "connectors", "snowpark", "psycopg", "adbc_driver_manager", "pyarrow"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger("finsight.test").debug("debug logging is on")


entry.configure_logging = debug_logging
sys.exit(entry.main([]))
"""


@pytest.mark.parametrize("source", ["payments", "disputes"])
def test_the_ecs_entrypoint_at_debug_prints_no_secret(
    local_env: Environment, local_stack: LocalStack, source: str
) -> None:
    secrets = _secret_values(local_env)
    sm = client(local_env, "secretsmanager")
    injected = {  # what ECS would inject: the entrypoint must drop them before anything can echo them
        "FINSIGHT_SOURCE_SECRET": sm.get_secret_value(SecretId=local_env.postgres_sources[source].connection.secret)[
            "SecretString"
        ],
        "FINSIGHT_PAN_TOKENIZATION_KEY": sm.get_secret_value(SecretId=local_env.secrets.pan_tokenization_key)[
            "SecretString"
        ],
    }
    run = subprocess.run(
        [sys.executable, "-c", _DEBUG_ENTRYPOINT],
        env={**os.environ, "FINSIGHT_ENV": "local", "FINSIGHT_SOURCE": source, "FINSIGHT_MODE": "full", **injected},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert any(rec.get("level") == "debug" for rec in lines), "DEBUG records were not emitted"
    assert any(rec.get("event") == "extraction_finished" or "rows" in rec for rec in lines), run.stdout[-2000:]
    text = run.stdout + run.stderr
    leaked = [v[:4] + "…" for v in secrets if v in text]
    assert not leaked, f"secret values found in the entrypoint's output at DEBUG: {leaked}"
