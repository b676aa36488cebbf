-- Operational tables of the warehouse: load errors, task history, change feed for marts, mart builds, the
-- pipeline catalog procedures read, and the stream that triggers the hourly graph when batches land.

-- Files a pipe could not load: moved to the quarantine prefix, alerted, released by an operator.
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.{{ load_errors_table }} (
    PIPE_NAME VARCHAR NOT NULL,
    FILE_KEY VARCHAR NOT NULL,
    ERROR VARCHAR NOT NULL,
    QUARANTINE_KEY VARCHAR,
    FAILED_AT TIMESTAMP_NTZ NOT NULL,
    RELEASED_AT TIMESTAMP_NTZ
);

-- One row per task attempt, in the shape of Snowflake's TASK_HISTORY (extract and load stages included).
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.{{ task_history_table }} (
    NAME VARCHAR NOT NULL,
    STATE VARCHAR NOT NULL,
    SCHEDULED_TIME TIMESTAMP_NTZ NOT NULL,
    QUERY_START_TIME TIMESTAMP_NTZ,
    COMPLETED_TIME TIMESTAMP_NTZ,
    RETURN_VALUE VARCHAR,
    ERROR_CODE VARCHAR,
    ERROR_MESSAGE VARCHAR,
    ATTEMPT_NUMBER NUMBER(38, 0) NOT NULL,
    GRAPH_RUN_GROUP_ID VARCHAR NOT NULL,
    RUN_ID NUMBER(38, 0) NOT NULL,
    CONFIG VARCHAR
);

-- Business dates a MERGE touched (old and new versions, deletes included): what marts rebuild.
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.{{ changed_dates_table }} (
    RAW_TABLE VARCHAR NOT NULL,
    DATE_COLUMN VARCHAR NOT NULL,
    BUSINESS_DATE DATE NOT NULL,
    RUN_ID VARCHAR NOT NULL,
    RECORDED_AT TIMESTAMP_NTZ NOT NULL
);

-- One row per mart build: which dates, how many rows, up to which change it has consumed.
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.{{ mart_builds_table }} (
    MART VARCHAR NOT NULL,
    RUN_ID VARCHAR NOT NULL,
    MODE VARCHAR NOT NULL,
    PARTITIONS NUMBER(38, 0) NOT NULL,
    ROWS_WRITTEN NUMBER(38, 0) NOT NULL,
    VARIANT VARCHAR NOT NULL,
    CHANGES_UPTO TIMESTAMP_NTZ,
    STARTED_AT TIMESTAMP_NTZ NOT NULL,
    PUBLISHED_AT TIMESTAMP_NTZ NOT NULL
);

-- Which landed batches each graph run was started for (consumes the trigger stream; end-to-end latency).
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.{{ run_batches_table }} (
    RUN_ID VARCHAR NOT NULL,
    BATCH_ID VARCHAR NOT NULL,
    RAW_TABLE VARCHAR NOT NULL,
    EXTRACTED_AT TIMESTAMP_NTZ NOT NULL
);

-- Table and mart specs the procedures read (written by `finsight dag deploy`, and by the local runner).
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.{{ pipeline_catalog_table }} (
    KIND VARCHAR NOT NULL,
    NAME VARCHAR NOT NULL,
    SPEC VARCHAR NOT NULL
);

-- Retention runs: RAW pruning after merge, 7-year CURATED / MARTS retention.
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.{{ retention_runs_table }} (
    RUN_ID VARCHAR NOT NULL,
    TABLE_NAME VARCHAR NOT NULL,
    POLICY VARCHAR NOT NULL,
    ROWS_DELETED NUMBER(38, 0) NOT NULL,
    CUTOFF TIMESTAMP_NTZ NOT NULL,
    RAN_AT TIMESTAMP_NTZ NOT NULL
);

-- The hourly graph's root is a triggered task on this stream: it starts when batches have landed.
CREATE STREAM IF NOT EXISTS {{ database }}.{{ schemas.ops }}.{{ landed_stream }}
ON TABLE {{ database }}.{{ schemas.ops }}.{{ manifest_table }}
APPEND_ONLY = TRUE;
