"""Secrets stay out of task definitions, the PAN key is readable only where card numbers are tokenized, and the
Snowflake account is locked down (roles, network policies, monitors, parameters): read from the synthesized JSON."""

from __future__ import annotations

import json
import re

from finsight.aws import DATA_KEY_ARN_VAR
from finsight.cost.model import account_credit_quota
from tests.infra.conftest import Synth
from tests.infra.helpers import ref, statements

SECRETISH = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL)", re.I)


def _role_policies(s: Synth) -> dict[str, list[dict]]:
    """IAM role name -> its inline policy statements."""
    roles = s.resources("aws", "aws_iam_role")
    by_ref = {ref("aws_iam_role", cid, "id"): r["name"] for cid, r in roles.items()}
    return {by_ref[p["role"]]: statements(p["policy"]) for p in s.resources("aws", "aws_iam_role_policy").values()}


def test_no_secret_value_or_reference_in_any_task_definition(stack: Synth) -> None:
    tds = stack.resources("aws", "aws_ecs_task_definition")
    assert tds
    for td in tds.values():
        text = td["container_definitions"]
        assert "secretsmanager" not in text and "aws_secretsmanager_secret" not in text
        assert "ssm" not in text.lower().split("awslogs")[0]  # no SSM parameters either
        (container,) = json.loads(text)
        assert "secrets" not in container and "repositoryCredentials" not in container
        for var in container["environment"]:
            assert not SECRETISH.search(var["name"]), var
            if var["name"] == DATA_KEY_ARN_VAR:  # the one reference: the data key's ARN (not a secret), see below
                continue
            assert not var["value"].startswith(("arn:", "${")), var  # coordinates only, never a reference


def test_task_definitions_name_the_data_key_by_the_arn_the_bucket_policy_pins(stack: Synth) -> None:
    """S3 writes send this ARN in x-amz-server-side-encryption-aws-kms-key-id; the bucket policy denies any other."""
    condition = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    pinned = {
        st["Condition"]["StringNotEqualsIfExists"][condition]
        for p in stack.resources("aws", "aws_s3_bucket_policy").values()
        for st in json.loads(p["policy"])["Statement"]
        if condition in st.get("Condition", {}).get("StringNotEqualsIfExists", {})
    }
    assert pinned, "no bucket policy pins a KMS key ARN"
    for td in stack.resources("aws", "aws_ecs_task_definition").values():
        (container,) = json.loads(td["container_definitions"])
        injected = {v["name"]: v["value"] for v in container["environment"]}
        assert injected[DATA_KEY_ARN_VAR] in pinned, td["family"]
        assert injected[DATA_KEY_ARN_VAR] == ref("aws_kms_key", "kms-data", "arn"), td["family"]


def test_execution_roles_read_no_secret(stack: Synth) -> None:
    policies = _role_policies(stack)
    for src in stack.names.sources:
        for st in policies[stack.names.execution_role(src.name)]:
            assert not any(a.startswith("secretsmanager:") for a in st["Action"]), st
            assert stack.names.release_repository_arn in st["Resource"] or st["Sid"] != "PullReleaseImage"


def test_pan_key_readable_only_by_pan_connector_task_roles(stack: Synth) -> None:
    pan = stack.names.secret_arn_pattern(stack.env.secrets.pan_tokenization_key)
    readers = {
        role
        for role, sts in _role_policies(stack).items()
        for st in sts
        if "secretsmanager:GetSecretValue" in st["Action"] and pan in st["Resource"]
    }
    pan_tasks = {stack.names.task_role(s.name) for s in stack.names.sources if s.needs_pan_key}
    assert pan_tasks and readers == pan_tasks | {stack.names.pan_key_rotator_role}
    (policy,) = stack.resources("aws", "aws_secretsmanager_secret_policy").values()
    (deny,) = [st for st in statements(policy["policy"]) if "secretsmanager:GetSecretValue" in st["Action"]]
    assert deny["Effect"] == "Deny"  # the write side: tests/infra/test_resource_policies.py
    allowed = set(deny["Condition"]["StringNotEquals"]["aws:PrincipalArn"])
    assert allowed == {stack.names.role_arn(r) for r in pan_tasks | {stack.names.pan_key_rotator_role}}


def test_pan_key_rotator_needs_mfa_and_a_configured_principal(stack: Synth) -> None:
    (rotator,) = [r for r in stack.resources("aws", "aws_iam_role").values() if r["name"].endswith("pan-key-rotator")]
    (trust,) = statements(rotator["assume_role_policy"])
    assert trust["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    assert trust["Principal"]["AWS"] == stack.env.governance.pan_key_rotators  # type: ignore[union-attr]


# -- Snowflake account ----------------------------------------------------------------------------------------------


def _by_name(s: Synth, tf_type: str) -> dict[str, dict]:
    return {r["name"]: r for r in s.resources("snowflake", tf_type).values()}


def test_data_roles_do_not_roll_up_to_sysadmin_except_the_owner(stack: Synth) -> None:
    n = stack.names
    roles = {f"${{snowflake_account_role.{cid}.name}}": r["name"]
             for cid, r in stack.resources("snowflake", "snowflake_account_role").items()}  # fmt: skip
    edges = {
        (roles.get(g["role_name"], g["role_name"]), roles.get(g.get("parent_role_name", ""), g.get("parent_role_name")))
        for g in stack.resources("snowflake", "snowflake_grant_account_role").values()
        if g.get("parent_role_name")
    }
    sysadmin_children = {child for child, parent in edges if parent == "SYSADMIN"}
    assert n.sf_pii_reader_role not in sysadmin_children and n.sf_governance_role not in sysadmin_children
    assert n.sf_loader_role not in sysadmin_children
    assert (n.sf_governance_role, "SECURITYADMIN") in edges
    assert (n.sf_analyst_role, n.sf_pii_reader_role) in edges
    assert (n.sf_loader_role, n.sf_pipeline_role) in edges


def test_only_the_governance_role_may_apply_policies(stack: Synth) -> None:
    roles = {f"${{snowflake_account_role.{cid}.name}}": r["name"]
             for cid, r in stack.resources("snowflake", "snowflake_account_role").items()}  # fmt: skip
    holders = {
        roles[g["account_role_name"]]
        for g in stack.resources("snowflake", "snowflake_grant_privileges_to_account_role").values()
        if any(p.startswith("APPLY ") for p in g.get("privileges", []))
    }
    assert holders == {stack.names.sf_governance_role}


def test_network_policies_come_from_the_config_allow_lists(stack: Synth) -> None:
    gov = stack.env.governance
    assert gov is not None
    policies = _by_name(stack, "snowflake_network_policy")
    runners = stack.env.network.deploy_runner_cidrs  # tests/infra/test_deploy_egress.py: the NATs' addresses
    assert policies[stack.names.sf_account_network_policy]["allowed_ip_list"] == gov.account_allowed_cidrs + runners
    assert policies[stack.names.sf_service_network_policy]["allowed_ip_list"] == runners
    for user in stack.resources("snowflake", "snowflake_service_user").values():  # service, governance, plan users
        assert user["network_policy"] == "${snowflake_network_policy.service-network-policy.name}", user["name"]
    (account,) = stack.resources("snowflake", "snowflake_current_account").values()
    assert account["network_policy"] == "${snowflake_network_policy.account-network-policy.name}"


def test_account_parameters_and_account_monitor(stack: Synth) -> None:
    (account,) = stack.resources("snowflake", "snowflake_current_account").values()
    assert account["allow_client_mfa_caching"] is False
    assert account["prevent_unload_to_inline_url"] is True
    assert account["require_storage_integration_for_stage_creation"] is True
    assert account["resource_monitor"] == "${snowflake_resource_monitor.rm-account.name}"
    monitor = stack.resources("snowflake", "snowflake_resource_monitor")["rm-account"]
    assert monitor["name"] == stack.names.sf_account_monitor
    assert monitor["notify_triggers"] and monitor["suspend_trigger"] <= monitor["suspend_immediate_trigger"]
    assert monitor["credit_quota"] == account_credit_quota(stack.env)
    assert "frequency" not in monitor or monitor["frequency"] == "MONTHLY"


def test_archive_volume_points_at_the_archive_bucket_and_role(stack: Synth) -> None:
    (volume,) = stack.resources("snowflake", "snowflake_external_volume").values()
    (loc,) = volume["storage_location"]
    assert loc["storage_base_url"] == f"s3://{stack.env.curated_archive.bucket}/{stack.env.curated_archive.prefix}/"  # type: ignore[union-attr]
    aws_roles = {r["name"] for r in stack.resources("aws", "aws_iam_role").values()}
    assert loc["storage_aws_role_arn"].rsplit("/", 1)[-1] in aws_roles
    assert loc["encryption_type"] == "AWS_SSE_KMS"
    buckets = {b["bucket"] for b in stack.resources("aws", "aws_s3_bucket").values()}
    assert stack.env.curated_archive.bucket in buckets  # type: ignore[union-attr]
