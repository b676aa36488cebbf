"""Masking policies as each role sees them, on the real local stack (the local Snowflake applies what the migrations
render: finsight/local/column_policies.py).

- CURATED PII columns: clear for the PII reader, '***MASKED***' for the pipeline and analyst roles;
- the API streams' VARIANT `_RAW` (whole provider record, e.g. PayPal payer email): NULL for non-PII roles in CURATED,
  clear in RAW for the pipeline that transforms it (issue 21 item 6);
- the archive move runs as its owner role (archiver), which the policies unmask: a row archived and read back by the
  PII reader is byte-identical to the original, while the pipeline and analyst roles see it masked (item 7).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import snowflake.connector

from finsight import archive_catalog, catalog, deploy_fingerprint, warehouse
from finsight.config import Environment
from finsight.local.stack import LocalStack
from snowpark import archive, procedures
from tasks.runner import owners_rights

pytestmark = pytest.mark.stack

TABLE = "PAYPAL__TRANSACTIONS"
KEY = f"TEST-MASK-{uuid.uuid4().hex[:10].upper()}"
EMAIL = "Zoë.Payer+1@example.com"
RAW = {"transaction_info": {"transaction_id": KEY}, "payer_info": {"email_address": EMAIL, "payer_name": "Zoë P"}}
MASKED = "***MASKED***"


def query(env: Environment, role: str, sql: str) -> list[tuple]:
    params = warehouse.connection_parameters(env) | {"role": role}
    with snowflake.connector.connect(**params) as conn:
        return conn.cursor().execute(sql).fetchall()


@pytest.fixture(scope="module")
def roles(local_env: Environment, local_stack: LocalStack) -> dict[str, str]:
    deploy_fingerprint.deploy_if_changed(local_env)
    return catalog.access_roles(local_env)


@pytest.fixture
def paypal_row(local_env: Environment, roles: dict[str, str]) -> Iterator[datetime]:
    """One old PayPal transaction in RAW and CURATED (old enough to archive); removed everywhere afterwards."""
    old = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=400)
    raw_table = next(t.raw_name for t in local_env.warehouse_tables() if t.curated_name == TABLE)
    cols = "TRANSACTION_ID, TRANSACTION_UPDATED_DATE, PAYER_EMAIL, _RAW, _BATCH_ID, _EXTRACTED_AT, _ROW_NUMBER, _OP"
    values = f"'{KEY}', '{old}', '{EMAIL}', PARSE_JSON('{json.dumps(RAW)}'), 'test-mask', '{old}', 1, 'U'"
    with warehouse.connect(local_env) as conn:
        cur = conn.cursor()
        cur.execute(f"INSERT INTO CURATED.{TABLE} ({cols}, _MERGED_AT) SELECT {values}, '{old}'")
        cur.execute(f"INSERT INTO RAW.{raw_table} ({cols}) SELECT {values}")
    try:
        yield old
    finally:
        with warehouse.connect(local_env) as conn:
            cur = conn.cursor()
            for t in (f"CURATED.{TABLE}", f"ARCHIVE.{TABLE}", f"RAW.{raw_table}"):
                cur.execute(f"DELETE FROM {t} WHERE TRANSACTION_ID = '{KEY}'")


def _curated(env: Environment, role: str, table: str = f"CURATED.{TABLE}") -> tuple[Any, Any]:
    rows = query(env, role, f"SELECT PAYER_EMAIL, _RAW FROM {table} WHERE TRANSACTION_ID = '{KEY}'")
    assert len(rows) == 1, rows
    return rows[0]


def test_curated_pii_and_payload_masked_for_non_pii_roles(
    local_env: Environment, roles: dict[str, str], paypal_row: datetime
) -> None:
    email, raw = _curated(local_env, roles["pii_reader"])
    assert email == EMAIL and json.loads(raw) == RAW
    for role in ("pipeline", "analyst"):
        assert _curated(local_env, roles[role]) == (MASKED, None), role
    # the predicate sees the masked value too: filtering on the clear email finds nothing for the analyst
    where = f"SELECT COUNT(*) FROM CURATED.{TABLE} WHERE PAYER_EMAIL = '{EMAIL}'"
    assert query(local_env, roles["analyst"], where) == [(0,)]
    assert query(local_env, roles["pii_reader"], where) == [(1,)]


def test_raw_payload_readable_by_pipeline_and_pii_reader_only(
    local_env: Environment, roles: dict[str, str], paypal_row: datetime
) -> None:
    raw_table = next(t.raw_name for t in local_env.warehouse_tables() if t.curated_name == TABLE)
    sql = f"SELECT _RAW FROM RAW.{raw_table} WHERE TRANSACTION_ID = '{KEY}'"
    for role in ("pipeline", "pii_reader"):
        assert json.loads(query(local_env, roles[role], sql)[0][0]) == RAW, role
    assert query(local_env, roles["analyst"], sql) == [(None,)]


def test_archived_row_keeps_clear_values_for_the_pii_reader(
    local_env: Environment, roles: dict[str, str], paypal_row: datetime
) -> None:
    spec = archive_catalog.archive_spec(local_env)
    assert spec is not None
    spec["tables"] = [t for t in spec["tables"] if t["hot"] == f"CURATED.{TABLE}"]
    original = query(local_env, roles["pii_reader"], f"SELECT PAYER_EMAIL, TO_JSON(_RAW) FROM CURATED.{TABLE} "
                     f"WHERE TRANSACTION_ID = '{KEY}'")  # fmt: skip
    session = warehouse.snowpark_session(local_env)
    try:
        # as the retention graph runs the task: the procedure's owner role (snowpark.procedures.ARCHIVE_CURATED)
        with owners_rights(local_env, session, procedures.ARCHIVE_CURATED.owner):
            out = archive.archive_curated(session, "test-mask", json.dumps(spec))
    finally:
        session.close()
    assert json.loads(out)["tables"][f"CURATED.{TABLE}"]["deleted_from_hot"] == 1
    assert query(local_env, roles["pii_reader"], f"SELECT COUNT(*) FROM CURATED.{TABLE} "
                 f"WHERE TRANSACTION_ID = '{KEY}'") == [(0,)]  # fmt: skip
    archived = query(local_env, roles["pii_reader"], f"SELECT PAYER_EMAIL, _RAW FROM ARCHIVE.{TABLE} "
                     f"WHERE TRANSACTION_ID = '{KEY}'")  # fmt: skip
    assert archived == original  # byte-identical: the email and the payload's JSON text
    email, raw = _curated(local_env, roles["pii_reader"], f"HISTORY.{TABLE}")
    assert email == EMAIL and json.loads(raw) == RAW
    for role in ("pipeline", "analyst"):
        assert _curated(local_env, roles[role], f"ARCHIVE.{TABLE}") == (MASKED, None), role
        assert _curated(local_env, roles[role], f"HISTORY.{TABLE}") == (MASKED, None), role
