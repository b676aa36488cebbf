"""Issue 21 item 8 (AWS side): resource policies name the principals they admit, and the lists match the IAM grants.

moto does not evaluate bucket, key, endpoint or secret policies (docs/NOTES: "moto does not enforce bucket
policies"), so these tests read the synthesized JSON, and the drift tests tie each allow-list to the role policies
the same stack grants: a role that IAM lets touch the raw data but a resource policy leaves out would be refused in
AWS (an explicit Deny in a resource policy wins over any Allow:
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from finsight_infra.principals import KMS_DATA_ACTIONS, S3_DATA_ACTIONS

from tests.infra.conftest import Synth
from tests.infra.helpers import as_list, ref, statements

DATA_KEY = ref("aws_kms_key", "kms-data", "arn")


def _deny(policy: str, sid: str) -> dict[str, Any]:
    (st,) = [s for s in statements(policy) if s.get("Sid") == sid]
    assert st["Effect"] == "Deny" and st["Principal"] == {"AWS": "*"}
    return st


def _listed(st: dict[str, Any]) -> set[str]:
    assert st["Condition"]["Bool"] == {"aws:PrincipalIsAWSService": "false"}  # services acting as themselves pass
    return set(st["Condition"]["StringNotLike"]["aws:PrincipalArn"])


def _role_statements(s: Synth) -> dict[str, list[dict[str, Any]]]:
    """IAM role name -> statements of its inline policies (every module's roles, iam.py and quarantine.py alike)."""
    roles = s.resources("aws", "aws_iam_role")
    by_ref = {ref("aws_iam_role", cid, "id"): r["name"] for cid, r in roles.items()}
    by_name = {r["name"]: r["name"] for r in roles.values()}
    out: dict[str, list[dict[str, Any]]] = {}
    for p in s.resources("aws", "aws_iam_role_policy").values():
        name = by_ref.get(p["role"]) or by_name[p["role"]]
        out.setdefault(name, []).extend(statements(p["policy"]))
    return out


def _grants(sts: list[dict[str, Any]], actions: list[str], resource_match: str) -> bool:
    for st in sts:
        if st["Effect"] != "Allow":
            continue
        acts = as_list(st["Action"])
        action_hit = any(fnmatch.fnmatch(a, p) or fnmatch.fnmatch(p, a) for a in acts for p in actions)
        if action_hit and any(resource_match in r for r in as_list(st["Resource"])):
            return True
    return False


def _bucket_policy(s: Synth, cid: str) -> str:
    return s.resources("aws", "aws_s3_bucket_policy")[cid]["policy"]


def test_raw_bucket_admits_exactly_the_roles_iam_lets_touch_it(stack: Synth) -> None:
    st = _deny(_bucket_policy(stack, "raw-policy"), "OnlyNamedRolesTouchObjects")
    assert set(st["Action"]) == set(S3_DATA_ACTIONS)
    listed = {arn.rsplit("/", 1)[1] for arn in _listed(st)}
    granted = {
        role for role, sts in _role_statements(stack).items()
        if _grants(sts, S3_DATA_ACTIONS, f"arn:aws:s3:::{stack.names.raw_bucket}")
    }  # fmt: skip
    assert granted, "no role may touch the raw bucket?"
    assert granted <= listed, f"IAM grants the raw bucket to {granted - listed}, the bucket policy denies them"
    optional = {stack.names.snowflake_storage_role}  # created once the Snowflake identities are recorded
    assert listed - granted <= optional, f"listed but granted nothing: {listed - granted - optional}"


def test_archive_bucket_admits_only_snowflakes_archive_role(stack: Synth) -> None:
    st = _deny(_bucket_policy(stack, "archive-policy"), "OnlyNamedRolesTouchObjects")
    assert _listed(st) == {stack.names.role_arn(stack.names.snowflake_archive_role)}


def test_data_key_admits_exactly_the_roles_iam_lets_use_it(stack: Synth) -> None:
    key = stack.resources("aws", "aws_kms_key")["kms-data"]
    st = _deny(key["policy"], "OnlyNamedRolesUseDataKey")
    assert set(st["Action"]) == set(KMS_DATA_ACTIONS)
    assert "kms:PutKeyPolicy" not in st["Action"]  # administration stays possible: no lock-out of the key
    listed = {arn.rsplit("/", 1)[1] for arn in _listed(st)}
    granted = {role for role, sts in _role_statements(stack).items() if _grants(sts, KMS_DATA_ACTIONS, DATA_KEY)}
    assert granted <= listed, f"IAM grants the data key to {granted - listed}, the key policy denies them"
    optional = {stack.names.snowflake_storage_role, stack.names.snowflake_archive_role}
    assert listed - granted <= optional, f"listed but granted nothing: {listed - granted - optional}"


def test_every_vpc_endpoint_admits_only_this_accounts_principals(stack: Synth) -> None:
    endpoints = stack.resources("aws", "aws_vpc_endpoint")
    assert len(endpoints) == 1 + len(stack.env.network.interface_endpoints)
    account = stack.env.aws.account_id
    for cid, ep in endpoints.items():
        sts = statements(ep["policy"])
        for st in sts:
            assert st["Effect"] == "Allow", cid
            if st["Sid"] == "EcrImageLayers":  # the AWS-owned layer bucket, read only
                assert ep["vpc_endpoint_type"] == "Gateway" and st["Action"] == ["s3:GetObject"]
                assert st["Resource"] == [f"arn:aws:s3:::prod-{stack.names.region}-starport-layer-bucket/*"]
                continue
            assert st["Condition"]["StringEquals"]["aws:PrincipalAccount"] == account, cid
        if ep["vpc_endpoint_type"] == "Gateway":  # S3: our buckets only, no copy-out to another account
            (ours,) = [st for st in sts if st["Sid"] == "OurPrincipalsOurBuckets"]
            assert ours["Condition"]["StringEquals"]["aws:ResourceAccount"] == account


def test_pan_key_is_read_by_every_tokenizing_connector_and_written_by_the_rotator_only(stack: Synth) -> None:
    (policy,) = stack.resources("aws", "aws_secretsmanager_secret_policy").values()
    read = _deny(policy["policy"], "OnlyTokenizingConnectorsAndRotatorRead")
    write = _deny(policy["policy"], "OnlyRotatorWritesVersions")
    names = stack.names
    rotator = names.role_arn(names.pan_key_rotator_role)
    # API connectors scrub every record for card numbers with the key (connectors/apis/pans.py): they read it
    api_roles = {names.role_arn(names.task_role(s)) for s in stack.env.api_sources}
    assert api_roles <= set(read["Condition"]["StringNotEquals"]["aws:PrincipalArn"])
    assert read["Action"] == ["secretsmanager:GetSecretValue"]
    assert write["Condition"]["StringNotEquals"]["aws:PrincipalArn"] == [rotator]
    for action in ("PutSecretValue", "UpdateSecretVersionStage", "RotateSecret"):  # a planted AWSCURRENT
        assert f"secretsmanager:{action}" in write["Action"]


def test_policies_are_valid_json_documents(stack: Synth) -> None:
    for tf_type, attr in (("aws_s3_bucket_policy", "policy"), ("aws_kms_key", "policy"), ("aws_vpc_endpoint", "policy"),
                          ("aws_secretsmanager_secret_policy", "policy")):  # fmt: skip
        for cid, res in stack.resources("aws", tf_type).items():
            assert json.loads(res[attr])["Version"] == "2012-10-17", cid
