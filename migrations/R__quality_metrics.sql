-- Snowflake-native data metrics beside the CHECK_<TABLE> procedures (which also run locally): Data Metric Functions
-- on every CURATED table, evaluated when the table changes. Results: SNOWFLAKE.LOCAL.DATA_QUALITY_MONITORING_RESULTS.
-- A DMF cannot be attached twice: each attachment ignores only "already exists", so this script can run again.
{%- if not is_local %}
{%- for t in quality_metrics %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} SET DATA_METRIC_SCHEDULE = 'TRIGGER_ON_CHANGES';
{%- for a in t.metrics %}
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
