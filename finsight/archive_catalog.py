"""The CURATED archive's tables (issue 11): which CURATED tables and marts move to Snowflake-managed Iceberg tables
after curated_archive.hot_months, with what columns, and the arguments of the migration and of ARCHIVE_CURATED.

Above finsight.catalog (names, types, the age column) and finsight.marts (the marts are archived like tables).
"""

from __future__ import annotations

from typing import Any

from finsight import catalog, marts
from finsight.config import Environment


def archived_tables(env: Environment) -> list[dict[str, Any]]:
    """Every table the archive job moves: CURATED tables with a date/time cursor, and the marts (the cost model counts
    MARTS history as archived like CURATED's). Empty without `curated_archive:`.

    kind "table": rows carry a version (_EXTRACTED_AT, _BATCH_ID, _ROW_NUMBER) and source deletes (tombstones);
    kind "mart": rows are rebuilt per partition date, so the move replaces whole partitions.
    """
    if env.curated_archive is None:
        return []
    s = env.snowflake.schemas
    meta = [{"name": k.upper(), "type": v} for k, v in catalog.META_COLUMNS.items()]
    out: list[dict[str, Any]] = []
    for t in env.warehouse_tables():
        age = catalog.archive_age_column(t)
        if age is None:
            continue
        columns = [{"name": n.upper(), "type": catalog.snowflake_type(c.type)} for n, c in t.landed_columns().items()]
        out.append(
            {
                "kind": "table",
                "name": t.curated_name,
                "hot": f"{s['curated']}.{t.curated_name}",
                "keys": [c.upper() for c in t.primary_key],
                "age_column": age,
                "tombstones": f"{s['ops']}.{t.raw_name}{catalog.TOMBSTONE_SUFFIX}",
                "columns": [*columns, *meta, {"name": "_MERGED_AT", "type": "TIMESTAMP_NTZ"}],
            }
        )
    for m in marts.marts():
        columns = [{"name": c.name.upper(), "type": c.type} for c in m.columns]
        out.append(
            {
                "kind": "mart",
                "name": m.table_name,
                "hot": f"{s['marts']}.{m.table_name}",
                "keys": [k.upper() for k in m.keys],
                "age_column": m.partition_column.upper(),
                "tombstones": None,
                "columns": [
                    *columns,
                    {"name": "_RUN_ID", "type": "VARCHAR"},
                    {"name": "_BUILT_AT", "type": "TIMESTAMP_NTZ"},
                ],
            }
        )
    names = [t["name"] for t in out]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:  # ARCHIVE.<name> and HISTORY.<name> are shared by CURATED tables and marts
        raise ValueError(
            f"curated_archive: CURATED tables and marts share the names {clashes} in {catalog.ARCHIVE_SCHEMA}"
        )
    for t in out:
        t["archive"] = f"{catalog.ARCHIVE_SCHEMA}.{t['name']}"
        t["history"] = f"{catalog.HISTORY_SCHEMA}.{t['name']}"
        t["base_location"] = f"{t['kind']}s/{t['name'].lower()}/"
        for c in t["columns"]:
            c["iceberg_type"] = catalog.iceberg_type(c["type"])
            c["json"] = c["type"] == "VARIANT"
    return out


def archive_vars(env: Environment) -> dict[str, Any] | None:
    """What migrations/R__warehouse_views_archive.sql renders: the external volume, Iceberg tables, history views."""
    if env.curated_archive is None:
        return None
    return {
        "external_volume": catalog.archive_volume(env),
        "schema": catalog.ARCHIVE_SCHEMA,
        "history_schema": catalog.HISTORY_SCHEMA,
        "hot_months": env.curated_archive.hot_months,
        "tables": archived_tables(env),
    }


def archive_spec(env: Environment) -> dict[str, Any] | None:
    """ARCHIVE_CURATED's argument (the task passes it): hot months, the volume and, per table, what the move needs."""
    if env.curated_archive is None:
        return None
    keep = ("kind", "hot", "archive", "keys", "age_column", "tombstones")
    return {
        "hot_months": env.curated_archive.hot_months,
        "external_volume": catalog.archive_volume(env),
        "tables": [
            {**{k: t[k] for k in keep}, "columns": [c["name"] for c in t["columns"]],
             "json": [c["name"] for c in t["columns"] if c["json"]]}
            for t in archived_tables(env)
        ],
    }  # fmt: skip
