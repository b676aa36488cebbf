"""Warehouse-facing view of the config: Snowflake types, landed columns, stage paths and pipe COPY statements.

One function per fact, used by migrations (rendered through schemachange vars), the local Snowpipe player, the
Snowpark procedures' arguments and the connectors: a table or column name is never typed twice.

The bottom of the warehouse half: it imports only the config (and the quarantine key rule, a leaf). What needs the
marts or quality checks too lives above: finsight.archive_catalog, finsight.migration_vars.
"""

from __future__ import annotations

from typing import Any

from finsight.config import Environment, Table
from finsight.config.models import RAW_PAYLOAD
from finsight.quarantine import quarantine_key as _quarantine_key  # the key rule the AWS Lambda applies too

# Metadata columns every landed row carries (written by the connector, used by MERGE and replays).
BATCH_ID = "_batch_id"
EXTRACTED_AT = "_extracted_at"
ROW_NUMBER = "_row_number"  # order within a batch: the later row wins among equal read times
OP = "_op"  # what the row says: an upsert of the row, or a tombstone (the key was deleted at the source)
OP_UPSERT = "U"
OP_DELETE = "D"
META_COLUMNS = {
    BATCH_ID: "VARCHAR",
    EXTRACTED_AT: "TIMESTAMP_NTZ",  # when the source was read (the batch's source snapshot): decides which row wins
    ROW_NUMBER: "NUMBER(38, 0)",
    OP: "VARCHAR",
}

LANDING_STAGE = "LANDING"  # external stage over s3://<bucket>/<raw_prefix>/
MANIFEST_TABLE = "LANDED_BATCHES"
MERGED_TABLE = "MERGED_BATCHES"
RUN_LOG_TABLE = "PIPELINE_RUNS"
# Everything a source writes sits below raw/<source>/ (its IAM role may write nowhere else); `_`-folders cannot
# collide with tables, whose names start with a letter.
MANIFEST_FOLDER = "_manifests"
PK_FOLDER = "_pks"
STATE_PREFIX = "state"  # connector watermarks: outside raw/, so no Snowpipe event and no lifecycle expiry
PK_SNAPSHOT_SUFFIX = "__PKS"
# warehouse operations (issue 8): load faults, task history, the marts' change feed, retention
LOAD_ERRORS_TABLE = "LOAD_ERRORS"
TASK_HISTORY_TABLE = "TASK_HISTORY"
CHANGED_DATES_TABLE = "CHANGED_DATES"
MART_BUILDS_TABLE = "MART_BUILDS"
RUN_BATCHES_TABLE = "RUN_BATCHES"
PIPELINE_CATALOG_TABLE = "PIPELINE_CATALOG"
RETENTION_RUNS_TABLE = "RETENTION_RUNS"
LANDED_STREAM = "LANDED_BATCHES_STREAM"  # the hourly graph's trigger (a stream over OPS.LANDED_BATCHES)
TOMBSTONE_SUFFIX = "__TOMBSTONES"  # OPS.<RAW>__TOMBSTONES: keys deleted at the source, with the read time
QUARANTINE_PREFIX = "quarantine"  # s3://<bucket>/quarantine/<original key>: files a pipe could not load
LOAD_ERRORS_FOLDER = "_load_errors/"  # below the stage root: the quarantine Lambda's records for OPS.LOAD_ERRORS

_SNOWFLAKE_TYPES = {
    "string": "VARCHAR",
    "int": "NUMBER(10, 0)",
    "bigint": "NUMBER(38, 0)",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP_NTZ",
    "date": "DATE",
    "json": "VARIANT",
}


def snowflake_type(logical: str) -> str:
    if logical.startswith("decimal("):
        precision, scale = logical.removeprefix("decimal(").removesuffix(")").split(",")
        return f"NUMBER({precision}, {scale})"
    return _SNOWFLAKE_TYPES[logical]


def raw_events_topic(env: Environment) -> str:
    """SNS topic S3 publishes raw-prefix events to; Snowpipe subscribes to it (cdktf/ creates it)."""
    return f"finsight-{env.name}-raw-landed"


def storage_integration(env: Environment) -> str:
    """Snowflake storage integration the landing stage reads S3 through (cdktf/ creates it)."""
    return f"{env.snowflake.database}_S3_INTEGRATION"


def error_integration(env: Environment) -> str:
    """Snowflake notification integration (to the alerts SNS) that pipes and the Task graph report errors to."""
    return f"{env.snowflake.database}_ALERTS_SNS_INTEGRATION"


def access_roles(env: Environment) -> dict[str, str]:
    """Snowflake roles by purpose (cdktf creates them; migrations/R__access_grants.sql grants to them)."""
    db = env.snowflake.database
    return {
        "pipeline": env.snowflake.role,
        "loader": f"{db}_LOADER",
        "analyst": f"{db}_ANALYST",
        "pii_reader": f"{db}_PII_READER",
        "governance": f"{db}_GOVERNANCE",
        # owns OPS.ARCHIVE_CURATED: inside that owner's-rights procedure INVOKER_ROLE() is this role, for which the
        # masking policies return clear values, so the archive keeps what it moves (issue 21 item 7)
        "archiver": f"{db}_ARCHIVER",
    }


GOVERNANCE_SCHEMA = "GOVERNANCE"  # policies and entitlements, owned by the governance role


def governance_deploy_user(env: Environment) -> str:
    """The one user granted the governance role (cdktf creates it): it runs migrations-governance/, the only scripts
    that create or attach policies. The pipeline's service user (env.snowflake.user) is never granted that role."""
    return f"{env.snowflake.database}_GOVERNANCE_DEPLOY"


def terraform_plan_identity(env: Environment) -> str:
    """The read-only user and role `terraform plan` of the Snowflake stack runs as (cdktf creates both, one name):
    MONITOR / USAGE only, no ownership, no CREATE, no MANAGE GRANTS; granted to no other role."""
    return f"{env.snowflake.database}_TERRAFORM_PLAN"


def governance_change_history_table(env: Environment) -> str:
    """schemachange's history of migrations-governance/: in the governance role's own schema (the pipeline role
    cannot write it, so it cannot mark a governance script applied)."""
    return f"{env.snowflake.database}.{GOVERNANCE_SCHEMA}.CHANGE_HISTORY"


def governance_vars(env: Environment) -> dict[str, Any]:
    """What migrations-governance/ and R__access_grants.sql need: roles, the policy schema, row-access tables and
    the password rules."""
    gov = env.governance
    column = gov.row_access_column.upper() if gov and gov.row_access_column else None
    return {
        "roles": access_roles(env),
        "governance_schema": GOVERNANCE_SCHEMA,
        "row_access_column": column,
        "raw_payload": RAW_PAYLOAD.upper(),  # the VARIANT every API stream lands its record in (masked, issue 21)
        "row_access_tables": [t.curated_name for t in env.tables() if column and column.lower() in t.landed_columns()],
        "password_policy": gov.password_policy.model_dump() if gov else None,
    }


def source_folder(source: str) -> str:
    """A source's folder below the stage root (= below s3://<bucket>/<raw_prefix>/)."""
    return f"{source}/"


def table_folder(table: Table) -> str:
    return f"{source_folder(table.source)}{table.name}/"


def pk_folder(table: Table) -> str:
    return f"{source_folder(table.source)}{PK_FOLDER}/{table.name}/"


def manifest_folder(source: str) -> str:
    return f"{source_folder(source)}{MANIFEST_FOLDER}/"


def state_key(table: Table) -> str:
    return f"{STATE_PREFIX}/{table.source}/{table.name}.json"


def backfill_state_prefix(source: str) -> str:
    """Where a source's backfill plans and per-chunk checkpoints live: beside its watermarks, below state/<source>/."""
    return f"{STATE_PREFIX}/{source}/backfills/"


def s3_key(env: Environment, relative: str) -> str:
    return f"{env.aws.s3.raw_prefix}/{relative}"


def pipe_copy_sql(env: Environment, target: str, folder: str, files: list[str] | None = None) -> str:
    """The COPY statement a Snowpipe runs: identical in migrations (CREATE PIPE) and in the local pipe player.

    `target` is SCHEMA.TABLE. Snowpipe passes the notified file itself; the local player names it with `files`
    (relative to `folder`).
    """
    raw = env.snowflake.schemas["raw"]
    named = "\nFILES = ({})".format(", ".join(f"'{f}'" for f in files)) if files else ""
    return (
        f"COPY INTO {target}\nFROM @{raw}.{LANDING_STAGE}/{folder}{named}\n"
        "FILE_FORMAT = (TYPE = 'PARQUET')\nMATCH_BY_COLUMN_NAME = CASE_INSENSITIVE"
    )


def pipes(env: Environment) -> list[dict[str, str]]:
    """Every pipe: data per table, primary-key snapshots for delete detection, and the batch manifests."""
    raw, ops = env.snowflake.schemas["raw"], env.snowflake.schemas["ops"]
    out = []
    for t in env.warehouse_tables():
        out.append({"name": f"{t.raw_name}_PIPE", "target": f"{raw}.{t.raw_name}", "folder": table_folder(t)})
        if t.deletes.value == "pk_snapshot":
            pk_table = t.raw_name + PK_SNAPSHOT_SUFFIX
            out.append({"name": f"{pk_table}_PIPE", "target": f"{raw}.{pk_table}", "folder": pk_folder(t)})
    for source in [*env.postgres_sources, *env.api_sources]:
        out.append(
            {
                "name": f"{source.upper()}__MANIFESTS_PIPE",
                "target": f"{ops}.{MANIFEST_TABLE}",
                "folder": manifest_folder(source),
            }
        )
    for p in out:
        p["copy_sql"] = pipe_copy_sql(env, p["target"], p["folder"])
    return out


def table_spec(table: Table) -> dict[str, Any]:
    """What the MERGE procedure needs to know about a table; passed as its argument by the Task DAG."""
    return {
        "table": table.qualified,
        "raw": table.raw_name,
        "curated": table.curated_name,
        "primary_key": [c.upper() for c in table.primary_key],
        "cursor": table.cursor.upper(),
        "columns": [c.upper() for c in table.landed_columns()],
        "pk_snapshot": table.deletes.value == "pk_snapshot",
        # the date/time column retention and the archive age rows by (None: an integer cursor, no age)
        "age_column": archive_age_column(table),
    }


def api_egress_hosts(env: Environment) -> dict[str, list[str]]:
    """API source -> the hosts its connector may reach (base_url host + configured extra hosts): the egress
    allow-list (see docs/egress.md). Derived from the config so a new provider cannot be forgotten there."""
    from urllib.parse import urlsplit

    return {
        name: sorted({urlsplit(api.base_url).hostname or "", *api.hosts} - {""})
        for name, api in env.api_sources.items()
    }


def quarantine_key(env: Environment, key: str) -> str:
    """Where a file a pipe could not load is moved: outside raw/, so no pipe event and no RAW lifecycle."""
    return _quarantine_key(QUARANTINE_PREFIX, key)


def load_errors_records_prefix(env: Environment) -> str:
    """Where the quarantine Lambda writes OPS.LOAD_ERRORS records (JSON) for the LOAD_ERRORS pipe (AWS only)."""
    return s3_key(env, LOAD_ERRORS_FOLDER)


def load_errors_pipe(env: Environment) -> dict[str, str]:
    """The pipe that copies the quarantine Lambda's records into OPS.LOAD_ERRORS (rendered for AWS only: the local
    pipe player inserts its records directly)."""
    ops, raw = env.snowflake.schemas["ops"], env.snowflake.schemas["raw"]
    copy_sql = (
        f"COPY INTO {ops}.{LOAD_ERRORS_TABLE} (PIPE_NAME, FILE_KEY, ERROR, QUARANTINE_KEY, FAILED_AT)\n"
        "FROM (\n    SELECT\n"
        "        $1:pipe::VARCHAR,\n        $1:key::VARCHAR,\n        $1:error::VARCHAR,\n"
        "        $1:quarantine_key::VARCHAR,\n        $1:failed_at::TIMESTAMP_NTZ\n"
        f"    FROM @{raw}.{LANDING_STAGE}/{LOAD_ERRORS_FOLDER}\n)\n"
        "FILE_FORMAT = (TYPE = 'JSON')"
    )
    return {"name": f"{LOAD_ERRORS_TABLE}_PIPE", "target": f"{ops}.{LOAD_ERRORS_TABLE}", "copy_sql": copy_sql}


# -- CURATED archive (issue 11): history older than curated_archive.hot_months as Iceberg tables on S3 --------------
ARCHIVE_SCHEMA = "ARCHIVE"  # one Snowflake-managed Iceberg table per archived CURATED table / mart
HISTORY_SCHEMA = "HISTORY"  # one view per archived table: hot UNION archive, what readers query for 7 years
_AGE_TYPES = ("timestamp", "date")  # a row's age is read from a business date/time column


def archive_volume(env: Environment) -> str:
    """The Snowflake external volume over s3://<curated_archive.bucket>/<prefix>/ (cdktf's Snowflake stack creates
    it under this name; the archive migration and task name it): <DATABASE>_CURATED_ARCHIVE."""
    return f"{env.snowflake.database}_CURATED_ARCHIVE".upper()


def iceberg_type(snowflake_type_name: str) -> str:
    """The column type of the Iceberg copy: Iceberg timestamps are microseconds; Snowflake-managed Iceberg tables
    have no VARIANT, so JSON is kept as text (the move writes TO_JSON, the history view reads PARSE_JSON)."""
    if snowflake_type_name == "TIMESTAMP_NTZ":
        return "TIMESTAMP_NTZ(6)"
    if snowflake_type_name == "VARIANT":
        return "VARCHAR"
    return snowflake_type_name


def archive_age_column(table: Table) -> str | None:
    """The column whose age moves a CURATED row to the archive (the cursor, when it is a date/time), else None:
    a table with no business date/time (an integer cursor) stays whole in native storage."""
    column = table.landed_columns().get(table.cursor)
    return table.cursor.upper() if column is not None and column.type in _AGE_TYPES else None


def curated_reader(env: Environment, table: Table) -> str:
    """Where a reader finds all of a table's CURATED rows: HISTORY.<t> (hot + Iceberg archive) when the archive moves
    its old rows, else CURATED.<t>. Marts, the referential check and reconcile read through it."""
    archived = env.curated_archive is not None and archive_age_column(table) is not None
    return f"{HISTORY_SCHEMA if archived else env.snowflake.schemas['curated']}.{table.curated_name}"
