-- RAW: one TRANSIENT landing table per source table (no fail-safe: RAW is replayable from S3), loaded by Snowpipe;
-- rows are pruned retention.raw_table_days after their batch merged (task FINSIGHT_RETENTION).
-- Repeatable: reruns when the catalog changes. New columns are added, never dropped (schema evolution).
{%- if is_local %}
CREATE STAGE IF NOT EXISTS {{ database }}.{{ schemas.raw }}.{{ stage }} URL = '{{ stage_url }}';
{%- else %}
CREATE STAGE IF NOT EXISTS {{ database }}.{{ schemas.raw }}.{{ stage }}
    URL = '{{ stage_url }}'
    STORAGE_INTEGRATION = {{ storage_integration }};
{%- endif %}
{% for t in tables %}
CREATE TRANSIENT TABLE IF NOT EXISTS {{ database }}.{{ schemas.raw }}.{{ t.raw }} (
    {%- for c in t.columns %}
    {{ c.name }} {{ c.type }},
    {%- endfor %}
    {%- for m in meta_columns %}
    {{ m.name }} {{ m.type }}{{ "," if not loop.last }}
    {%- endfor %}
);
{%- for c in t.columns + meta_columns %}
ALTER TABLE {{ database }}.{{ schemas.raw }}.{{ t.raw }} ADD COLUMN IF NOT EXISTS {{ c.name }} {{ c.type }};
{%- endfor %}
{%- if not is_local %}
-- Snowpipe adds a column a source gained before loading it (the local pipe player does the same); it never widens
-- a type: `finsight migrate` widens a NUMBER the catalog declares wider before this script (precision only)
ALTER TABLE {{ database }}.{{ schemas.raw }}.{{ t.raw }} SET ENABLE_SCHEMA_EVOLUTION = TRUE;
{%- endif %}
{%- if t.pk_snapshot %}

CREATE TRANSIENT TABLE IF NOT EXISTS {{ database }}.{{ schemas.raw }}.{{ t.raw }}{{ pk_snapshot_suffix }} (
    {%- for k in t.primary_key %}
    {%- for c in t.columns if c.name == k %}
    {{ c.name }} {{ c.type }},
    {%- endfor %}
    {%- endfor %}
    {%- for m in meta_columns %}
    {{ m.name }} {{ m.type }}{{ "," if not loop.last }}
    {%- endfor %}
);
{%- endif %}
{% endfor %}
{%- for p in pipes %}

CREATE PIPE IF NOT EXISTS {{ database }}.{{ schemas.raw }}.{{ p.name }}
AUTO_INGEST = TRUE
{%- if not is_local %}
ERROR_INTEGRATION = {{ error_integration }}
AWS_SNS_TOPIC = '{{ raw_events_topic_arn }}'
{%- endif %}
AS
{{ p.copy_sql }};
{%- endfor %}
{%- if not is_local %}

-- Files Snowpipe could not load: its error notifications reach the quarantine Lambda (cdktf/), which moves each
-- file to the quarantine prefix and writes one JSON record per file that this pipe loads into OPS.LOAD_ERRORS.
-- Locally the pipe player inserts the same record itself (finsight/local/snowpipe.py).
CREATE PIPE IF NOT EXISTS {{ database }}.{{ schemas.raw }}.{{ load_errors_pipe.name }}
AUTO_INGEST = TRUE
ERROR_INTEGRATION = {{ error_integration }}
AWS_SNS_TOPIC = '{{ raw_events_topic_arn }}'
AS
{{ load_errors_pipe.copy_sql }};
{%- endif %}
