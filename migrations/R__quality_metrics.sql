-- Snowflake-native data metrics beside the CHECK_<TABLE> procedures (which also run locally): Data Metric Functions
-- on every CURATED table, evaluated when the table changes. Results: SNOWFLAKE.LOCAL.DATA_QUALITY_MONITORING_RESULTS.
-- Each DMF is chosen by the column's type (finsight/snowflake_dmf.py): a system DMF refuses a column type outside its
-- "Allowed data types" (FRESHNESS takes no TIMESTAMP_NTZ, NULL_COUNT no BOOLEAN), so the NTZ freshness is the
-- platform's own DMF, created below. Attaching any DMF needs, for the pipeline role that owns these tables, the
-- database role SNOWFLAKE.DATA_METRIC_USER and EXECUTE DATA METRIC FUNCTION on the account (cdktf's Snowflake stack).
-- A DMF cannot be attached twice: each attachment ignores only "already exists", so this script can run again.
-- A custom DMF's body cannot be altered in place: a new body comes with a new versioned name.
{%- if not is_local %}
{%- for f in custom_dmfs.functions %}
EXECUTE IMMEDIATE $$
BEGIN
    CREATE DATA METRIC FUNCTION IF NOT EXISTS {{ custom_dmfs.schema }}.{{ f.name }}{{ f.signature }}
    RETURNS NUMBER
    COMMENT = '{{ f.comment }}'
    AS '{{ f.body | replace("'", "''") }}';
END;
$$;
{%- endfor %}
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
