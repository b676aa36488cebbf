"""The variables every schemachange script is rendered with: the catalog's names and specs, plus what the marts,
quality checks, ownership and the archive contribute.

It sits above finsight.catalog, finsight.marts, finsight.quality and finsight.archive_catalog and imports them all;
none of them imports it, so the catalog stays the bottom of the warehouse half (no module calls back into one
that called it).
"""

from __future__ import annotations

from typing import Any

from finsight import archive_catalog, catalog, marts, quality
from finsight.config import Environment
from finsight.ops.ownership import contact_sql


def migration_vars(env: Environment) -> dict[str, Any]:
    """The variables every schemachange script is rendered with (see migrations/)."""
    tables = []
    for t in env.warehouse_tables():
        tables.append(
            {
                "raw": t.raw_name,
                "curated": t.curated_name,
                # typographic apostrophe: fakesnow 0.11 mis-parses an escaped '' inside COMMENT
                "comment": f"{t.qualified}: {env.source(t.source).description}".replace("'", "\u2019"),
                "primary_key": [c.upper() for c in t.primary_key],
                "pk_snapshot": t.deletes.value == "pk_snapshot",
                "columns": [
                    {"name": name.upper(), "type": catalog.snowflake_type(col.type), "pii": col.pci.value == "pii"}
                    for name, col in t.landed_columns().items()
                ],
            }
        )
    s = env.snowflake
    return {
        "env": env.name,
        "database": s.database,
        "schemas": s.schemas,
        "role": s.role,
        "stage": catalog.LANDING_STAGE,
        "stage_url": f"s3://{env.aws.s3.bucket}/{env.aws.s3.raw_prefix}/",
        "storage_integration": catalog.storage_integration(env),
        "raw_events_topic_arn": f"arn:aws:sns:{env.aws.region}:{env.aws.account_id}:{catalog.raw_events_topic(env)}",
        "error_integration": catalog.error_integration(env),
        "is_local": env.is_local,
        "curated_retention_days": env.retention.curated_years * 365,
        "meta_columns": [{"name": k.upper(), "type": v} for k, v in catalog.META_COLUMNS.items()],
        "tables": tables,
        "pipes": catalog.pipes(env),
        "manifest_table": catalog.MANIFEST_TABLE,
        "merged_table": catalog.MERGED_TABLE,
        "run_log_table": catalog.RUN_LOG_TABLE,
        "pk_snapshot_suffix": catalog.PK_SNAPSHOT_SUFFIX,
        "load_errors_table": catalog.LOAD_ERRORS_TABLE,
        "load_errors_pipe": catalog.load_errors_pipe(env),
        "task_history_table": catalog.TASK_HISTORY_TABLE,
        "changed_dates_table": catalog.CHANGED_DATES_TABLE,
        "mart_builds_table": catalog.MART_BUILDS_TABLE,
        "run_batches_table": catalog.RUN_BATCHES_TABLE,
        "pipeline_catalog_table": catalog.PIPELINE_CATALOG_TABLE,
        "retention_runs_table": catalog.RETENTION_RUNS_TABLE,
        "landed_stream": catalog.LANDED_STREAM,
        "tombstone_suffix": catalog.TOMBSTONE_SUFFIX,
        "marts": mart_vars(),
        "governance": catalog.governance_vars(env),
        "quality_metrics": quality.migration_vars(env),  # Data Metric Function attachments (R__quality_metrics.sql)
        "custom_dmfs": quality.custom_dmf_vars(env),  # the platform's own DMFs (R__quality_metrics.sql)
        "contacts": contact_sql(env),  # Snowflake contacts per team and table (R__table_contacts.sql)
        "archive": archive_catalog.archive_vars(env),  # R__warehouse_views_archive.sql (issue 11)
    }


def mart_vars() -> list[dict[str, Any]]:
    """MARTS tables for the migration, from snowpark/marts/<mart>/metadata.yaml."""
    return [
        {
            "table": m.table_name,
            "comment": f"{m.friendly_name}: {m.grain} | owner: {m.owner}".replace("'", "\u2019"),
            "columns": [{"name": c.name.upper(), "type": c.type} for c in m.columns],
        }
        for m in marts.marts()
    ]
