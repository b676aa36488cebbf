-- Source schema evolution: what each landed batch looked like, and every change applied to RAW/CURATED.
ALTER TABLE {{ database }}.{{ schemas.ops }}.{{ manifest_table }} ADD COLUMN IF NOT EXISTS schema_json VARCHAR;
-- drift the connector found against the catalog (added, widened, dropped, PAN-like): a JSON list, NULL when none
ALTER TABLE {{ database }}.{{ schemas.ops }}.{{ manifest_table }} ADD COLUMN IF NOT EXISTS schema_changes VARCHAR;

-- One row per column change (added, widened) applied to a RAW or CURATED table, with the batch or run behind it.
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.schema_versions (
    table_name VARCHAR NOT NULL,
    column_name VARCHAR NOT NULL,
    change VARCHAR NOT NULL,
    context VARCHAR,
    changed_at TIMESTAMP_NTZ NOT NULL
);
