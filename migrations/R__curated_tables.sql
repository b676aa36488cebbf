-- CURATED: current state of every source table, merged idempotently from RAW by the Snowpark MERGE procedure.
-- Kept {{ curated_retention_days }} days (7 years) by the retention task; PII columns are masked for other roles.
{#- noqa LT01: sqlfluff's snowflake dialect parses a masking policy signature as a function call. #}
CREATE MASKING POLICY IF NOT EXISTS {{ database }}.{{ schemas.curated }}.PII_MASK AS (val VARCHAR) -- noqa: LT01
RETURNS VARCHAR ->
CASE WHEN IS_ROLE_IN_SESSION('{{ role }}') THEN val ELSE '***MASKED***' END;
{% for t in tables %}
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.curated }}.{{ t.curated }} (
    {%- for c in t.columns %}
    {{ c.name }} {{ c.type }},
    {%- endfor %}
    {%- for m in meta_columns %}
    {{ m.name }} {{ m.type }},
    {%- endfor %}
    _MERGED_AT TIMESTAMP_NTZ
)
COMMENT = '{{ t.comment }}';
{%- for m in meta_columns %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} ADD COLUMN IF NOT EXISTS {{ m.name }} {{ m.type }};
{%- endfor %}
{%- for c in t.columns %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} ADD COLUMN IF NOT EXISTS {{ c.name }} {{ c.type }};
{%- if c.pii %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} MODIFY COLUMN {{ c.name }}
SET MASKING POLICY {{ database }}.{{ schemas.curated }}.PII_MASK FORCE;
{%- endif %}
{%- endfor %}
{% endfor %}
