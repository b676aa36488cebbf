"""Issue 21 item 8, Snowflake side: governance separated from the pipeline, and a read-only plan identity.

- The governance role (owner of the masking, row-access and password policies, holder of APPLY ... POLICY) is
  granted to one user, the governance deploy user that runs migrations-governance/, never to the pipeline's service
  user (which runs migrations/, the Task DAG and every session of the platform).
- `terraform plan` of the Snowflake stack runs as its own user and role: MONITOR / USAGE only, no ownership, no
  CREATE, no grant-making, in no role hierarchy. The providers name a profile, not a role, so the role comes from
  the job (plan or apply) and not from the saved plan.
"""

from __future__ import annotations

from finsight import catalog, tfvars
from tests.infra.conftest import Synth

READ_ONLY = {"USAGE", "MONITOR"}


def _role_names(stack: Synth) -> dict[str, str]:
    """`${snowflake_account_role.<id>.name}` -> the role's name (literal names map to themselves)."""
    return {
        f"${{snowflake_account_role.{cid}.name}}": r["name"]
        for cid, r in stack.resources("snowflake", "snowflake_account_role").items()
    }


def _user_names(stack: Synth) -> dict[str, str]:
    return {
        f"${{snowflake_service_user.{cid}.name}}": u["name"]
        for cid, u in stack.resources("snowflake", "snowflake_service_user").items()
    }


def _role_grants(stack: Synth) -> list[tuple[str, str | None, str | None]]:
    """(role, user it is granted to, parent role it is granted to) for every role grant of the stack."""
    roles, users = _role_names(stack), _user_names(stack)
    out = []
    for g in stack.resources("snowflake", "snowflake_grant_account_role").values():
        user, parent = g.get("user_name"), g.get("parent_role_name")
        out.append(
            (
                roles.get(g["role_name"], g["role_name"]),
                users.get(user, user) if user else None,
                roles.get(parent, parent) if parent else None,
            )
        )
    return out


def test_only_the_governance_deploy_user_holds_the_governance_role(stack: Synth) -> None:
    """Red when the governance role is granted to the pipeline's service user again (or to any other user or to
    a role the service user holds)."""
    n, env = stack.names, stack.env
    grants = _role_grants(stack)
    governance = [(user, parent) for role, user, parent in grants if role == n.sf_governance_role]
    assert {user for user, _ in governance if user} == {catalog.governance_deploy_user(env)}
    assert {parent for _, parent in governance if parent} <= {"SECURITYADMIN"}
    service_user_roles = {role for role, user, _ in grants if user == env.snowflake.user}
    assert service_user_roles == {env.snowflake.role}
    # nothing the service user holds inherits the governance role (pipeline -> loader only)
    inherited = {role for role, _, parent in grants if parent in service_user_roles}
    assert n.sf_governance_role not in inherited and n.sf_governance_role not in service_user_roles
    users = {u["name"]: u for u in stack.resources("snowflake", "snowflake_service_user").values()}
    gov_user = users[catalog.governance_deploy_user(env)]
    assert _role_names(stack).get(gov_user["default_role"]) == n.sf_governance_role
    assert gov_user["default_secondary_roles_option"] == "NONE" and gov_user["rsa_public_key"].startswith("${var.")


def test_the_plan_role_is_read_only_and_in_no_hierarchy(stack: Synth) -> None:
    """Red when the plan role gets any privilege beyond USAGE / MONITOR (OWNERSHIP, CREATE ..., MANAGE GRANTS,
    APPLY ..., MODIFY, OPERATE), is granted to a role (so an admin or the pipeline would inherit it, or it theirs),
    or to a user other than the plan user."""
    n = stack.names
    roles = _role_names(stack)
    privileges = [
        (p, g)
        for g in stack.resources("snowflake", "snowflake_grant_privileges_to_account_role").values()
        if roles.get(g["account_role_name"], g["account_role_name"]) == n.sf_plan_role
        for p in g.get("privileges", [])
    ]
    assert privileges
    assert {p for p, _ in privileges} <= READ_ONLY, [p for p, _ in privileges if p not in READ_ONLY]
    assert not [g for _, g in privileges if g.get("all_privileges") or g.get("with_grant_option")]
    grants = _role_grants(stack)
    plan = [(user, parent) for role, user, parent in grants if role == n.sf_plan_role]
    assert plan == [(n.sf_plan_user, None)]
    assert not [g for g in grants if g[2] == n.sf_plan_role]  # no role granted to it either


def test_providers_take_their_role_from_the_job(stack: Synth) -> None:
    """Red when a provider block sets `role` again (then plan and apply would be one identity) or when the plan
    profiles name anything but the read-only plan role cdktf creates."""
    providers = stack.snowflake["provider"]["snowflake"]
    assert {p["alias"] for p in providers} == set(tfvars.SNOWFLAKE_PROVIDER_PROFILES)
    for p in providers:
        assert p["profile"] == p["alias"] and "role" not in p
    plan = tfvars.snowflake_profiles(stack.env, "plan")
    assert set(plan) == set(tfvars.SNOWFLAKE_PROVIDER_PROFILES)
    assert set(plan.values()) == {stack.names.sf_plan_role}
    assert tfvars.snowflake_profiles(stack.env, "apply") == {
        "sysadmin": "SYSADMIN",
        "securityadmin": "SECURITYADMIN",
        "accountadmin": "ACCOUNTADMIN",
    }
    text = tfvars.snowflake_profiles_toml(stack.env, "plan")
    assert "ADMIN" not in text and text.count("role = ") == 3
