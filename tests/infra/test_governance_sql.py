"""migrations-governance/ (the policies, run by the governance deploy user) and migrations/R__access_grants.sql (the
schema grants, by the pipeline) rendered for every cloud environment: who owns and attaches the policies, who sees
PII, who reads which schema, and the password rules, checked against the config (the rendered text is what
schemachange runs)."""

from __future__ import annotations

import re

import pytest

from finsight import catalog, migrate
from finsight.cli.sql_cmd import deploy_order, rendered_files
from finsight.config import load_environment
from finsight.migrate import GOVERNANCE_FOLDER, MIGRATIONS_FOLDER, render_all

ENVS = ("dev", "staging", "prod")
POLICIES, ATTACH, GRANTS = "R__policies.sql", "A__attach_policies.sql", "R__access_grants.sql"


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [" ".join(s.split()) for s in body.split(";") if s.strip()]


@pytest.fixture(scope="module", params=ENVS)
def rendered(request: pytest.FixtureRequest) -> tuple:
    """(env, governance statements: policies then attachments, the pipeline's migrations/ scripts)"""
    env = load_environment(request.param)
    governance = render_all(env, GOVERNANCE_FOLDER)
    return env, _statements(governance[POLICIES]) + _statements(governance[ATTACH]), render_all(env)


_POLICY_DDL = re.compile(r"\b(MASKING|ROW ACCESS|PASSWORD|AUTHENTICATION) POLICY\b|\bROW ACCESS POLICIES\b")


@pytest.mark.parametrize("env_name", ("local", *ENVS))
def test_policies_are_created_and_attached_in_the_governance_folder_only(env_name: str) -> None:
    """Every statement that creates, alters, sets or drops a policy ships in migrations-governance/; the pipeline's
    scripts neither touch one nor switch to the governance role (its user does not hold it: cdktf). Red when a
    policy statement or a `USE ROLE <governance>` moves back into migrations/, the DAG or the procedures."""
    env = load_environment(env_name)
    governance_role = catalog.access_roles(env)["governance"]
    files = rendered_files(env)
    outside = {
        name: s
        for name, text in files.items()
        if not name.startswith(f"{GOVERNANCE_FOLDER}/")
        for s in _statements(text)
        if _POLICY_DDL.search(s) and not s.startswith(("GRANT", "REVOKE"))
    }
    assert not outside, outside
    switches = [s for text in files.values() for s in _statements(text) if s == f"USE ROLE {governance_role}"]
    assert not switches
    inside = [s for n, text in files.items() if n.startswith(f"{GOVERNANCE_FOLDER}/") for s in _statements(text)]
    assert any("SET MASKING POLICY" in s for s in inside)
    assert not [s for s in inside if s.startswith("USE ROLE")]  # it runs as its identity's role, nothing else


def test_the_governance_folder_runs_as_its_own_user_role_and_key(rendered: tuple) -> None:
    """`finsight migrate` runs migrations/ as the pipeline's service user and then migrations-governance/ as the
    governance deploy user, each with its own secret and change history. Red when the governance run falls back to
    the pipeline's user, role or key."""
    env, _, _ = rendered
    pipeline, governance = migrate.identities(env)
    roles = catalog.access_roles(env)
    assert (pipeline.folder, pipeline.user, pipeline.role) == (MIGRATIONS_FOLDER, env.snowflake.user, roles["pipeline"])
    assert governance.folder == GOVERNANCE_FOLDER and governance.role == roles["governance"]
    assert governance.user == catalog.governance_deploy_user(env) != pipeline.user
    assert governance.secret == env.secrets.snowflake_governance_user != pipeline.secret
    assert governance.change_history != pipeline.change_history
    argv = migrate.schemachange_argv(env, {}, identity=governance)
    assert argv[argv.index("-u") + 1] == governance.user and argv[argv.index("-r") + 1] == governance.role
    assert argv[argv.index("-f") + 1].endswith(f"/{GOVERNANCE_FOLDER}")
    default = migrate.schemachange_argv(env, {})
    assert default[default.index("-u") + 1] == env.snowflake.user and default[default.index("-r") + 1] == pipeline.role


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
    assert not [n for n, sql in scripts.items() if "MASKING" in "".join(_statements(sql))]  # no pipeline mask


def test_every_api_payload_is_masked_in_raw_and_curated(rendered: tuple) -> None:
    """Issue 21 item 6: `_RAW` holds the whole provider record (e.g. a PayPal payer's e-mail and name)."""
    env, stmts, _ = rendered
    roles, gov = catalog.access_roles(env), catalog.GOVERNANCE_SCHEMA
    payload = catalog.governance_vars(env)["raw_payload"]
    api_tables = [t for t in env.warehouse_tables() if payload.lower() in t.landed_columns()]
    assert api_tables
    for t in api_tables:
        curated = f"ALTER TABLE {env.snowflake.database}.{env.snowflake.schemas['curated']}.{t.curated_name} "
        assert (
            f"{curated}MODIFY COLUMN {payload} SET MASKING POLICY {env.snowflake.database}.{gov}.PAYLOAD_MASK FORCE"
            in stmts
        )
        landing = f"ALTER TABLE {env.snowflake.database}.{env.snowflake.schemas['raw']}.{t.raw_name} MODIFY COLUMN "
        assert f"{landing}{payload} SET MASKING POLICY {env.snowflake.database}.{gov}.RAW_PAYLOAD_MASK FORCE" in stmts
    assert roles["pipeline"] in _policy(stmts, "RAW_PAYLOAD_MASK")


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
    env, _, scripts = rendered
    stmts = _statements(scripts[GRANTS])
    roles = catalog.access_roles(env)
    raw = f"{env.snowflake.database}.{env.snowflake.schemas['raw']}"
    grants = [s for s in stmts if s.startswith("GRANT") and f"SCHEMA {raw} " in s + " "]
    # the governance role may see RAW to put the payload's masking policy on it (R__raw_tables_and_pipes.sql)
    assert grants and {s.split("TO ROLE ")[1] for s in grants} == {roles["loader"], roles["governance"]}
    revoked = {s.split("FROM ROLE ")[1] for s in stmts if s.startswith("REVOKE") and f"SCHEMA {raw}" in s}
    assert revoked == {roles["analyst"], roles["pii_reader"]}


def test_analysts_read_curated_and_marts(rendered: tuple) -> None:
    env, _, scripts = rendered
    stmts = _statements(scripts[GRANTS])
    roles = catalog.access_roles(env)
    for layer in ("curated", "marts"):
        schema = f"{env.snowflake.database}.{env.snowflake.schemas[layer]}"
        for role in (roles["analyst"], roles["pii_reader"]):
            for what in ("USAGE ON SCHEMA", "SELECT ON ALL TABLES IN SCHEMA", "SELECT ON FUTURE TABLES IN SCHEMA"):
                assert f"GRANT {what} {schema} TO ROLE {role}" in stmts, (what, schema, role)


def test_schemas_are_managed_access(rendered: tuple) -> None:
    env, _, scripts = rendered
    stmts = _statements(scripts[GRANTS])
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
    local = load_environment("local")
    governance = render_all(local, GOVERNANCE_FOLDER)
    stmts = _statements(governance[POLICIES]) + _statements(governance[ATTACH])
    assert any("SET MASKING POLICY" in s for s in stmts)
    assert all(
        s.startswith(
            (
                "CREATE SCHEMA IF NOT EXISTS",
                "CREATE MASKING POLICY",
                "ALTER MASKING POLICY",
                "ALTER TABLE",
                "ALTER VIEW",
            )
        )
        for s in stmts
    )
    assert not any("GRANT" in s or "ROW ACCESS" in s or "PASSWORD" in s or "USE ROLE" in s for s in stmts)
    assert not [s for s in _statements(render_all(local)[GRANTS]) if s.startswith(("GRANT", "REVOKE", "ALTER"))]


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
    """On a fresh account: the schema owner (the pipeline, managed access) grants the governance role USAGE in
    migrations/, which deploys before migrations-governance/ attaches the first policy."""
    env, _, scripts = rendered
    roles = catalog.access_roles(env)
    grants = _statements(scripts[GRANTS])
    for layer in ("curated", "raw"):
        schema = f"{env.snowflake.database}.{env.snowflake.schemas[layer]}"
        assert f"GRANT USAGE ON SCHEMA {schema} TO ROLE {roles['governance']}" in grants
    order = [name for name, _ in deploy_order(rendered_files(env))]
    assert order.index(f"{MIGRATIONS_FOLDER}/{GRANTS}") < order.index(f"{GOVERNANCE_FOLDER}/{POLICIES}")
    assert order.index(f"{GOVERNANCE_FOLDER}/{POLICIES}") < order.index(f"{GOVERNANCE_FOLDER}/{ATTACH}")
    assert max(i for i, n in enumerate(order) if n.startswith(f"{MIGRATIONS_FOLDER}/")) < order.index(
        f"{GOVERNANCE_FOLDER}/{POLICIES}"
    )


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
