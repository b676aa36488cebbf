"""Alert topics (one per owning team, names from config) and the alarms routed to them.

Ownership: what means "data did not arrive" (connector task failures, bad landing events) pages data
engineering; what means "the platform is not doing its job" (scheduler could not start a run, events piling up
unconsumed) pages devops.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktn_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktn_provider_aws.cloudwatch_event_target import CloudwatchEventTarget
from cdktn_provider_aws.cloudwatch_log_resource_policy import CloudwatchLogResourcePolicy
from cdktn_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktn_provider_aws.ecs_cluster import EcsCluster
from cdktn_provider_aws.kms_key import KmsKey
from cdktn_provider_aws.sns_topic import SnsTopic
from cdktn_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktn_provider_aws.sqs_queue import SqsQueue
from constructs import Construct

from finsight_infra.logs import log_group
from finsight_infra.naming import Names
from finsight_infra.policy import allow, document, service_principal

PERIOD_SECONDS = 300


@dataclass(frozen=True)
class Alerts:
    topics: dict[str, SnsTopic]  # keyed by team: data_engineering, devops


def build_alert_topics(scope: Construct, names: Names, ops_key: KmsKey) -> Alerts:
    return Alerts(
        topics={
            team: SnsTopic(scope, f"alerts-{team}", name=topic, kms_master_key_id=ops_key.arn, tags=names.tags)
            for team, topic in names.alert_topics.items()
        }
    )


def metric_alarm(
    scope: Construct,
    cid: str,
    names: Names,
    topic: SnsTopic,
    description: str,
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    threshold: float,
    statistic: str = "Maximum",
) -> CloudwatchMetricAlarm:
    return CloudwatchMetricAlarm(
        scope,
        cid,
        alarm_name=names.alarm(cid),
        alarm_description=description,
        namespace=namespace,
        metric_name=metric,
        dimensions=dimensions,
        statistic=statistic,
        period=PERIOD_SECONDS,
        evaluation_periods=1,
        comparison_operator="GreaterThanOrEqualToThreshold",
        threshold=threshold,
        treat_missing_data="notBreaching",
        actions_enabled=True,
        alarm_actions=[topic.arn],
        ok_actions=[topic.arn],
        tags=names.tags,
    )


def _task_failures(scope: Construct, names: Names, cluster: EcsCluster, ops_key: KmsKey, topic: SnsTopic) -> None:
    """ECS has no "task failed" metric: an EventBridge rule matches failed stops, keeps the event in a log group
    for triage, and its TriggeredRules metric drives the alarm."""
    pattern = {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": [cluster.arn],
            "lastStatus": ["STOPPED"],
            "$or": [{"containers": {"exitCode": [{"anything-but": 0}]}}, {"stopCode": ["TaskFailedToStart"]}],
        },
    }
    rule = CloudwatchEventRule(
        scope,
        "task-failed-rule",
        name=names.alarm("connector-task-failed"),
        description="A connector task stopped with a non-zero exit code or failed to start",
        event_pattern=json.dumps(pattern),
        tags=names.tags,
    )
    group = log_group(
        scope, "task-failed-events", names.platform_log_group("events/connector-task-failed"), ops_key, names
    )
    CloudwatchLogResourcePolicy(
        scope,
        "task-failed-events-policy",
        policy_name=names.alarm("events-to-logs"),
        policy_document=document(
            allow(
                "EventBridgeWrites",
                ["logs:CreateLogStream", "logs:PutLogEvents"],
                f"{group.arn}:*",
                principal=service_principal("events.amazonaws.com"),
            )
        ),
    )
    CloudwatchEventTarget(scope, "task-failed-target", rule=rule.name, arn=group.arn)
    _task_failures_to_topic(scope, names, rule, topic)
    metric_alarm(
        scope,
        "connector-task-failures",
        names,
        topic,
        "Connector ECS tasks failed (see the task-failed log group for the stopped-task events)",
        "AWS/Events",
        "TriggeredRules",
        {"RuleName": rule.name},
        1,
        statistic="Sum",
    )


def connector_alert_template(names: Names) -> str:
    """The `connector_failed` alert as EventBridge renders it from the ECS event: the same fields, owner and runbook
    as the alerts `finsight alerts` lists (finsight/ops/alerts.py)."""
    from finsight.ops.alerts import ALERT_TYPES
    from finsight.ops.ownership import GITHUB_TEAMS, ONCALL, RUNBOOKS

    kind = ALERT_TYPES["connector_failed"]
    fields = {
        "alert_type": kind.name,
        "state": "FIRING",
        "env": names.env_name,
        "team": kind.team,
        "owner": GITHUB_TEAMS[kind.team],
        "topic": names.alert_topics[kind.team],
        "runbook": f"{RUNBOOKS}/{kind.runbook}",
        "oncall": ONCALL,
        "summary": kind.summary,
    }
    body = ", ".join(f'"{k}": "{v}"' for k, v in fields.items())
    # <...> are EventBridge input-transformer placeholders, filled from the event
    return "{" + body + ', "key": "<group>", "task": "<task>", "task_definition": "<family>", "message": "<reason>"}'


def _task_failures_to_topic(scope: Construct, names: Names, rule: CloudwatchEventRule, topic: SnsTopic) -> None:
    """The rule also publishes each failed task to the data-engineering topic at once (the alarm follows)."""
    SnsTopicPolicy(
        scope,
        "alerts-data-engineering-policy",
        arn=topic.arn,
        policy=document(
            allow("EventBridgePublishes", "sns:Publish", topic.arn, {"ArnEquals": {"aws:SourceArn": rule.arn}},
                  service_principal("events.amazonaws.com")),
            allow("CloudWatchAlarmsPublish", "sns:Publish", topic.arn,
                  {"StringEquals": {"aws:SourceAccount": names.account_id}},
                  service_principal("cloudwatch.amazonaws.com")),
        ),
    )  # fmt: skip
    CloudwatchEventTarget(
        scope,
        "task-failed-alert",
        rule=rule.name,
        arn=topic.arn,
        input_transformer={
            "input_paths": {"group": "$.detail.group", "task": "$.detail.taskArn",
                            "family": "$.detail.taskDefinitionArn", "reason": "$.detail.stoppedReason"},
            "input_template": connector_alert_template(names),
        },
    )  # fmt: skip


def build_alarms(
    scope: Construct,
    names: Names,
    alerts: Alerts,
    ops_key: KmsKey,
    cluster: EcsCluster,
    events_queue: SqsQueue,
    events_dlq: SqsQueue,
    scheduler_dlq: SqsQueue,
    schedule_group: str,
) -> None:
    data_eng, devops = alerts.topics["data_engineering"], alerts.topics["devops"]
    _task_failures(scope, names, cluster, ops_key, data_eng)
    metric_alarm(
        scope,
        "pipeline-events-dlq-depth",
        names,
        data_eng,
        "Raw-landed events that could not be processed are in the DLQ",
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": events_dlq.name},
        1,
    )
    metric_alarm(
        scope,
        "pipeline-events-oldest-message-age",
        names,
        devops,
        "Raw-landed events wait longer than the SLA: the consumer is down or too slow",
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        {"QueueName": events_queue.name},
        names.env.schedule.sla_minutes * 60,
    )
    metric_alarm(
        scope,
        "scheduler-dlq-depth",
        names,
        devops,
        "EventBridge Scheduler could not start connector runs (see the scheduler DLQ)",
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": scheduler_dlq.name},
        1,
    )
    metric_alarm(
        scope,
        "scheduler-target-errors",
        names,
        devops,
        "EventBridge Scheduler RunTask calls fail",
        "AWS/Scheduler",
        "TargetErrorCount",
        {"ScheduleGroup": schedule_group},
        1,
        statistic="Sum",
    )
