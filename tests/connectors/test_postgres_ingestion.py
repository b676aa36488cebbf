"""PostgreSQL ingestion under what production databases do, through the real pipeline (PostgreSQL -> S3 -> COPY ->
MERGE): long transactions, read-time ordering, schema changes, PAN-like new columns, hard deletes at scale.

Each test owns a probe table of its own, added to a copy of the catalog (environments/ in a temp dir) in the `risk`
database, so it cannot disturb the catalog tables other tests reconcile. The module's probe tables are all in that
one catalog, deployed once (a schemachange deploy is ~18 s). Lookback is 0 here: the read horizon alone must keep
late-committing rows.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
import yaml

from connectors.landing.state import load_state
from connectors.run import ExtractionError, extract_source
from finsight import migrate, warehouse
from finsight.aws import client
from finsight.config import Environment, Table, load_environment, repo_root
from finsight.local.snowpipe import drain
from finsight.local.stack import LocalStack
from tasks.runner import run_dag

pytestmark = pytest.mark.stack
SOURCE = "risk"
PANS = ["4111111111111111", "5500005555555559", "340000000000009"]  # Luhn-valid test card numbers


# the probe tables of the module, by their delete detection (a test asks for another mode with `indirect` params)
PROBES = {"none": 5, "range_hash": 1}


def _probe_env(tmp: Path, names: dict[str, str]) -> Environment:
    """The catalog with the probe tables `names` (name -> delete detection) added to the `risk` database."""
    shutil.copytree(repo_root() / "environments", tmp / "environments")
    base = tmp / "environments" / "base.yaml"
    data = yaml.safe_load(base.read_text())
    for name, deletes in names.items():
        data["postgres_sources"][SOURCE]["tables"][name] = {
            "primary_key": ["id"],
            "cursor": "updated_at",
            "deletes": deletes,
            "delete_check_every_minutes": 0,
            "columns": {
                "id": {"type": "bigint", "nullable": False},
                "amount": "decimal(18,2)",
                "note": "string",
                "updated_at": {"type": "timestamp", "nullable": False},
            },
        }
    base.write_text(yaml.safe_dump(data, sort_keys=False))
    local = tmp / "environments" / "local.yaml"
    overlay = yaml.safe_load(local.read_text())
    overlay["connectors"]["cursor_lookback_minutes"] = 0
    local.write_text(yaml.safe_dump(overlay, sort_keys=False))
    return load_environment("local", tmp / "environments")


@pytest.fixture(scope="module")
def probes(
    tmp_path_factory: pytest.TempPathFactory, local_stack: LocalStack
) -> Iterator[tuple[Environment, dict[str, list[str]], Path]]:
    """(the catalog with every probe table, the unused probe tables by delete detection, its directory), deployed
    once."""
    free = {mode: [f"probe_{uuid.uuid4().hex[:8]}" for _ in range(n)] for mode, n in PROBES.items()}
    names = {name: mode for mode, tables in free.items() for name in tables}
    catalog = tmp_path_factory.mktemp("probes")
    env = _probe_env(catalog, names)
    with local_stack.admin_connect(SOURCE) as conn:
        for name in names:
            conn.execute(
                f"CREATE TABLE {name} (id bigint PRIMARY KEY, amount numeric(18, 2), note text, "
                "updated_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute(f"GRANT SELECT ON {name} TO PUBLIC")
        conn.commit()
    migrate.deploy(env)
    yield env, free, catalog / "environments"
    with local_stack.admin_connect(SOURCE) as conn:
        for name in names:
            conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.commit()


@pytest.fixture
def probe(
    probes: tuple[Environment, dict[str, list[str]], Path], request: pytest.FixtureRequest
) -> tuple[Environment, Table]:
    """A probe table no other test of the module touches: (the module's catalog, the table)."""
    env, free, _ = probes
    mode = getattr(request, "param", "none")
    assert free[mode], f"PROBES has too few {mode!r} tables for the tests asking for one"
    return env, env.table(f"{SOURCE}.{free[mode].pop()}")


def _cycle(env: Environment, table: Table, mode: str = "incremental") -> Any:
    """Extract one table, load what landed, merge it: the hourly path for one table."""
    run = extract_source(env, table.source, mode, tables=[table.name])
    with warehouse.connect(env, schema=env.snowflake.schemas["raw"]) as conn:
        pipe = drain(env, conn.cursor())
    assert not pipe.errors, pipe.errors
    session = warehouse.snowpark_session(env)
    try:
        dag = run_dag(env, session, f"test-{uuid.uuid4().hex[:6]}", only=[f"MERGE_{table.raw_name}"])
    finally:
        session.close()
    assert dag.succeeded, [t.error for t in dag.tasks if t.error]
    return run.batches[0]


def _curated(env: Environment, table: Table) -> dict[int, dict[str, Any]]:
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM CURATED.{table.curated_name}")
        names = [d[0] for d in cur.description]
        return {row[names.index("ID")]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def _admin(stack: LocalStack) -> psycopg.Connection:
    return stack.admin_connect(SOURCE)


def test_a_transaction_open_across_a_run_is_read_by_the_next_run(probe, local_stack: LocalStack) -> None:
    env, table = probe
    with _admin(local_stack) as conn:
        conn.execute(f"INSERT INTO {table.name} (id, amount, note) VALUES (1, 1.00, 'first'), (2, 2.00, 'first')")
        conn.commit()
    _cycle(env, table)
    late = _admin(local_stack)  # stays open across the next run: its updated_at = now() = its start time
    late.execute("BEGIN")
    late.execute(f"UPDATE {table.name} SET note = 'late', updated_at = now() WHERE id = 1")
    with _admin(local_stack) as conn:
        conn.execute(f"UPDATE {table.name} SET note = 'on time', updated_at = now() WHERE id = 2")
        conn.commit()
    _cycle(env, table)
    state = load_state(env, table)
    assert state["horizon_held_by_open_transaction"] is True
    assert _curated(env, table)[1]["NOTE"] == "first"  # not committed yet: invisible, not lost
    late.execute("COMMIT")
    late.close()
    _cycle(env, table)
    rows = _curated(env, table)
    assert rows[1]["NOTE"] == "late"  # committed after the run, with a cursor older than that run's snapshot
    assert rows[2]["NOTE"] == "on time"


def test_the_later_read_wins_even_with_an_older_cursor(probe, local_stack: LocalStack) -> None:
    env, table = probe
    with _admin(local_stack) as conn:
        conn.execute(f"INSERT INTO {table.name} (id, amount, note) VALUES (3, 3.00, 'new')")
        conn.commit()
    _cycle(env, table)
    with _admin(local_stack) as conn:  # a source that moves its cursor backwards (clock skew, restore, app bug)
        conn.execute(f"UPDATE {table.name} SET note = 'corrected', updated_at = '2020-01-01' WHERE id = 3")
        conn.commit()
    _cycle(env, table, mode="full")
    assert _curated(env, table)[3]["NOTE"] == "corrected"


def _declare(probes: tuple[Any, Any, Path], tmp: Path, table: Table, column: str, logical: str) -> Environment:
    """The catalog PR that makes a source's widened column permanent: the probe's column declared `logical` (in a
    copy of the module's catalog: the other probe tables keep theirs)."""
    shutil.copytree(probes[2], tmp / "environments")
    base = tmp / "environments" / "base.yaml"
    data = yaml.safe_load(base.read_text())
    data["postgres_sources"][SOURCE]["tables"][table.name]["columns"][column] = logical
    base.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_environment("local", tmp / "environments")


def _raw_type(env: Environment, table: Table, column: str) -> str:
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT NUMERIC_PRECISION, NUMERIC_SCALE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'RAW' "
            "AND TABLE_NAME = %s AND COLUMN_NAME = %s",
            (table.raw_name, column),
        )
        precision, scale = cur.fetchone()
    return f"NUMBER({precision}, {scale})"


def test_added_widened_and_dropped_columns_keep_loading_without_loss(
    probe, probes, local_stack: LocalStack, tmp_path: Path
) -> None:
    """Snowpipe's schema evolution adds columns and never widens one, so a widened decimal lands as RAW's type while
    its values fit; one that does not holds the table back (nothing landed, watermark kept) until the catalog declares
    the wider type and `finsight migrate` widens RAW (precision only), then the same rows land. (Before, RAW was
    widened by the local pipe player itself, which Snowflake never does.)"""
    env, table = probe
    with _admin(local_stack) as conn:
        conn.execute(f"INSERT INTO {table.name} (id, amount, note) VALUES (1, 1.50, 'a'), (2, 2.50, 'b')")
        conn.commit()
    _cycle(env, table)
    with _admin(local_stack) as conn:
        conn.execute(f"ALTER TABLE {table.name} ADD COLUMN region text")
        conn.execute(f"ALTER TABLE {table.name} ALTER COLUMN amount TYPE numeric(24, 2)")
        conn.execute(f"ALTER TABLE {table.name} DROP COLUMN note")
        conn.execute(f"UPDATE {table.name} SET region = 'EU', amount = 1.25, updated_at = now() WHERE id = 1")
        conn.commit()
    batch = _cycle(env, table)
    assert any(c.startswith("added region") for c in batch.schema_changes), batch.schema_changes
    assert "widened amount decimal(18,2) -> decimal(24,2) (lands as decimal(18,2), RAW's type)" in batch.schema_changes
    assert any(c.startswith("dropped note") for c in batch.schema_changes)
    assert _raw_type(env, table, "AMOUNT") == "NUMBER(18, 2)"  # the load widened nothing
    rows = _curated(env, table)
    assert rows[1]["REGION"] == "EU" and str(rows[1]["AMOUNT"]) == "1.25"
    assert rows[1]["NOTE"] is None  # the column is gone at the source: NULL from now on
    assert rows[2]["NOTE"] == "b"  # history stays
    with warehouse.connect(env) as conn:  # the drift travels with the batch: what alerts and `batches show` read
        cur = conn.cursor()
        cur.execute("SELECT SCHEMA_CHANGES FROM OPS.LANDED_BATCHES WHERE BATCH_ID = %s", (batch.batch_id,))
        assert "added region string" in json.loads(cur.fetchone()[0])

    big = "12345678901234567890.12"  # 20 integer digits: RAW's NUMBER(18, 2) holds 16
    with _admin(local_stack) as conn:
        conn.execute(f"UPDATE {table.name} SET amount = {big}, updated_at = now() WHERE id = 2")
        conn.commit()
    cursor_before = load_state(env, table)["cursor"]
    with pytest.raises(ExtractionError, match=r"column 'amount' does not fit decimal128\(18, 2\)"):
        extract_source(env, table.source, "incremental", tables=[table.name])
    assert load_state(env, table)["cursor"] == cursor_before  # held back: the next run re-reads the rows

    declared = _declare(probes, tmp_path, table, "amount", "decimal(24,2)")  # the catalog PR, then the deploy
    result = migrate.deploy(declared)
    raw, curated = f"RAW.{table.raw_name}", f"CURATED.{table.curated_name}"
    change = "AMOUNT: widened NUMBER(18, 2) -> NUMBER(24, 2)"
    assert {f"{raw}.{change}", f"{curated}.{change}"} <= set(result.widened)
    assert _raw_type(env, table, "AMOUNT") == "NUMBER(24, 2)"
    _cycle(declared, declared.table(table.qualified))
    assert str(_curated(env, table)[2]["AMOUNT"]) == big  # the held-back row, exact
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, CHANGE, CONTEXT FROM OPS.SCHEMA_VERSIONS WHERE TABLE_NAME LIKE %s",
            (f"%{table.raw_name}",),
        )
        changes = {(t.split(".")[0], c, ch.split()[0], ctx.split()[0]) for t, c, ch, ctx in cur.fetchall()}
    assert {("RAW", "REGION", "added", "file"), ("CURATED", "REGION", "added", "run"),
            ("RAW", "AMOUNT", "widened", "deploy")} <= changes  # fmt: skip


def test_a_grown_decimal_scale_is_never_rounded_and_never_widened_in_place(
    probe, probes, local_stack: LocalStack, tmp_path: Path
) -> None:
    """Snowflake casts 1.2345 into RAW's NUMBER(18, 2) as 1.23 and cannot change a NUMBER's scale in place: the
    connector holds back a value it would round, and the deploy refuses the scale change naming the column (the
    table is rebuilt instead: docs/runbooks/source-schema-change.md). Values that still fit keep loading."""
    env, table = probe
    with _admin(local_stack) as conn:
        conn.execute(f"ALTER TABLE {table.name} ALTER COLUMN amount TYPE numeric(20, 4)")
        conn.execute(f"INSERT INTO {table.name} (id, amount, note) VALUES (1, 1.2345, 'a'), (2, 2.5, 'b')")
        conn.commit()
    with pytest.raises(ExtractionError, match=r"column 'amount' does not fit .* data loss"):
        extract_source(env, table.source, "incremental", tables=[table.name])
    with pytest.raises(migrate.MigrationError, match=rf"RAW\.{table.raw_name}\.AMOUNT is NUMBER\(18, 2\).*rebuild"):
        migrate.deploy(_declare(probes, tmp_path, table, "amount", "decimal(20,4)"))
    assert _raw_type(env, table, "AMOUNT") == "NUMBER(18, 2)"
    with _admin(local_stack) as conn:  # the source team rounds the value: it fits again
        conn.execute(f"UPDATE {table.name} SET amount = 1.23, updated_at = now() WHERE id = 1")
        conn.commit()
    _cycle(env, table)
    assert {k: str(r["AMOUNT"]) for k, r in _curated(env, table).items()} == {1: "1.23", 2: "2.50"}


def test_a_new_column_holding_card_numbers_never_lands_in_clear(probe, local_stack: LocalStack) -> None:
    env, table = probe
    with _admin(local_stack) as conn:
        conn.execute(f"ALTER TABLE {table.name} ADD COLUMN backup_card text")
        for i, pan in enumerate(PANS):
            conn.execute(f"INSERT INTO {table.name} (id, amount, backup_card) VALUES (%s, 1, %s)", (10 + i, pan))
        conn.commit()
    batch = _cycle(env, table)
    assert "PAN-like values in new column backup_card: tokenized" in batch.schema_changes
    s3 = client(env, "s3")
    for key in batch.files:
        body = s3.get_object(Bucket=env.aws.s3.bucket, Key=key)["Body"].read()
        values = {str(v) for row in pq.read_table(io.BytesIO(body)).to_pylist() for v in row.values()}
        assert not values & set(PANS), key
        assert not any(p.encode() in body for p in PANS), key
    rows = _curated(env, table)
    assert "BACKUP_CARD" not in rows[10]
    assert re.fullmatch(r"v\d+\$[0-9a-f]{64}", rows[10]["BACKUP_CARD_TOKEN"])
    assert rows[10]["BACKUP_CARD_LAST4"] == PANS[0][-4:]


@pytest.mark.parametrize("probe", ["range_hash"], indirect=True)
def test_range_hash_deletes_land_as_tombstones_fetching_only_changed_ranges(probe, local_stack: LocalStack) -> None:
    env, table = probe
    with _admin(local_stack) as conn:
        conn.execute(f"INSERT INTO {table.name} (id, amount) SELECT g, g FROM generate_series(1, 6400) g")
        conn.commit()
    _cycle(env, table)
    first = load_state(env, table)["deletes"]
    assert first["changed_buckets"] == env.connectors.delete_check_ranges  # first check: every range
    with _admin(local_stack) as conn:
        conn.execute(f"DELETE FROM {table.name} WHERE id IN (7, 8, 4000)")
        conn.commit()
    batch = _cycle(env, table)
    assert batch.tombstones == 3
    assert load_state(env, table)["deletes"]["changed_buckets"] == 2  # ids 7, 8 share a range; 4000 is another
    rows = _curated(env, table)
    assert len(rows) == 6400 - 3
    assert not {7, 8, 4000} & set(rows)
    again = _cycle(env, table)  # nothing changed: no range fetched, no tombstone, CURATED unchanged
    assert again.tombstones == 0
    assert len(_curated(env, table)) == 6400 - 3
