-- CURATED (and MARTS) history older than curated_archive.hot_months: Snowflake-managed Apache Iceberg tables on S3,
-- through the external volume cdktf's Snowflake stack creates (finsight.catalog.archive_volume), tiered by the
-- bucket's S3 lifecycle. OPS.ARCHIVE_CURATED (snowpark/archive.py, daily retention graph) moves the rows monthly;
-- HISTORY.<table> is what readers query for the full 7 years: the hot rows plus the archived rows whose key is not
-- hot (between the move's copy and delete steps a key is in both: the hot row wins, never a duplicate).
-- Locally (fakesnow) finsight/local/fakesnow_compat.py reduces the Iceberg clauses to a plain table.
-- Columns schema evolution added at run time are rendered too (finsight.migrate.live_migration_vars), so a deploy
-- after a source gained a column re-creates the views with it.
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
{%- set g = governance %}
{%- set archived = a.tables | map(attribute="name") | list %}

-- Access to the archive, granted by its owner (managed access). The masking and row-access policies of the
-- archive tables and HISTORY views are attached by migrations-governance/A__attach_policies.sql, which runs after
-- this script on every deploy (CREATE OR REPLACE VIEW drops a view's policies): readers query HISTORY, whose views
-- carry CURATED's policies; the archive move runs as the archiver role, for which the policies return clear values.
{%- if not is_local %}
ALTER SCHEMA {{ database }}.{{ a.schema }} ENABLE MANAGED ACCESS;
ALTER SCHEMA {{ database }}.{{ a.history_schema }} ENABLE MANAGED ACCESS;
GRANT USAGE ON SCHEMA {{ database }}.{{ a.history_schema }} TO ROLE {{ g.roles.governance }};
GRANT USAGE ON SCHEMA {{ database }}.{{ a.schema }} TO ROLE {{ g.roles.governance }};
{%- for reader in [g.roles.analyst, g.roles.pii_reader] %}
REVOKE ALL PRIVILEGES ON SCHEMA {{ database }}.{{ a.schema }} FROM ROLE {{ reader }};
GRANT USAGE ON SCHEMA {{ database }}.{{ a.history_schema }} TO ROLE {{ reader }};
GRANT SELECT ON ALL VIEWS IN SCHEMA {{ database }}.{{ a.history_schema }} TO ROLE {{ reader }};
GRANT SELECT ON FUTURE VIEWS IN SCHEMA {{ database }}.{{ a.history_schema }} TO ROLE {{ reader }};
{%- endfor %}

-- The archive move runs as the archiver role, OPS.ARCHIVE_CURATED's owner (`finsight dag deploy`): it reads and
-- deletes old CURATED/MARTS rows, writes the archive tables and its run record.
{%- for layer in ["curated", "marts", "ops"] %}
GRANT USAGE ON SCHEMA {{ database }}.{{ schemas[layer] }} TO ROLE {{ g.roles.archiver }};
{%- endfor %}
GRANT USAGE ON SCHEMA {{ database }}.{{ a.schema }} TO ROLE {{ g.roles.archiver }};
{%- for layer in ["curated", "marts"] %}
GRANT SELECT, DELETE ON ALL TABLES IN SCHEMA {{ database }}.{{ schemas[layer] }} TO ROLE {{ g.roles.archiver }};
{%- endfor %}
GRANT SELECT ON ALL TABLES IN SCHEMA {{ database }}.{{ schemas.ops }} TO ROLE {{ g.roles.archiver }};
GRANT INSERT ON TABLE {{ database }}.{{ schemas.ops }}.{{ retention_runs_table }} TO ROLE {{ g.roles.archiver }};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {{ database }}.{{ a.schema }}
TO ROLE {{ g.roles.archiver }};

{%- endif %}
{%- else %}
SELECT 'no curated_archive in this environment: CURATED keeps all its history' AS CURATED_ARCHIVE;
{%- endif %}
