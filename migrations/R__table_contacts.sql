-- Who to reach about each CURATED table (Snowsight shows it beside the table): a contact per team (its alert topic
-- and the shared on-call path) and, on every table, STEWARD = the owning team from the catalog (the source's owner
-- in environments/base.yaml), SUPPORT = DevOps for the platform. Statements: finsight/ops/ownership.py contact_sql.
-- Snowflake only (fakesnow has no contacts); each statement is run as a string, which sqlfluff need not parse.
-- Named to run after R__curated_tables.sql (schemachange runs repeatable scripts in name order): the tables exist.
{%- if is_local %}
SELECT 'contacts are Snowflake only' AS contacts;
{%- else %}
{%- for statement in contacts %}
EXECUTE IMMEDIATE $$
{{ statement }}
$$;
{%- endfor %}
{%- endif %}
