-- Access to the data schemas, granted by their owner, the pipeline role (managed access: only the owner grants):
--   RAW      pipeline (owner) + loader only;  CURATED  analysts, PII masked;  MARTS  analysts.
-- The governance role may see RAW and CURATED, to attach its policies there. The policies themselves (masking,
-- row access, password) are created and attached by migrations-governance/, which the governance deploy user runs
-- after these scripts: the pipeline's service user does not hold the governance role (docs/security.md, 7.2).
{%- set g = governance %}
{%- if not is_local %}
{%- for layer in ["raw", "curated", "marts", "ops"] %}
ALTER SCHEMA {{ database }}.{{ schemas[layer] }} ENABLE MANAGED ACCESS;
{%- endfor %}
GRANT USAGE ON SCHEMA {{ database }}.{{ schemas.curated }} TO ROLE {{ g.roles.governance }};
GRANT USAGE ON SCHEMA {{ database }}.{{ schemas.raw }} TO ROLE {{ g.roles.governance }};
GRANT USAGE ON SCHEMA {{ database }}.{{ schemas.raw }} TO ROLE {{ g.roles.loader }};
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {{ database }}.{{ schemas.raw }} TO ROLE {{ g.roles.loader }};
GRANT SELECT, INSERT ON FUTURE TABLES IN SCHEMA {{ database }}.{{ schemas.raw }} TO ROLE {{ g.roles.loader }};
{%- for reader in [g.roles.analyst, g.roles.pii_reader] %}
REVOKE ALL PRIVILEGES ON SCHEMA {{ database }}.{{ schemas.raw }} FROM ROLE {{ reader }};
{%- for layer in ["curated", "marts"] %}
GRANT USAGE ON SCHEMA {{ database }}.{{ schemas[layer] }} TO ROLE {{ reader }};
GRANT SELECT ON ALL TABLES IN SCHEMA {{ database }}.{{ schemas[layer] }} TO ROLE {{ reader }};
GRANT SELECT ON FUTURE TABLES IN SCHEMA {{ database }}.{{ schemas[layer] }} TO ROLE {{ reader }};
{%- endfor %}
{%- endfor %}
{%- else %}
SELECT 'grants and managed access are Snowflake only' AS ACCESS_GRANTS;
{%- endif %}
