-- Attach the governance policies (R__policies.sql) to the objects the pipeline's migrations own. An always script:
-- it runs on every deploy, after migrations/, so an object the pipeline re-created in the same deploy (CREATE OR
-- REPLACE VIEW drops a view's policies) gets its policies back. Runs as the governance deploy user, whose role
-- alone holds APPLY MASKING / ROW ACCESS POLICY; the pipeline role can neither set nor unset a policy.
--   CURATED  PII_MASK on every `pci: pii` column, PAYLOAD_MASK on the API streams' {{ governance.raw_payload }}
--   RAW      RAW_PAYLOAD_MASK on {{ governance.raw_payload }} (the pipeline, which transforms it, reads it clear)
--   ARCHIVE / HISTORY (curated_archive): the same masks (text columns in the archive), row access on the views
{%- set g = governance %}
{%- set gov = database ~ "." ~ g.governance_schema %}
{%- for t in tables %}
{%- for c in t.columns if c.pii %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} MODIFY COLUMN {{ c.name }}
SET MASKING POLICY {{ gov }}.PII_MASK FORCE;
{%- endfor %}
{%- for c in t.columns if c.name == g.raw_payload %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} MODIFY COLUMN {{ c.name }}
SET MASKING POLICY {{ gov }}.PAYLOAD_MASK FORCE;
ALTER TABLE {{ database }}.{{ schemas.raw }}.{{ t.raw }} MODIFY COLUMN {{ c.name }}
SET MASKING POLICY {{ gov }}.RAW_PAYLOAD_MASK FORCE;
{%- endfor %}
{%- endfor %}
{%- if not is_local and g.row_access_column %}
{%- for name in g.row_access_tables %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ name }} DROP ALL ROW ACCESS POLICIES;
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ name }}
ADD ROW ACCESS POLICY {{ gov }}.ENTITLED_ROWS ON ({{ g.row_access_column }});
{%- endfor %}
{%- endif %}
{%- if archive %}
{%- set a = archive %}
{%- set archived = a.tables | map(attribute="name") | list %}
{%- for t in tables if t.curated in archived %}
{%- for c in t.columns if c.pii or c.name == g.raw_payload %}
{%- set text_policy = "PAYLOAD_TEXT_MASK" if c.name == g.raw_payload else "PII_MASK" %}
{%- set view_policy = "PAYLOAD_MASK" if c.name == g.raw_payload else "PII_MASK" %}
ALTER TABLE {{ database }}.{{ a.schema }}.{{ t.curated }} MODIFY COLUMN {{ c.name }}
SET MASKING POLICY {{ gov }}.{{ text_policy }} FORCE;
ALTER VIEW {{ database }}.{{ a.history_schema }}.{{ t.curated }} MODIFY COLUMN {{ c.name }}
SET MASKING POLICY {{ gov }}.{{ view_policy }} FORCE;
{%- endfor %}
{%- endfor %}
{%- if not is_local %}
{%- for name in g.row_access_tables if name in archived %}
ALTER VIEW {{ database }}.{{ a.history_schema }}.{{ name }} DROP ALL ROW ACCESS POLICIES;
ALTER VIEW {{ database }}.{{ a.history_schema }}.{{ name }}
ADD ROW ACCESS POLICY {{ gov }}.ENTITLED_ROWS ON ({{ g.row_access_column }});
{%- endfor %}
{%- endif %}
{%- endif %}
