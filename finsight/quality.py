"""Quality specs: the config's `quality:` checks resolved per catalog table, as the Snowpark procedures read them.

The procedures ship without the config package (snowpark.zip), so each table's checks, with the facts they need
from the catalog (primary key, cursor, nullable columns, status columns, references), travel as one JSON spec: the
argument of the CHECK_<TABLE> task, and a `quality` row of OPS.PIPELINE_CATALOG for the merge-time quarantine gate.
"""

from __future__ import annotations

import re
from typing import Any

from finsight import catalog, snowflake_dmf
from finsight.config import Environment, Table

QUALITY_RESULTS_TABLE = "QUALITY_RESULTS"
QUALITY_HOLDS_TABLE = "QUALITY_HOLDS"
NOT_CHECKED_FOR_NULLS = {"_raw"}  # the whole API record: its nulls are its fields'


def references(env: Environment, table: Table) -> list[dict[str, str]]:
    """Child column -> parent CURATED table and column, for every `references` whose parent lands in CURATED."""
    known = {t.qualified: t for t in env.warehouse_tables()}
    out = []
    for name, col in table.columns.items():
        if col.references is None:
            continue
        source, parent, column = col.references.split(".")
        target = known.get(f"{source}.{parent}")
        if target is not None:
            out.append(
                {
                    "column": name.upper(),
                    "parent": target.curated_name,
                    "parent_column": column.upper(),
                    "parent_table": target.qualified,
                    "parent_raw": target.raw_name,  # held (quarantined) parents wait in RAW, not CURATED
                    # an archived parent older than hot_months is in HISTORY (hot + archive), not CURATED alone
                    "parent_relation": catalog.curated_reader(env, target),
                }
            )
    return out


def table_quality_spec(env: Environment, table: Table) -> dict[str, Any]:
    checks = env.quality.for_table(table.qualified)
    landed = table.landed_columns()
    status = re.compile(checks.accepted_values.column_pattern)
    pk = {c for c in table.primary_key}
    return {
        "table": table.qualified,
        "source": table.source,
        "raw": table.raw_name,
        "curated": table.curated_name,
        "primary_key": [c.upper() for c in table.primary_key],
        "cursor": table.cursor.upper(),
        "nullable": [
            c.upper() for c, col in landed.items() if col.nullable and c not in pk and c not in NOT_CHECKED_FOR_NULLS
        ],
        "status_columns": [c.upper() for c in landed if status.match(c)],
        "references": references(env, table),
        "checks": checks.model_dump(mode="json"),
    }


def specs(env: Environment) -> dict[str, dict[str, Any]]:
    return {t.qualified: table_quality_spec(env, t) for t in env.warehouse_tables()}


def migration_vars(env: Environment) -> list[dict[str, Any]]:
    """What migrations/R__quality_metrics.sql attaches as Data Metric Functions (Snowflake only).

    Each DMF is chosen by the column's Snowflake type (finsight.snowflake_dmf): Snowflake refuses the attachment of a
    system DMF to a column type outside its "Allowed data types" (NULL_COUNT on BOOLEAN, FRESHNESS on TIMESTAMP_NTZ).
    `columns` records each attached column's type, so a checker can verify the choice from the rendered variables.
    """
    ops = f"{env.snowflake.database}.{env.snowflake.schemas['ops']}"
    out = []
    for table in env.warehouse_tables():
        spec = table_quality_spec(env, table)
        types = {n.upper(): catalog.snowflake_type(c.type) for n, c in table.landed_columns().items()}
        types |= {n.upper(): t for n, t in catalog.META_COLUMNS.items()}
        metrics = [f"{snowflake_dmf.system('ROW_COUNT')} ON ()"]
        extracted = catalog.EXTRACTED_AT.upper()
        freshness = snowflake_dmf.freshness_dmf(types[extracted], ops)
        if freshness is not None:
            metrics.append(f"{freshness} ON ({extracted})")
        key = spec["primary_key"]
        # DUPLICATE_COUNT takes one column here: composite keys are the CHECK task's
        if len(key) == 1 and snowflake_dmf.accepts("DUPLICATE_COUNT", types[key[0]]):
            metrics.append(f"{snowflake_dmf.system('DUPLICATE_COUNT')} ON ({key[0]})")
        if spec["checks"]["null_spike"]["enabled"]:
            metrics += [
                f"{snowflake_dmf.system('NULL_COUNT')} ON ({c})"
                for c in spec["nullable"]
                if snowflake_dmf.accepts("NULL_COUNT", types[c])  # a BOOLEAN's nulls are the CHECK task's
            ]
        used = {extracted, *key, *spec["nullable"]}
        out.append(
            {
                "curated": spec["curated"],
                "metrics": metrics,
                "columns": {c: t for c, t in types.items() if c in used},
            }
        )
    return out


def custom_dmf_vars(env: Environment) -> dict[str, Any]:
    """The platform's own DMFs (R__quality_metrics.sql creates them in OPS, owned by the pipeline role)."""
    return {
        "schema": f"{env.snowflake.database}.{env.snowflake.schemas['ops']}",
        "functions": [
            {"name": f.name, "signature": f.signature(), "body": f.body, "comment": f.comment}
            for f in snowflake_dmf.CUSTOM_DMFS
        ],
    }
