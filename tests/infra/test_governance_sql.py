"""migrations/R__governance.sql rendered for every cloud environment: who owns the policies, who sees PII, who reads
which schema, and the password rules, checked against the config (the rendered text is what schemachange runs)."""

from __future__ import annotations

import re

import pytest

from finsight import catalog
from finsight.config import load_environment
from finsight.migrate import render_all

ENVS = ("dev", "staging", "prod")


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [" ".join(s.split()) for s in body.split(";") if s.strip()]


@pytest.fixture(scope="module", params=ENVS)
def rendered(request: pytest.FixtureRequest) -> tuple:
    env = load_environment(request.param)
    scripts = render_all(env)
    return env, _statements(scripts["R__governance.sql"]), scripts


def _role_at(stmts: list[str], index: int) -> str:
    """The role a statement runs as: the last USE ROLE before it."""
    uses = [s.split()[-1] for s in stmts[:index] if s.startswith("USE ROLE ")]
    assert uses, f"statement {index} runs before any USE ROLE"
    return uses[-1]


def test_policies_are_created_and_applied_by_the_governance_role(rendered: tuple) -> None:
    env, stmts, _ = rendered
    roles = catalog.access_roles(env)
    policy_stmts = [i for i, s in enumerate(stmts) if "POLICY" in s and not s.startswith("ALTER ACCOUNT")]
    assert policy_stmts
    for i in policy_stmts:
        assert _role_at(stmts, i) == roles["governance"], stmts[i]
    assert stmts[-1].startswith("GRANT") or stmts[-1].startswith("REVOKE")
    assert _role_at(stmts, len(stmts)) == roles["pipeline"]  # schemachange records history as the pipeline role


def _policy(stmts: list[str], name: str) -> str:
    (create,) = [s for s in stmts if s.startswith("CREATE MASKING POLICY") and f".{name} AS" in s]
    return create


def test_pii_unmasks_for_the_pii_reader_and_the_archive_move_only(rendered: tuple) -> None:
    env, stmts, scripts = rendered
    roles = catalog.access_roles(env)
    create = _policy(stmts, "PII_MASK")
    assert f"{env.snowflake.database}.{catalog.GOVERNANCE_SCHEMA}.PII_MASK" in create
    assert (
        f"CASE WHEN CURRENT_ROLE() = '{roles['pii_reader']}' OR INVOKER_ROLE() = '{roles['archiver']}' THEN val "
        "ELSE '***MASKED***' END" in create
    )
    for name in ("PII_MASK", "PAYLOAD_MASK", "PAYLOAD_TEXT_MASK", "RAW_PAYLOAD_MASK"):
        body = _policy(stmts, name)
        assert "IS_ROLE_IN_SESSION" not in body  # no unmasking through a role hierarchy (SYSADMIN, pipeline)
        # the pipeline reads the payload clear in RAW only (it transforms it); nowhere else
        assert (roles["pipeline"] in body) == (name == "RAW_PAYLOAD_MASK"), name
    assert "MASKING" not in scripts["R__curated_tables.sql"]  # the pipeline no longer owns or sets a mask


def test_every_api_payload_is_masked_in_raw_and_curated(rendered: tuple) -> None:
    """Issue 21 item 6: `_RAW` holds the whole provider record (e.g. a PayPal payer's e-mail and name)."""
    env, stmts, scripts = rendered
    roles, gov = catalog.access_roles(env), catalog.GOVERNANCE_SCHEMA
    payload = catalog.governance_vars(env)["raw_payload"]
    api_tables = [t for t in env.warehouse_tables() if payload.lower() in t.landed_columns()]
    assert api_tables
    raw = _statements(scripts["R__raw_tables_and_pipes.sql"])
    for t in api_tables:
        curated = f"ALTER TABLE {env.snowflake.database}.{env.snowflake.schemas['curated']}.{t.curated_name} "
        assert (
            f"{curated}MODIFY COLUMN {payload} SET MASKING POLICY {env.snowflake.database}.{gov}.PAYLOAD_MASK FORCE"
            in stmts
        )
        landing = f"ALTER TABLE {env.snowflake.database}.{env.snowflake.schemas['raw']}.{t.raw_name} MODIFY COLUMN "
        i = raw.index(f"{landing}{payload} SET MASKING POLICY {env.snowflake.database}.{gov}.RAW_PAYLOAD_MASK FORCE")
        assert _role_at(raw, i) == roles["governance"]
    assert _role_at(raw, len(raw)) == roles["pipeline"]


def test_every_pii_column_gets_the_governance_mask(rendered: tuple) -> None:
    env, stmts, _ = rendered
    curated, gov = env.snowflake.schemas["curated"], catalog.GOVERNANCE_SCHEMA
    pattern = rf"ALTER TABLE \S+\.{curated}\.(\w+) MODIFY COLUMN (\w+) SET MASKING POLICY \S+\.{gov}\.PII_MASK FORCE"
    masked = {(m.group(1), m.group(2)) for s in stmts if (m := re.match(pattern, s))}
    expected = {
        (t.curated_name, c.upper())
        for t in env.warehouse_tables()  # API streams too (e.g. a wallet payer e-mail)
        for c, col in t.columns.items()
        if col.pci.value == "pii"
    }
    assert expected and masked == expected


def test_raw_is_readable_only_by_pipeline_and_loader(rendered: tuple) -> None:
    env, stmts, _ = rendered
    roles = catalog.access_roles(env)
    raw = f"{env.snowflake.database}.{env.snowflake.schemas['raw']}"
    grants = [s for s in stmts if s.startswith("GRANT") and f"SCHEMA {raw} " in s + " "]
    # the governance role may see RAW to put the payload's masking policy on it (R__raw_tables_and_pipes.sql)
    assert grants and {s.split("TO ROLE ")[1] for s in grants} == {roles["loader"], roles["governance"]}
    revoked = {s.split("FROM ROLE ")[1] for s in stmts if s.startswith("REVOKE") and f"SCHEMA {raw}" in s}
    assert revoked == {roles["analyst"], roles["pii_reader"]}


def test_analysts_read_curated_and_marts(rendered: tuple) -> None:
    env, stmts, _ = rendered
    roles = catalog.access_roles(env)
    for layer in ("curated", "marts"):
        schema = f"{env.snowflake.database}.{env.snowflake.schemas[layer]}"
        for role in (roles["analyst"], roles["pii_reader"]):
            for what in ("USAGE ON SCHEMA", "SELECT ON ALL TABLES IN SCHEMA", "SELECT ON FUTURE TABLES IN SCHEMA"):
                assert f"GRANT {what} {schema} TO ROLE {role}" in stmts, (what, schema, role)


def test_schemas_are_managed_access(rendered: tuple) -> None:
    env, stmts, _ = rendered
    for layer in ("raw", "curated", "marts", "ops"):
        assert f"ALTER SCHEMA {env.snowflake.database}.{env.snowflake.schemas[layer]} ENABLE MANAGED ACCESS" in stmts


def test_password_policy_follows_the_config(rendered: tuple) -> None:
    env, stmts, _ = rendered
    pw = env.governance.password_policy
    (alter,) = [s for s in stmts if s.startswith("ALTER PASSWORD POLICY")]
    for key, value in (("MIN_LENGTH", pw.min_length), ("MAX_AGE_DAYS", pw.max_age_days),
                       ("MAX_RETRIES", pw.max_retries), ("LOCKOUT_TIME_MINS", pw.lockout_time_mins),
                       ("HISTORY", pw.history)):  # fmt: skip
        assert f"PASSWORD_{key} = {value}" in alter
    assert any(s.startswith("ALTER ACCOUNT SET PASSWORD POLICY") and "HUMAN_PASSWORDS" in s for s in stmts)


def test_row_access_policy_on_every_table_with_the_entitlement_column(rendered: tuple) -> None:
    env, stmts, _ = rendered
    column = env.governance.row_access_column
    expected = {t.curated_name for t in env.tables() if column in t.landed_columns()}
    applied = {m.group(1) for s in stmts if (m := re.match(r"ALTER TABLE \S+\.(\w+) ADD ROW ACCESS POLICY", s))}
    assert expected and applied == expected
    (policy,) = [s for s in stmts if s.startswith("CREATE ROW ACCESS POLICY")]
    assert "ROW_ENTITLEMENTS" in policy and "CURRENT_ROLE()" in policy


def test_local_renders_the_masking_policies_only() -> None:
    """Locally the masking policies are applied by the local Snowflake (finsight/local/column_policies.py); grants,
    managed access, row access and password policies are Snowflake's alone."""
    stmts = _statements(render_all(load_environment("local"))["R__governance.sql"])
    assert any("SET MASKING POLICY" in s for s in stmts)
    assert all(
        s.startswith(("CREATE SCHEMA IF NOT EXISTS", "CREATE MASKING POLICY", "ALTER MASKING POLICY", "ALTER TABLE"))
        for s in stmts
    )
    assert not any("GRANT" in s or "ROW ACCESS" in s or "PASSWORD" in s or "USE ROLE" in s for s in stmts)


def test_catalog_roles_are_the_roles_cdktf_creates() -> None:
    from finsight_infra.naming import Names

    for name in ENVS:
        env = load_environment(name)
        n = Names(env)
        assert catalog.access_roles(env) == {
            "pipeline": n.sf_pipeline_role,
            "loader": n.sf_loader_role,
            "analyst": n.sf_analyst_role,
            "pii_reader": n.sf_pii_reader_role,
            "governance": n.sf_governance_role,
            "archiver": n.sf_archiver_role,
        }


def test_governance_role_can_reach_curated_before_it_applies_policies(rendered: tuple) -> None:
    """On a fresh account the script runs top to bottom once: the USAGE grant must precede the first policy."""
    env, stmts, _ = rendered
    roles = catalog.access_roles(env)
    curated = f"{env.snowflake.database}.{env.snowflake.schemas['curated']}"
    grant = stmts.index(f"GRANT USAGE ON SCHEMA {curated} TO ROLE {roles['governance']}")
    first_policy = next(i for i, s in enumerate(stmts) if "MASKING POLICY" in s)
    assert grant < first_policy
    assert _role_at(stmts, grant) == roles["pipeline"]  # the schema owner grants (managed access)


# CREATE ... POLICY IF NOT EXISTS leaves an existing policy untouched, so a changed body would never deploy; each
# policy's body is therefore set again, after its CREATE, with ALTER ... SET BODY (docs: "ALTER MASKING POLICY",
# https://docs.snowflake.com/en/sql-reference/sql/alter-masking-policy, and "ALTER ROW ACCESS POLICY",
# https://docs.snowflake.com/en/sql-reference/sql/alter-row-access-policy: "SET BODY -> <expression_on_arg_name>").
# The password policy's properties are ALTER ... SET already. fakesnow runs none of these: Snowflake-only rules.
_CREATE_POLICY = re.compile(r"^CREATE (MASKING|ROW ACCESS) POLICY IF NOT EXISTS (\S+) AS \(.*?\) RETURNS \w+ -> (.*)$")
_NOQA = re.compile(r" ?-- noqa: [A-Z]+[0-9]+(?:, ?[A-Z]+[0-9]+)*")


def test_every_policy_body_tracks_the_code(rendered: tuple) -> None:
    _, stmts, _ = rendered
    stmts = [_NOQA.sub("", s) for s in stmts]
    created = [(i, m) for i, s in enumerate(stmts) if (m := _CREATE_POLICY.match(s))]
    assert {m.group(1) for _, m in created} == {"MASKING", "ROW ACCESS"}
    for i, m in created:
        kind, name, body = m.groups()
        alter = f"ALTER {kind} POLICY {name} SET BODY -> {body}"
        assert alter in stmts[i + 1 :], f"{name}: a changed body never reaches an existing policy"
