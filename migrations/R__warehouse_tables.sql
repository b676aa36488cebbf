-- Repeatable: per-table tombstones (deleted keys remembered so no replay or late batch resurrects them) and the
-- MARTS tables, whose columns come from snowpark/marts/<mart>/metadata.yaml.
{% for t in tables %}
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.ops }}.{{ t.raw }}{{ tombstone_suffix }} (
    {%- for k in t.primary_key %}
    {%- for c in t.columns if c.name == k %}
    {{ c.name }} {{ c.type }},
    {%- endfor %}
    {%- endfor %}
    _BATCH_ID VARCHAR,
    _EXTRACTED_AT TIMESTAMP_NTZ,
    _DELETED_AT TIMESTAMP_NTZ
);
{%- endfor %}
{% for m in marts %}
CREATE TABLE IF NOT EXISTS {{ database }}.{{ schemas.marts }}.{{ m.table }} (
    {%- for c in m.columns %}
    {{ c.name }} {{ c.type }},
    {%- endfor %}
    _RUN_ID VARCHAR,
    _BUILT_AT TIMESTAMP_NTZ
)
COMMENT = '{{ m.comment }}';
{%- endfor %}
