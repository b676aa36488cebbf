-- Access control of the warehouse, owned by the governance role (not the pipeline role that owns the data):
-- PII masking (clear text for the PII-reader role only, by CURRENT_ROLE: no inheritance through SYSADMIN), an
-- entitlement row-access policy, the password policy for human users, and the schema grants:
--   RAW      pipeline (owner) + loader only;  CURATED  analysts, PII masked;  MARTS  analysts.
-- The API streams' VARIANT payload ({{ governance.raw_payload }}) holds the whole provider record, PII included: it
-- is masked too (NULL for every role that may not read PII; in RAW the pipeline, which transforms it, reads it).
-- The archive move (OPS.ARCHIVE_CURATED) runs as the archiver role, its owner: INVOKER_ROLE() is that role inside
-- an owner's-rights procedure (docs: INVOKER_ROLE), so what it copies into ARCHIVE is the clear value.
-- Account-level objects (roles, network policies, monitors, account parameters) are cdktf's Snowflake stack.
-- Locally (fakesnow) the masking policies are applied by finsight/local/column_policies.py for the session's role;
-- managed access, grants, row access and password policies are Snowflake's alone.
{%- set g = governance %}
{%- set gov = database ~ "." ~ g.governance_schema %}
{%- if not is_local %}
-- As the owner of the data schemas: managed access (only the owner grants; object owners cannot), and the
-- governance role may see the CURATED tables it puts policies on.
USE ROLE {{ g.roles.pipeline }};
{%- for layer in ["raw", "curated", "marts", "ops"] %}
ALTER SCHEMA {{ database }}.{{ schemas[layer] }} ENABLE MANAGED ACCESS;
{%- endfor %}
GRANT USAGE ON SCHEMA {{ database }}.{{ schemas.curated }} TO ROLE {{ g.roles.governance }};
GRANT USAGE ON SCHEMA {{ database }}.{{ schemas.raw }} TO ROLE {{ g.roles.governance }};

USE ROLE {{ g.roles.governance }};
CREATE SCHEMA IF NOT EXISTS {{ gov }} WITH MANAGED ACCESS;
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
{%- for t in tables %}
{%- for c in t.columns if c.pii %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} MODIFY COLUMN {{ c.name }}
SET MASKING POLICY {{ gov }}.PII_MASK FORCE;
{%- endfor %}
{%- for c in t.columns if c.name == g.raw_payload %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ t.curated }} MODIFY COLUMN {{ c.name }}
SET MASKING POLICY {{ gov }}.PAYLOAD_MASK FORCE;
{%- endfor %}
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
{%- for name in g.row_access_tables %}
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ name }} DROP ALL ROW ACCESS POLICIES;
ALTER TABLE {{ database }}.{{ schemas.curated }}.{{ name }}
ADD ROW ACCESS POLICY {{ gov }}.ENTITLED_ROWS ON ({{ g.row_access_column }});
{%- endfor %}
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

-- Schema grants, as the owner of the data schemas.
USE ROLE {{ g.roles.pipeline }};
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
-- The earlier pipeline-owned CURATED.PII_MASK is detached above (FORCE); drop it by hand once (sqlfluff cannot
-- parse DROP MASKING POLICY IF EXISTS, and a repeatable script must not fail on its second run).
{%- endif %}
