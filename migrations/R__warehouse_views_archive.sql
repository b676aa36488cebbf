-- CURATED (and MARTS) history older than curated_archive.hot_months: Snowflake-managed Apache Iceberg tables on S3,
-- through the external volume cdktf's Snowflake stack creates (finsight.catalog.archive_volume), tiered by the
-- bucket's S3 lifecycle. OPS.ARCHIVE_CURATED (snowpark/archive.py, daily retention graph) moves the rows monthly;
-- HISTORY.<table> is what readers query for the full 7 years: the hot rows plus the archived rows whose key is not
-- hot (between the move's copy and delete steps a key is in both: the hot row wins, never a duplicate).
-- Locally (fakesnow) finsight/local/fakesnow_compat.py reduces the Iceberg clauses to a plain table.
-- Named to run after R__curated_tables.sql and R__warehouse_tables.sql (schemachange applies R__ scripts by name).
{%- if archive %}
{%- set a = archive %}
CREATE SCHEMA IF NOT EXISTS {{ database }}.{{ a.schema }};
CREATE SCHEMA IF NOT EXISTS {{ database }}.{{ a.history_schema }};
{% for t in a.tables %}
CREATE ICEBERG TABLE IF NOT EXISTS {{ database }}.{{ a.schema }}.{{ t.name }} (
    {%- for c in t.columns %}
    {{ c.name }} {{ c.iceberg_type }}{{ "," if not loop.last }}
    {%- endfor %}
)
EXTERNAL_VOLUME = '{{ a.external_volume }}'
CATALOG = 'SNOWFLAKE'
BASE_LOCATION = '{{ t.base_location }}';

CREATE OR REPLACE VIEW {{ database }}.{{ a.history_schema }}.{{ t.name }} AS
SELECT
    {%- for c in t.columns %}
    H.{{ c.name }}{{ "," if not loop.last }}
    {%- endfor %}
FROM {{ database }}.{{ t.hot }} AS H
UNION ALL
SELECT
    {%- for c in t.columns %}
    {%- if c.json %}
    PARSE_JSON(A.{{ c.name }}) AS {{ c.name }}{{ "," if not loop.last }}
    {%- else %}
    A.{{ c.name }}{{ "," if not loop.last }}
    {%- endif %}
    {%- endfor %}
FROM {{ database }}.{{ a.schema }}.{{ t.name }} AS A
WHERE NOT EXISTS (
    SELECT 1 FROM {{ database }}.{{ t.hot }} AS HOT
    WHERE
        {%- for k in t["keys"] %}
        {{ "AND " if not loop.first }}HOT.{{ k }} = A.{{ k }}
        {%- endfor %}
);
{%- endfor %}
{%- else %}
SELECT 'no curated_archive in this environment: CURATED keeps all its history' AS CURATED_ARCHIVE;
{%- endif %}
