"""The quarantine Lambda in every synthesized AWS stack: subscribed to the topic Snowpipe's error integration
publishes to, a DLQ, small reserved concurrency, the repository's own module as code, and a least-privilege role."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

from finsight import catalog, quarantine
from tests.infra.conftest import Synth
from tests.infra.helpers import as_list, ref, referenced_id, statements


def _function(s: Synth) -> tuple[str, dict]:
    (found,) = [
        (cid, f)
        for cid, f in s.resources("aws", "aws_lambda_function").items()
        if f["function_name"] == s.names.quarantine_function
    ]
    return found


def _data_key(s: Synth) -> str:
    (alias,) = [a for a in s.resources("aws", "aws_kms_alias").values() if a["name"] == s.env.aws.s3.kms_key_alias]
    return referenced_id(alias["target_key_id"], "aws_kms_key")


def _alerts_topic(s: Synth) -> str:
    """The topic the Snowflake notification integration (catalog.error_integration) publishes pipe errors to."""
    (integration,) = s.resources("snowflake", "snowflake_notification_integration").values()
    (cid,) = [
        cid
        for cid, t in s.resources("aws", "aws_sns_topic").items()
        if s.names.sns_arn(t["name"]) == integration["aws_sns_topic_arn"]
    ]
    return cid


def test_quarantine_lambda_runs_the_handler_with_config_names_and_a_dlq(stack: Synth) -> None:
    _, fn = _function(stack)
    assert fn["handler"] == "finsight.quarantine.handler"
    assert 1 <= fn["reserved_concurrent_executions"] <= 5
    key = ref("aws_kms_key", _data_key(stack), "arn")
    assert fn["environment"]["variables"] == {
        quarantine.ENV_BUCKET: stack.env.aws.s3.bucket,
        quarantine.ENV_KMS_KEY: key,
        quarantine.ENV_QUARANTINE_PREFIX: catalog.QUARANTINE_PREFIX,
        quarantine.ENV_RECORDS_PREFIX: catalog.load_errors_records_prefix(stack.env),
    }
    assert fn["kms_key_arn"] == key
    dlq_cid = referenced_id(fn["dead_letter_config"]["target_arn"], "aws_sqs_queue")
    dlq = stack.resources("aws", "aws_sqs_queue")[dlq_cid]
    assert dlq["name"] == stack.names.quarantine_dlq and dlq["kms_master_key_id"] == key
    alarms = [a for a in stack.resources("aws", "aws_cloudwatch_metric_alarm").values()
              if a["dimensions"].get("QueueName") == ref("aws_sqs_queue", dlq_cid, "name")]  # fmt: skip
    assert alarms and alarms[0]["alarm_actions"] == [ref("aws_sns_topic", _alerts_topic(stack), "arn")]
    (group,) = [g for g in stack.resources("aws", "aws_cloudwatch_log_group").values()
                if g["name"] == f"/aws/lambda/{fn['function_name']}"]  # fmt: skip
    assert group["kms_key_id"].startswith("${aws_kms_key.")


def test_quarantine_lambda_is_subscribed_to_snowpipe_error_notifications(stack: Synth) -> None:
    cid, _ = _function(stack)
    topic = ref("aws_sns_topic", _alerts_topic(stack), "arn")
    (sub,) = [s for s in stack.resources("aws", "aws_sns_topic_subscription").values()
              if s["endpoint"] == ref("aws_lambda_function", cid, "arn")]  # fmt: skip
    assert sub["topic_arn"] == topic and sub["protocol"] == "lambda"
    assert sub["filter_policy_scope"] == "MessageBody"
    assert json.loads(sub["filter_policy"]) == {"messageType": [quarantine.FAILED_FILE]}
    (permission,) = [p for p in stack.resources("aws", "aws_lambda_permission").values()
                     if p["function_name"] == ref("aws_lambda_function", cid, "function_name")]  # fmt: skip
    assert permission["principal"] == "sns.amazonaws.com" and permission["source_arn"] == topic


def test_quarantine_role_is_least_privilege(stack: Synth) -> None:
    _, fn = _function(stack)
    role_cid = referenced_id(fn["role"], "aws_iam_role")
    role = stack.resources("aws", "aws_iam_role")[role_cid]
    assert [st["Principal"] for st in statements(role["assume_role_policy"])] == [{"Service": "lambda.amazonaws.com"}]
    (policy,) = [p for p in stack.resources("aws", "aws_iam_role_policy").values()
                 if p["role"] == ref("aws_iam_role", role_cid, "id")]  # fmt: skip
    bucket = f"arn:aws:s3:::{stack.env.aws.s3.bucket}"
    raw, held = f"{bucket}/{stack.env.aws.s3.raw_prefix}/", f"{bucket}/{catalog.QUARANTINE_PREFIX}/"
    key = ref("aws_kms_key", _data_key(stack), "arn")
    by_action: dict[str, set[str]] = {}
    for st in statements(policy["policy"]):
        assert st["Effect"] == "Allow"
        for action in as_list(st["Action"]):
            assert "*" not in action, action
            by_action.setdefault(action, set()).update(as_list(st["Resource"]))
    for resources in by_action.values():
        assert "*" not in resources
    assert {a.split(":")[0] for a in by_action} == {"s3", "kms", "logs", "sqs"}
    s3 = {a: r for a, r in by_action.items() if a.startswith("s3:")}
    assert set(s3) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}
    for action in ("s3:GetObject", "s3:PutObject"):
        assert all(r.startswith((raw, held)) for r in s3[action]), s3[action]
    assert s3["s3:DeleteObject"] == {raw + "*"}  # only the failed file itself goes away, never a quarantined one
    assert s3["s3:ListBucket"] == {bucket}
    kms = {a: r for a, r in by_action.items() if a.startswith("kms:")}
    assert set(kms) == {"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"}
    assert all(r == {key} for r in kms.values())
    assert by_action["sqs:SendMessage"] == {fn["dead_letter_config"]["target_arn"]}
    logs = {r for a, resources in by_action.items() if a.startswith("logs:") for r in resources}
    assert logs and all(r.startswith("${aws_cloudwatch_log_group.") and r.endswith(":*") for r in logs)


def test_quarantine_code_is_the_repository_module(stack: Synth) -> None:
    """The zip holds finsight/quarantine.py byte for byte (and an empty package init), nothing else; its hash is
    the one Terraform deploys by."""
    _, fn = _function(stack)
    archive = stack.dirs["aws"] / fn["filename"]
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == ["finsight/__init__.py", "finsight/quarantine.py"]
        assert zf.read("finsight/quarantine.py") == Path(quarantine.__file__).read_bytes()
    assert fn["source_code_hash"] == base64.b64encode(hashlib.sha256(archive.read_bytes()).digest()).decode()
