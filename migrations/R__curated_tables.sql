-- CURATED: current state of every source table, merged idempotently from RAW by the Snowpark MERGE procedure.
-- Kept {{ curated_retention_days }} days (7 years) by the retention task. PII columns are masked by the governance
-- role's policy (migrations-governance/), which also applies it.
-- Clustered by the first primary-key column: the MERGE prunes its target by the batch's ranges of that column
-- (snowpark/merge.py key_ranges), and clustering keeps those ranges in few micro-partitions
-- (https://docs.snowflake.com/en/user-guide/tables-clustering-keys,
-- https://docs.snowflake.com/en/user-guide/tables-clustering-micropartitions). ALTER ... CLUSTER BY keeps existing
-- tables in step with the key (a no-op when it is unchanged).
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
CLUSTER BY ({{ t.primary_key[0] }})
COMMENT = '{{ t.comment }}';
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} CLUSTER BY ({{ t.primary_key[0] }});
{%- for m in meta_columns %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} ADD COLUMN IF NOT EXISTS {{ m.name }} {{ m.type }};
{%- endfor %}
{%- for c in t.columns %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} ADD COLUMN IF NOT EXISTS {{ c.name }} {{ c.type }};
{%- endfor %}
{% endfor %}
