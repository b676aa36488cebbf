"""AWS Budgets: one monthly cost budget per environment account, alerting the DevOps topic.

The limit is the config's `budget.aws_monthly_usd`: the AWS share of the environment's allocation, sized by
`finsight cost` (Snowflake bills apart and is capped by its resource monitors from the same allocation). Each
environment has its own AWS account, so the budget covers the whole account: no cost filter to drift.

Budgets publishes to SNS as the service principal budgets.amazonaws.com: the topic policy must allow it, scoped to
this account's budgets, and the topic's KMS key must let it encrypt (kms.py, statement BudgetsPublish):
- https://docs.aws.amazon.com/cost-management/latest/userguide/budgets-sns-policy.html
- https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
"""

from __future__ import annotations

from cdktn_provider_aws.budgets_budget import BudgetsBudget, BudgetsBudgetNotification
from cdktn_provider_aws.sns_topic import SnsTopic
from cdktn_provider_aws.sns_topic_policy import SnsTopicPolicy
from constructs import Construct

from finsight.config import ConfigError
from finsight_infra.naming import Names
from finsight_infra.policy import allow, document, service_principal

BUDGETS_SERVICE = "budgets.amazonaws.com"


def _notification(kind: str, percent: float, topic: SnsTopic) -> BudgetsBudgetNotification:
    return BudgetsBudgetNotification(
        notification_type=kind,
        comparison_operator="GREATER_THAN",
        threshold=percent,
        threshold_type="PERCENTAGE",
        subscriber_sns_topic_arns=[topic.arn],
    )


def devops_topic_policy(scope: Construct, names: Names, topic: SnsTopic) -> SnsTopicPolicy:
    """Who may publish to the DevOps topic: this account's budgets and CloudWatch alarms (a topic policy replaces
    the default one, so the alarms that already notify this topic are allowed here too)."""
    return SnsTopicPolicy(
        scope,
        "alerts-devops-policy",
        arn=topic.arn,
        policy=document(
            allow("BudgetsPublish", "sns:Publish", topic.arn,
                  {"StringEquals": {"aws:SourceAccount": names.account_id},
                   "ArnLike": {"aws:SourceArn": f"arn:aws:budgets::{names.account_id}:*"}},
                  service_principal(BUDGETS_SERVICE)),
            allow("CloudWatchAlarmsPublish", "sns:Publish", topic.arn,
                  {"StringEquals": {"aws:SourceAccount": names.account_id}},
                  service_principal("cloudwatch.amazonaws.com")),
        ),
    )  # fmt: skip


def build_budget(scope: Construct, names: Names, devops_topic: SnsTopic) -> BudgetsBudget:
    budget = names.env.budget
    if budget.aws_monthly_usd is None:
        raise ConfigError(f"environments/{names.env_name}.yaml: budget.aws_monthly_usd is required to deploy AWS")
    notifications = [_notification("FORECASTED", p, devops_topic) for p in budget.aws_forecast_alert_percents]
    notifications += [_notification("ACTUAL", p, devops_topic) for p in budget.aws_actual_alert_percents]
    policy = devops_topic_policy(scope, names, devops_topic)
    return BudgetsBudget(
        scope,
        "budget-monthly-cost",
        name=f"{names.prefix}-monthly-cost",
        budget_type="COST",
        time_unit="MONTHLY",
        limit_amount=f"{budget.aws_monthly_usd:.2f}",
        limit_unit="USD",
        account_id=names.account_id,
        notification=notifications,
        tags=names.tags,
        depends_on=[policy],  # a notification to a topic Budgets may not publish to is refused at create time
    )
