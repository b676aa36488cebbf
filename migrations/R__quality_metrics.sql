-- Snowflake-native data metrics beside the CHECK_<TABLE> procedures (which also run locally): Data Metric Functions
-- on every CURATED table, evaluated when the table changes. Results: SNOWFLAKE.LOCAL.DATA_QUALITY_MONITORING_RESULTS.
-- A DMF cannot be attached twice: each attachment ignores only "already exists", so this script can run again.
{%- if not is_local %}
{%- for t in quality_metrics %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} SET DATA_METRIC_SCHEDULE = 'TRIGGER_ON_CHANGES';
{%- set attach = ["SNOWFLAKE.CORE.ROW_COUNT ON ()", "SNOWFLAKE.CORE.FRESHNESS ON (_EXTRACTED_AT)"] %}
{%- if t.unique_key %}{% set attach = attach + ["SNOWFLAKE.CORE.DUPLICATE_COUNT ON (" ~ t.unique_key ~ ")"] %}{% endif %}
{%- for c in t.nullable %}{% set attach = attach + ["SNOWFLAKE.CORE.NULL_COUNT ON (" ~ c ~ ")"] %}{% endfor %}
{%- for a in attach %}
EXECUTE IMMEDIATE $$
BEGIN
    ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} ADD DATA METRIC FUNCTION {{ a }};
EXCEPTION
    WHEN OTHER THEN
        IF (NOT CONTAINS(LOWER(SQLERRM), 'already')) THEN
            RAISE;
        END IF;
END;
$$;
{%- endfor %}
{%- endfor %}
{%- endif %}
SELECT 1;
