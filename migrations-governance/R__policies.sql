-- The governance policies, owned by the governance role and run by the governance deploy user (never by the
-- pipeline's service user, which does not hold that role): PII masking (clear text for the PII-reader role only,
-- by CURRENT_ROLE: no inheritance through SYSADMIN), an entitlement row-access policy, and the password policy for
-- human users. A__attach_policies.sql attaches them; migrations/R__access_grants.sql holds the schema grants.
-- The API streams' VARIANT payload ({{ governance.raw_payload }}) holds the whole provider record, PII included: it
-- is masked too (NULL for every role that may not read PII; in RAW the pipeline, which transforms it, reads it).
-- The archive move (OPS.ARCHIVE_CURATED) runs as the archiver role, its owner: INVOKER_ROLE() is that role inside
-- an owner's-rights procedure (docs: INVOKER_ROLE), so what it copies into ARCHIVE is the clear value.
-- Account-level objects (roles, users, network policies, monitors, account parameters) are cdktf's Snowflake stack.
-- Locally (fakesnow) the masking policies are applied by finsight/local/column_policies.py for the session's role;
-- managed access, row access and password policies are Snowflake's alone.
{%- set g = governance %}
{%- set gov = database ~ "." ~ g.governance_schema %}
{%- if not is_local %}
-- schemachange may have created the schema for its history table first: managed access either way
CREATE SCHEMA IF NOT EXISTS {{ gov }} WITH MANAGED ACCESS;
ALTER SCHEMA {{ gov }} ENABLE MANAGED ACCESS;
{%- else %}
CREATE SCHEMA IF NOT EXISTS {{ gov }};
{%- endif %}

{#- noqa LT01: sqlfluff's snowflake dialect parses a policy signature as a function call. #}
{#- A policy's body is written once and set twice: CREATE ... IF NOT EXISTS never changes an existing policy, so the
    ALTER ... SET BODY after it makes a changed body deploy (docs: ALTER MASKING POLICY, ALTER ROW ACCESS POLICY). #}
{%- set clear_for_pii -%}
CURRENT_ROLE() = '{{ g.roles.pii_reader }}'
        OR INVOKER_ROLE() = '{{ g.roles.archiver }}'
{%- endset %}
{%- set pii_mask_body -%}
CASE
    WHEN
        {{ clear_for_pii }}
        THEN val
    ELSE '***MASKED***'
END
{%- endset %}
{%- set payload_mask_body -%}
CASE
    WHEN
        {{ clear_for_pii }}
        THEN val
END
{%- endset %}
{%- set raw_payload_mask_body -%}
CASE
    WHEN
        {{ clear_for_pii }}
        OR INVOKER_ROLE() = '{{ g.roles.pipeline }}'
        THEN val
END
{%- endset %}
{%- for name, arg_type, body in [
    ("PII_MASK", "VARCHAR", pii_mask_body),
    ("PAYLOAD_MASK", "VARIANT", payload_mask_body),
    ("PAYLOAD_TEXT_MASK", "VARCHAR", payload_mask_body),
    ("RAW_PAYLOAD_MASK", "VARIANT", raw_payload_mask_body),
] %}
CREATE MASKING POLICY IF NOT EXISTS {{ gov }}.{{ name }} AS (val {{ arg_type }}) -- noqa: LT01
RETURNS {{ arg_type }} ->
{{ body }};
ALTER MASKING POLICY {{ gov }}.{{ name }} SET BODY ->
{{ body }};
{%- endfor %}
{%- if not is_local %}
{%- if g.row_access_column %}

-- Which role sees which {{ g.row_access_column }} (NULL: all of them); the pipeline role always sees every row.
CREATE TABLE IF NOT EXISTS {{ gov }}.ROW_ENTITLEMENTS (
    role_name VARCHAR NOT NULL,
    {{ g.row_access_column | lower }} NUMBER(38, 0)
);
MERGE INTO {{ gov }}.ROW_ENTITLEMENTS AS e
USING (
    SELECT '{{ g.roles.analyst }}' AS role_name
    UNION ALL
    SELECT '{{ g.roles.pii_reader }}' AS role_name
) AS r
    ON e.role_name = r.role_name
WHEN NOT MATCHED THEN INSERT (role_name) VALUES (r.role_name);
{%- set entitled_rows_body -%}
IS_ROLE_IN_SESSION('{{ g.roles.pipeline }}')
OR EXISTS (
    SELECT 1 FROM {{ gov }}.ROW_ENTITLEMENTS AS e
    WHERE
        e.role_name = CURRENT_ROLE()
        AND (e.{{ g.row_access_column | lower }} IS NULL OR e.{{ g.row_access_column | lower }} = key) -- noqa: RF03
)
{%- endset %}
CREATE ROW ACCESS POLICY IF NOT EXISTS {{ gov }}.ENTITLED_ROWS AS (key NUMBER) -- noqa: LT01
RETURNS BOOLEAN ->
{{ entitled_rows_body }};
ALTER ROW ACCESS POLICY {{ gov }}.ENTITLED_ROWS SET BODY ->
{{ entitled_rows_body }};
{%- endif %}
{%- set pw = g.password_policy %}

-- Human users (service users have no password): PCI DSS 8.3.
CREATE PASSWORD POLICY IF NOT EXISTS {{ gov }}.HUMAN_PASSWORDS;
ALTER PASSWORD POLICY {{ gov }}.HUMAN_PASSWORDS SET
PASSWORD_MIN_LENGTH = {{ pw.min_length }}
PASSWORD_MAX_AGE_DAYS = {{ pw.max_age_days }}
PASSWORD_MAX_RETRIES = {{ pw.max_retries }}
PASSWORD_LOCKOUT_TIME_MINS = {{ pw.lockout_time_mins }}
PASSWORD_HISTORY = {{ pw.history }};
ALTER ACCOUNT UNSET PASSWORD POLICY;
ALTER ACCOUNT SET PASSWORD POLICY {{ gov }}.HUMAN_PASSWORDS;

{%- endif %}
