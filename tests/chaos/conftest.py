"""Chaos suite fixtures: the local stack caught up once, a scenario recorder, the report at the end.

`make chaos` runs every scenario (FINSIGHT_CHAOS=all) and rewrites docs/reliability.md (FINSIGHT_CHAOS_REPORT=1);
`make test` runs only the scenarios marked `chaos_fast` and leaves the checkout untouched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from finsight import aws
from finsight.config import Environment, PciClass
from finsight.local import column_policies
from finsight.local.cycle import hourly_cycle
from finsight.local.stack import LocalStack
from tests.chaos.harness import RESULTS, Scenario, write_report

# A scenario proves what it proves only on a stack as strict as production: each setting a lenient stack would relax.
ENFORCED = (
    "local.strict_iam (moto enforces IAM; connectors, Snowflake's S3 reads, quarantine and alerts act as their roles)",
    "local.strict_snowflake (the local Snowflake refuses what Snowflake refuses)",
    "postgres sslmode verify-full on a PostgreSQL serving TLS only",
    "column policies (masking policies) applied to every pci: pii column",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("FINSIGHT_CHAOS") == "all":
        return
    skip = pytest.mark.skip(reason="slow chaos scenario: run the whole suite with `make chaos`")
    for item in items:
        if item.get_closest_marker("chaos") and not item.get_closest_marker("chaos_fast"):
            item.add_marker(skip)


def _refuse(setting: str, why: str) -> None:
    pytest.fail(f"chaos refuses a lenient stack: {setting}: {why}", pytrace=False)


def require_enforced_config(env: Environment) -> None:
    """The settings of `env` that would make the chaos verdicts lenient (no stack needed)."""
    if env.local is None:
        _refuse("local", f"environment {env.name!r} has no local stack")
    if not env.local.strict_iam or not aws.strict_iam(env):
        _refuse("local.strict_iam", "is off: moto would not enforce IAM (environments/local.yaml)")
    if not env.local.strict_snowflake:
        _refuse("local.strict_snowflake", "is off: the local Snowflake would accept what Snowflake refuses")
    for name, src in env.postgres_sources.items():
        if src.connection is None or src.connection.sslmode != "verify-full":
            mode = None if src.connection is None else src.connection.sslmode
            _refuse(f"postgres_sources.{name}.connection.sslmode", f"is {mode!r}, not 'verify-full' (TLS off)")


def pii_columns(env: Environment) -> set[str]:
    """`<CURATED schema>.<table>.<column>` of every pci: pii column (PostgreSQL tables and API streams)."""
    curated = env.snowflake.schemas["curated"].upper()
    return {
        f"{curated}.{t.curated_name.upper()}.{c.upper()}"
        for t in env.warehouse_tables()
        for c, col in t.columns.items()
        if col.pci is PciClass.PII
    }


def require_column_policies(env: Environment, policies_file: Path) -> None:
    """After the migrations: every pci: pii column of CURATED has its masking policy in the local Snowflake."""
    if not policies_file.is_file():
        _refuse("column policies", f"{policies_file} is missing: the local Snowflake applied no masking policy")
    attached = json.loads(policies_file.read_text()).get("attached", {})
    masked = {
        f"{table}.{column}"
        for table, columns in attached.items()
        for column, policy in columns.items()
        if policy.endswith(".PII_MASK")
    }
    missing = sorted(pii_columns(env) - masked)
    if missing:
        _refuse("column policies", f"no masking policy on pci: pii column(s) {', '.join(missing)} ({policies_file})")


def require_enforced_stack(env: Environment, stack: LocalStack) -> None:
    """Config first, then what the running processes actually do."""
    require_enforced_config(env)
    try:  # a key moto would accept with enforcement off
        aws.unauthenticated_client(env, "s3").list_buckets()
        _refuse("local.strict_iam", "the running moto server answers an unknown key: IAM is not enforced")
    except ClientError:
        pass
    pid = stack.fakesnow.pid()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if pid else []
    if not cmdline or b"--lenient" in cmdline:
        _refuse("local.strict_snowflake", f"the running local Snowflake (pid {pid}) is not strict")
    if not stack.postgres.serving_tls():
        _refuse("postgres TLS", "the running PostgreSQL does not serve TLS with the hostssl-only pg_hba")


@pytest.fixture(scope="session")
def caught_up(local_env: Environment, local_stack: LocalStack) -> Iterator[Environment]:
    """One ordinary cycle first, so every scenario starts from CURATED equal to the sources; the report at the end.
    Only on an enforced stack (ENFORCED): a lenient one would prove nothing about production."""
    require_enforced_stack(local_env, local_stack)
    hourly_cycle(local_env)
    require_column_policies(local_env, local_stack.state_dir / "fakesnow" / column_policies.STATE_FILE)
    yield local_env
    write_report(RESULTS)


@pytest.fixture
def scenario(caught_up: Environment) -> Callable[[str, str, str], Scenario]:
    return Scenario
