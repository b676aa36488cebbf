"""The Snowflake stack of every environment: warehouses and quotas from config and the cost model."""

from __future__ import annotations

from finsight.cost.model import monthly_snowflake_credits, resource_monitor_quotas
from finsight.migration_vars import migration_vars
from tests.infra.conftest import Synth
from tests.infra.helpers import referenced_id


def _by_name(s: Synth, tf_type: str) -> dict[str, dict]:
    return {r["name"]: r for r in s.resources("snowflake", tf_type).values()}


def test_warehouses_match_config(stack: Synth) -> None:
    warehouses = _by_name(stack, "snowflake_warehouse")
    assert set(warehouses) == {stack.env.snowflake.warehouse_name(w) for w in stack.env.snowflake.warehouses}
    for logical, cfg in stack.env.snowflake.warehouses.items():
        wh = warehouses[stack.env.snowflake.warehouse_name(logical)]
        assert wh["warehouse_size"] == cfg.size
        assert wh["auto_suspend"] == cfg.auto_suspend_seconds
        assert wh["auto_resume"] == "true"
        assert wh["initially_suspended"] is True
        assert wh["resource_monitor"].startswith("${snowflake_resource_monitor.")


def test_resource_monitor_quotas_follow_the_cost_model(stack: Synth) -> None:
    credits = monthly_snowflake_credits(stack.env)
    quotas = resource_monitor_quotas(stack.env)
    monitors = _by_name(stack, "snowflake_resource_monitor")
    assert set(credits) == set(quotas) == set(stack.env.snowflake.warehouses)
    for logical, forecast in credits.items():
        monitor = monitors[stack.names.sf_resource_monitor(logical)]
        assert monitor["credit_quota"] == max(1, quotas[logical])
        assert monitor["credit_quota"] >= forecast  # the margin is on top of the forecast, never below it
        assert monitor["notify_triggers"] and monitor["suspend_trigger"] <= monitor["suspend_immediate_trigger"]


def test_roles_database_and_service_user(stack: Synth) -> None:
    sf = stack.env.snowflake
    roles = set(_by_name(stack, "snowflake_account_role"))
    n = stack.names
    assert {sf.role, n.sf_analyst_role, n.sf_pii_reader_role, n.sf_loader_role, n.sf_governance_role,
            n.sf_archiver_role, n.sf_plan_role} == roles  # fmt: skip
    assert set(_by_name(stack, "snowflake_database")) == {sf.database}
    users = _by_name(stack, "snowflake_service_user")
    assert set(users) == {sf.user, n.sf_governance_user, n.sf_plan_user}
    user = users[sf.user]
    roles_by_id = {cid: r["name"] for cid, r in stack.resources("snowflake", "snowflake_account_role").items()}
    assert roles_by_id[referenced_id(user["default_role"], "snowflake_account_role")] == sf.role
    assert user["rsa_public_key"].startswith("${var.")  # never a literal key
    grants = stack.resources("snowflake", "snowflake_grant_account_role").values()
    assert any(g.get("user_name") and g["role_name"] for g in grants)


def test_integrations_point_at_the_aws_stack(stack: Synth) -> None:
    (storage,) = stack.resources("snowflake", "snowflake_storage_integration_aws").values()
    assert storage["name"] == migration_vars(stack.env)["storage_integration"]  # what the stage migration uses
    aws_roles = {r["name"] for r in stack.resources("aws", "aws_iam_role").values()}
    role_arn = storage["storage_aws_role_arn"]
    assert role_arn.startswith(f"arn:aws:iam::{stack.env.aws.account_id}:role/")
    assert role_arn.rsplit("/", 1)[-1] in aws_roles
    assert storage["storage_allowed_locations"] == [f"s3://{stack.env.aws.s3.bucket}/{stack.env.aws.s3.raw_prefix}/"]
    (notification,) = stack.resources("snowflake", "snowflake_notification_integration").values()
    assert notification["aws_sns_topic_arn"].endswith(f":{stack.env.aws.alert_topics['data_engineering']}")
    assert notification["aws_sns_role_arn"].rsplit("/", 1)[-1] in aws_roles


def test_no_credentials_in_provider_config(stack: Synth) -> None:
    for provider in stack.snowflake["provider"]["snowflake"]:
        assert not {"password", "private_key", "token", "private_key_passphrase"} & set(provider)


def test_humans_sign_in_with_mfa_and_pii_roles_stay_out_of_admin_hierarchies(stack: Synth) -> None:
    """Issue 21 item 8: an MFA authentication policy for every person user (docs: "CREATE AUTHENTICATION POLICY",
    MFA_ENROLLMENT = REQUIRED); the roles that read clear PII (PII reader, archive mover) roll up to no system role
    and are granted to no user or role that does."""
    (policy,) = stack.resources("snowflake", "snowflake_authentication_policy").values()
    assert policy["mfa_enrollment"] == "REQUIRED" and "KEYPAIR" not in policy["authentication_methods"]
    (attachment,) = stack.resources("snowflake", "snowflake_account_authentication_policy_attachment").values()
    assert attachment["for_all_person_users"] is True and "for_all_service_users" not in attachment
    n = stack.names
    grants = list(stack.resources("snowflake", "snowflake_grant_account_role").values())
    roles_by_ref = {f"${{snowflake_account_role.{cid}.name}}": r["name"]
                    for cid, r in stack.resources("snowflake", "snowflake_account_role").items()}  # fmt: skip
    for g in grants:
        child = roles_by_ref.get(g["role_name"], g["role_name"])
        if child in (n.sf_pii_reader_role, n.sf_archiver_role):
            assert "user_name" not in g or child == n.sf_pii_reader_role, g  # the archiver: no user holds it
            assert roles_by_ref.get(g.get("parent_role_name", ""), g.get("parent_role_name")) not in (
                "SYSADMIN", "ACCOUNTADMIN", "SECURITYADMIN", n.sf_pipeline_role), g  # fmt: skip
