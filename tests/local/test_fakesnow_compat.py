"""Each fakesnow compatibility fix, exercised through the real fakesnow server of the local stack.

Every test here fails without its fix (the statement errors or the client hangs on a 500).
"""

from __future__ import annotations

import io
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from snowflake.connector.errors import ProgrammingError

from finsight import warehouse
from finsight.aws import client, data_key_arn
from finsight.config import Environment
from finsight.local import fakesnow_compat
from finsight.local.stack import LocalStack

pytestmark = pytest.mark.stack


@pytest.fixture
def cursor(local_env: Environment, local_stack: LocalStack):
    with warehouse.connect(local_env) as conn:
        cur = conn.cursor()
        cur.execute("CREATE SCHEMA IF NOT EXISTS COMPAT_TEST")
        cur.execute("USE SCHEMA COMPAT_TEST")
        yield cur


def test_schemata_rewrite_is_a_pure_tree_transform() -> None:
    tree = sqlglot.parse_one("SELECT schema_name FROM DB1.INFORMATION_SCHEMA.SCHEMATA", read="snowflake")
    out = tree.transform(fakesnow_compat.information_schema_schemata).sql(dialect="duckdb")
    assert "system.information_schema.schemata" in out and "catalog_name = 'DB1'" in out


def test_information_schema_schemata(cursor, local_env: Environment) -> None:
    cursor.execute(f"SELECT schema_name FROM {local_env.snowflake.database}.INFORMATION_SCHEMA.SCHEMATA")
    assert "COMPAT_TEST" in {r[0] for r in cursor.fetchall()}


def test_query_tag_and_service_objects_are_accepted(cursor) -> None:
    for statement in (
        "ALTER SESSION SET QUERY_TAG = 'finsight'",
        "-- comment first, as schemachange sends it\nCREATE PIPE IF NOT EXISTS P AS SELECT 1",
        "CREATE OR REPLACE TASK T SCHEDULE = 'USING CRON 5 * * * * UTC' AS SELECT 1",
        "CREATE MASKING POLICY IF NOT EXISTS M AS (v VARCHAR) RETURNS VARCHAR -> v",
        "SELECT SYSTEM$CANCEL_ALL_QUERIES(1)",
    ):
        cursor.execute(statement)


def test_transactions_roll_back_and_commit(cursor) -> None:
    cursor.execute("CREATE OR REPLACE TABLE TX (ID INT)")
    cursor.execute("BEGIN")
    cursor.execute("INSERT INTO TX VALUES (1)")
    cursor.execute("ROLLBACK")
    cursor.execute("BEGIN")
    cursor.execute("INSERT INTO TX VALUES (2)")
    cursor.execute("COMMIT")
    cursor.execute("SELECT ID FROM TX")
    assert cursor.fetchall() == [(2,)]


def test_copy_from_a_stage_sub_folder_keeps_load_history(cursor, local_env: Environment) -> None:
    s3 = client(local_env, "s3")
    buf = io.BytesIO()
    pq.write_table(pa.table({"ID": [1, 2]}), buf)
    key = "compat/sub_folder/dt=2026-01-01/part-0.parquet"
    s3.put_object(Bucket=local_env.aws.s3.bucket, Key=f"{local_env.aws.s3.raw_prefix}/{key}", Body=buf.getvalue(),
                  ServerSideEncryption="aws:kms", SSEKMSKeyId=data_key_arn(local_env))  # fmt: skip
    cursor.execute(f"CREATE OR REPLACE STAGE ST URL = 's3://{local_env.aws.s3.bucket}/{local_env.aws.s3.raw_prefix}/'")
    cursor.execute("CREATE OR REPLACE TABLE LANDED (ID INT)")
    copy = ("COPY INTO LANDED FROM @COMPAT_TEST.ST/compat/sub_folder/ FILES = ('dt=2026-01-01/part-0.parquet') "
            "FILE_FORMAT = (TYPE = 'PARQUET') MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE")  # fmt: skip
    cursor.execute(copy)
    assert cursor.fetchall()[0][1] == "LOADED"
    cursor.execute(copy)
    assert cursor.fetchall()[0][1] == "LOAD_SKIPPED"


def _wal_bytes(cursor, local_env: Environment) -> int:
    database = local_env.snowflake.database
    cursor.execute(f"SELECT wal_size FROM pragma_database_size() WHERE database_name = '{database}'")
    size = cursor.fetchall()[0][0]  # DuckDB prints it, e.g. '0 bytes', '1.2 MiB'
    return 0 if size.startswith("0 ") else 1


def test_a_bulk_copy_is_stored_compressed_by_the_copy_not_by_a_later_statement(cursor, local_env: Environment) -> None:
    """Without the checkpoint after a bulk COPY, DuckDB keeps the loaded row groups uncompressed until the next
    checkpoint, which some later statement's commit pays for (a MERGE after a 10 M-row load: ~7 s of it)."""
    s3 = client(local_env, "s3")
    rows = fakesnow_compat.BULK_LOAD_ROWS + 1
    buf = io.BytesIO()
    pq.write_table(
        pa.table({"ID": pa.array(range(rows), pa.int64()), "S": ["visa", "mastercard"] * (rows // 2) + ["x"]}), buf
    )
    key = f"{local_env.aws.s3.raw_prefix}/compat/bulk/part-0.parquet"
    s3.put_object(Bucket=local_env.aws.s3.bucket, Key=key, Body=buf.getvalue(),
                  ServerSideEncryption="aws:kms", SSEKMSKeyId=data_key_arn(local_env))  # fmt: skip
    cursor.execute(f"CREATE OR REPLACE STAGE ST URL = 's3://{local_env.aws.s3.bucket}/{local_env.aws.s3.raw_prefix}/'")
    cursor.execute("CREATE OR REPLACE TABLE BULK (ID INT, S VARCHAR)")
    cursor.execute("COPY INTO BULK FROM @COMPAT_TEST.ST/compat/bulk/ FILES = ('part-0.parquet') "
                   "FILE_FORMAT = (TYPE = 'PARQUET') MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE")  # fmt: skip
    assert cursor.fetchall()[0][3] == rows
    assert _wal_bytes(cursor, local_env) == 0, "the bulk COPY was left for a later statement to checkpoint"
    cursor.execute("DROP TABLE BULK")


def test_stages_survive_a_fakesnow_restart(cursor, local_stack: LocalStack, local_env: Environment) -> None:
    cursor.execute(f"CREATE OR REPLACE STAGE KEEP_ME URL = 's3://{local_env.aws.s3.bucket}/'")
    local_stack.fakesnow.stop()
    local_stack.up(seed_sources=False)
    with warehouse.connect(local_env) as conn:
        cur = conn.cursor()
        cur.execute("SHOW STAGES IN SCHEMA COMPAT_TEST")
        assert any(re.search("KEEP_ME", str(row)) for row in cur.fetchall())


def test_a_duckdb_error_is_a_sql_error_not_a_retried_500(cursor, local_env: Environment) -> None:
    # without the fix the server answers 500 and the Snowflake client retries for minutes (pytest-timeout fails it)
    missing = f"s3://{local_env.aws.s3.bucket}/{local_env.aws.s3.raw_prefix}/compat/missing.parquet"
    with pytest.raises(ProgrammingError, match=r"Exception: "):
        cursor.execute(f"SELECT * FROM read_parquet('{missing}')")


def test_a_null_timestamp_reads_back_as_null(cursor) -> None:
    # without the fix the connector reads 1970-01-01 00:00:00 for the NULL (fakesnow's struct has no null mask)
    cursor.execute("CREATE OR REPLACE TABLE TS_NULLS (ID INT, SEEN_AT TIMESTAMP_NTZ)")
    cursor.execute("INSERT INTO TS_NULLS VALUES (1, NULL), (2, '2026-11-27 10:15:30.250'), (3, NULL)")
    cursor.execute("SELECT ID, SEEN_AT FROM TS_NULLS ORDER BY ID")
    rows = cursor.fetchall()
    assert [r[1] is None for r in rows] == [True, False, True]
    assert str(rows[1][1]) == "2026-11-27 10:15:30.250000"


ICEBERG_DDL = (
    "CREATE ICEBERG TABLE IF NOT EXISTS {name} (K NUMBER(38, 0), TS TIMESTAMP_NTZ(6)) "
    "EXTERNAL_VOLUME = 'FINSIGHT_LOCAL_CURATED_ARCHIVE' CATALOG = 'SNOWFLAKE' BASE_LOCATION = 'tables/t/'"
)


def test_iceberg_ddl_is_reduced_to_a_plain_table_by_a_tree_transform(caplog: pytest.LogCaptureFixture) -> None:
    """Deliberate, not the DuckDB generator's accident: without the transform sqlglot drops the storage properties
    with an "Unsupported property" warning each; with it there is nothing left to drop."""
    tree = sqlglot.parse_one(ICEBERG_DDL.format(name="A.T"), read="snowflake")
    out = tree.transform(fakesnow_compat.iceberg_as_plain_table)
    with caplog.at_level("WARNING", logger="sqlglot"):
        duck = out.sql(dialect="duckdb")
    assert duck == "CREATE TABLE IF NOT EXISTS A.T (K DECIMAL(38, 0), TS TIMESTAMP(6))"
    assert not [r for r in caplog.records if "Unsupported property" in r.getMessage()]
    assert "ICEBERG" not in out.sql(dialect="snowflake") and "EXTERNAL_VOLUME" not in out.sql(dialect="snowflake")
    alter = sqlglot.parse_one("ALTER ICEBERG TABLE A.T ADD COLUMN X VARCHAR", read="snowflake")
    plain = alter.transform(fakesnow_compat.iceberg_as_plain_table)
    assert plain.sql(dialect="snowflake") == "ALTER TABLE A.T ADD X VARCHAR"


def test_iceberg_table_statements_run_on_the_server(cursor) -> None:
    """The archive migration's DDL and the move's DML run unchanged: same SQL, a DuckDB table underneath."""
    cursor.execute(ICEBERG_DDL.format(name="COMPAT_TEST.ICEBERG_T"))
    cursor.execute(ICEBERG_DDL.format(name="COMPAT_TEST.ICEBERG_T"))  # IF NOT EXISTS: a rerun is a no-op
    cursor.execute("INSERT INTO COMPAT_TEST.ICEBERG_T VALUES (1, '2026-01-01 00:00:00')")
    cursor.execute("ALTER ICEBERG TABLE COMPAT_TEST.ICEBERG_T ADD COLUMN X VARCHAR")
    assert cursor.execute("SELECT K, X FROM COMPAT_TEST.ICEBERG_T").fetchall() == [(1, None)]
    cursor.execute("DROP TABLE COMPAT_TEST.ICEBERG_T")
