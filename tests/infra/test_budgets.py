"""AWS Budgets per environment, from the synthesized stacks: a monthly cost budget at `budget.aws_monthly_usd`,
forecast and actual alerts to the DevOps topic, and the topic and its KMS key letting Budgets publish.

moto does not run Budgets notifications nor enforce topic or key policies, so the policies are checked against the
AWS docs pages that define them:
- https://docs.aws.amazon.com/cost-management/latest/userguide/budgets-sns-policy.html (topic policy: principal
  budgets.amazonaws.com, SNS:Publish, aws:SourceAccount + aws:SourceArn arn:aws:budgets::<account>:*)
- https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services (an encrypted
  topic: the publishing service needs kms:GenerateDataKey* and kms:Decrypt on the topic's key)
"""

from __future__ import annotations

import json
from typing import Any

from finsight.cost.model import account_credit_quota
from tests.infra.conftest import Synth


def _ref(tf_type: str, cid: str, attr: str) -> str:
    return f"${{{tf_type}.{cid}.{attr}}}"


def _devops_topic(s: Synth) -> tuple[str, dict[str, Any]]:
    name = s.env.aws.alert_topics["devops"]
    (found,) = [(cid, t) for cid, t in s.resources("aws", "aws_sns_topic").items() if t["name"] == name]
    return found


def _statements(policy: str) -> list[dict[str, Any]]:
    return json.loads(policy)["Statement"]


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_one_monthly_cost_budget_per_environment_at_the_configured_limit(stack: Synth) -> None:
    (budget,) = stack.resources("aws", "aws_budgets_budget").values()
    assert (budget["budget_type"], budget["time_unit"], budget["limit_unit"]) == ("COST", "MONTHLY", "USD")
    assert float(budget["limit_amount"]) == stack.env.budget.aws_monthly_usd
    assert budget["account_id"] == stack.env.aws.account_id
    assert "cost_filter" not in budget  # each environment is its own account: the budget covers all of it
    # AWS Budgets + the Snowflake account monitor's credits ($4 each) are the environment's allocation, no more
    assert float(budget["limit_amount"]) + account_credit_quota(stack.env) * 4.0 <= stack.env.budget.monthly_usd


def test_forecast_and_actual_alerts_go_to_the_devops_topic(stack: Synth) -> None:
    (budget,) = stack.resources("aws", "aws_budgets_budget").values()
    cid, _ = _devops_topic(stack)
    devops_arn = _ref("aws_sns_topic", cid, "arn")
    got = sorted((n["notification_type"], n["threshold"]) for n in budget["notification"])
    b = stack.env.budget
    want = sorted([("FORECASTED", p) for p in b.aws_forecast_alert_percents] +
                  [("ACTUAL", p) for p in b.aws_actual_alert_percents])  # fmt: skip
    assert got == want and ("FORECASTED", 100) in got and ("ACTUAL", 100) in got
    for n in budget["notification"]:
        assert (n["comparison_operator"], n["threshold_type"]) == ("GREATER_THAN", "PERCENTAGE")
        assert n["subscriber_sns_topic_arns"] == [devops_arn]
        assert "subscriber_email_addresses" not in n


def test_the_devops_topic_policy_lets_this_accounts_budgets_publish(stack: Synth) -> None:
    cid, _ = _devops_topic(stack)
    topic_arn = _ref("aws_sns_topic", cid, "arn")
    (policy,) = [p for p in stack.resources("aws", "aws_sns_topic_policy").values() if p["arn"] == topic_arn]
    (budgets,) = [s for s in _statements(policy["policy"]) if s["Principal"] == {"Service": "budgets.amazonaws.com"}]
    account = stack.env.aws.account_id
    assert budgets["Effect"] == "Allow" and [a.lower() for a in _as_list(budgets["Action"])] == ["sns:publish"]
    assert _as_list(budgets["Resource"]) == [topic_arn]
    assert budgets["Condition"] == {
        "StringEquals": {"aws:SourceAccount": account},
        "ArnLike": {"aws:SourceArn": f"arn:aws:budgets::{account}:*"},
    }
    (policy_cid,) = [c for c, p in stack.resources("aws", "aws_sns_topic_policy").items() if p["arn"] == topic_arn]
    (budget,) = stack.resources("aws", "aws_budgets_budget").values()
    assert f"aws_sns_topic_policy.{policy_cid}" in budget["depends_on"]  # created once Budgets may publish


def test_the_topic_policy_keeps_the_alarms_that_already_notify_devops(stack: Synth) -> None:
    """A topic policy replaces SNS's default one: CloudWatch alarms that notify the DevOps topic must stay allowed."""
    cid, _ = _devops_topic(stack)
    topic_arn = _ref("aws_sns_topic", cid, "arn")
    alarms = [a for a in stack.resources("aws", "aws_cloudwatch_metric_alarm").values()
              if topic_arn in a.get("alarm_actions", [])]  # fmt: skip
    assert alarms
    (policy,) = [p for p in stack.resources("aws", "aws_sns_topic_policy").values() if p["arn"] == topic_arn]
    principals = [s["Principal"] for s in _statements(policy["policy"])]
    assert {"Service": "cloudwatch.amazonaws.com"} in principals


def test_the_encrypted_devops_topics_key_lets_budgets_encrypt(stack: Synth) -> None:
    _, topic = _devops_topic(stack)
    key_ref = topic["kms_master_key_id"]  # the topic is encrypted with a customer managed key
    key_cid = key_ref.removeprefix("${aws_kms_key.").removesuffix(".arn}")
    key = stack.resources("aws", "aws_kms_key")[key_cid]
    (budgets,) = [s for s in _statements(key["policy"]) if s.get("Principal") == {"Service": "budgets.amazonaws.com"}]
    assert budgets["Effect"] == "Allow"
    assert {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(_as_list(budgets["Action"]))
    assert budgets["Condition"] == {"StringEquals": {"aws:SourceAccount": stack.env.aws.account_id}}
