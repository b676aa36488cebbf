-- Layers of the warehouse and the operational tables the pipeline keeps about itself.
-- Rendered by schemachange with the variables of finsight.catalog.migration_vars (never hand-typed names).
CREATE SCHEMA IF NOT EXISTS {{ database }}.{{ schemas.raw }};
CREATE SCHEMA IF NOT EXISTS {{ database }}.{{ schemas.curated }};
CREATE SCHEMA IF NOT EXISTS {{ database }}.{{ schemas.marts }};
CREATE SCHEMA IF NOT EXISTS {{ database }}.{{ schemas.ops }};

-- One row per batch a connector landed (loaded by the manifests pipe; the manifest is written last).
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.{{ manifest_table }} (
    batch_id VARCHAR NOT NULL,
    source_table VARCHAR NOT NULL,
    raw_table VARCHAR NOT NULL,
    mode VARCHAR NOT NULL,
    row_count NUMBER(38, 0) NOT NULL,
    file_count NUMBER(38, 0) NOT NULL,
    pk_snapshot_rows NUMBER(38, 0),
    cursor_min VARCHAR,
    cursor_max VARCHAR,
    schema_hash VARCHAR NOT NULL,
    extracted_at TIMESTAMP_NTZ NOT NULL
);

-- One row per (batch, table) merged into CURATED: what makes reruns skip and replays explicit.
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.{{ merged_table }} (
    batch_id VARCHAR NOT NULL,
    raw_table VARCHAR NOT NULL,
    rows_merged NUMBER(38, 0) NOT NULL,
    rows_deleted NUMBER(38, 0) NOT NULL,
    merged_at TIMESTAMP_NTZ NOT NULL,
    run_id VARCHAR NOT NULL
);

-- One row per task execution of the hourly DAG (what engineers read during incidents).
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.{{ run_log_table }} (
    run_id VARCHAR NOT NULL,
    task_name VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    started_at TIMESTAMP_NTZ NOT NULL,
    finished_at TIMESTAMP_NTZ,
    detail VARCHAR
);
