-- Data quality (issue 9): every check evaluated by the CHECK_<TABLE> tasks, and the batches held out of CURATED.

-- One row per check per run: what it observed, what it expected, the severity, a sample of offending keys, its SQL.
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.quality_results (
    run_id VARCHAR NOT NULL,
    check_id VARCHAR NOT NULL,
    check_name VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    column_name VARCHAR,
    observed VARCHAR,
    expected VARCHAR,
    severity VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    sample_keys VARCHAR,
    sql_text VARCHAR,
    detail VARCHAR,
    checked_at TIMESTAMP_NTZ NOT NULL
);

-- Batches a `quarantine` check holds out of CURATED; MERGE skips them until RELEASED_AT is set (`finsight dq release`).
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.quality_holds (
    raw_table VARCHAR NOT NULL,
    batch_id VARCHAR NOT NULL,
    check_id VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    held_at TIMESTAMP_NTZ NOT NULL,
    released_at TIMESTAMP_NTZ
);
