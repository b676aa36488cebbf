"""Alerts: what is broken now, who owns it, the runbook that fixes it; published to the owning team's SNS topic.

In AWS the platform publishes them itself (task/pipe errors through the alerts notification integration, connector
failures through an EventBridge ECS task-state rule, budgets through resource monitors). `sync` evaluates the same
conditions from the OPS tables (what Snowflake alerts would run on a schedule), publishes each new alert FIRING and
each cleared one RESOLVED, and keeps the open ones in OPS.ALERTS (the dashboard reads it). Locally the topics are the
moto SNS topics of `aws.alert_topics`, each with an SQS inbox `finsight alerts` drains into `<state_dir>/alerts.jsonl`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finsight import catalog
from finsight.config import Environment, repo_root
from finsight.ops import task_runs
from finsight.ops.ownership import (
    GITHUB_TEAMS,
    ONCALL,
    RUNBOOKS,
    TEAM_NAMES,
    Team,
    table_owner,
    team_of_owner,
    topic,
    topic_arn,
)
from snowpark import task_history
from snowpark.sql_text import literal

ALERTS_TABLE = "ALERTS"
QUALITY_RESULTS_TABLE = "QUALITY_RESULTS"  # written by the data-quality checks (snowpark/quality/)
FINALIZER = "FINSIGHT_HOURLY_FINALIZE"  # fails whenever a run is not SUCCEEDED: its causes are alerted themselves
BLOCKING_SEVERITIES = ("error", "quarantine")  # snowpark/quality/results.py BLOCKING: these fail the CHECK task


@dataclass(frozen=True)
class AlertType:
    name: str
    team: Team
    runbook: str  # file under docs/runbooks/
    summary: str


ALERT_TYPES: dict[str, AlertType] = {
    t.name: t
    for t in (
        AlertType("connector_failed", "data_engineering", "source-db-unreachable.md",
                  "a connector could not read its source (ECS task stopped non-zero)"),
        AlertType("task_failed", "data_engineering", "failed-merge.md", "a task of the hourly graph failed"),
        AlertType("pipe_failed", "data_engineering", "quarantined-file.md",
                  "a pipe could not load a file: it is quarantined"),
        AlertType("quality_error", "data_engineering", "quality-error.md", "a data-quality check failed (error)"),
        AlertType("quality_warning", "data_engineering", "quality-error.md",
                  "a data-quality check failed (warn): recorded, the marts were still published"),
        AlertType("freshness_breach", "data_engineering", "sla-breach.md",
                  "a table is older than its freshness SLA"),
        AlertType("budget_exceeded", "devops", "warehouse-quota.md",
                  "month-to-date warehouse spend passed the environment's budget"),
    )
}  # fmt: skip
# What broke belongs to a source or table: its catalog owner's team is paged. The rest (budget, platform) keeps
# its type's team: infrastructure alerts go to DevOps whoever owns the data.
OWNER_ROUTED = frozenset(
    {"connector_failed", "task_failed", "pipe_failed", "quality_error", "quality_warning", "freshness_breach"}
)


def route(alert_type: str, owner: str) -> Team:
    """The team (and so the SNS topic) an alert pages: the owner's team from the catalog, else the type's team."""
    if owner and alert_type in OWNER_ROUTED:
        return team_of_owner(owner)
    return ALERT_TYPES[alert_type].team


@dataclass
class Alert:
    type: str
    key: str  # what is broken: a source, task, file, check or table
    message: str
    owner: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.type}:{self.key}"

    @property
    def kind(self) -> AlertType:
        return ALERT_TYPES[self.type]

    @property
    def team(self) -> Team:
        return route(self.type, self.owner)

    def payload(self, env: Environment, state: str) -> dict[str, Any]:
        kind, team = self.kind, self.team
        return {
            "alert_id": self.id,
            "alert_type": self.type,
            "state": state,
            "env": env.name,
            "key": self.key,
            "team": team,
            "team_name": TEAM_NAMES[team],
            "owner": self.owner or GITHUB_TEAMS[team],
            "topic": topic(env, team),
            "runbook": f"{RUNBOOKS}/{kind.runbook}",
            "oncall": ONCALL,
            "summary": kind.summary,
            "message": self.message,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            **self.details,
        }


# -- conditions, read from the OPS tables -------------------------------------------------------------------------
def _rows(cur: Any, sql: str) -> list[dict[str, Any]]:
    cur.execute(sql)
    names = [d[0].upper() for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def latest_tasks(env: Environment, cur: Any) -> list[dict[str, Any]]:
    """The latest attempt of every task (Snowflake's INFORMATION_SCHEMA.TASK_HISTORY) and stage (OPS.TASK_HISTORY)."""
    return _rows(cur, f"SELECT NAME, STATE, ERROR_MESSAGE, GRAPH_RUN_GROUP_ID, "
                      f"CAST(SCHEDULED_TIME AS VARCHAR) AS SCHEDULED FROM {task_runs.latest(env)} AS t")  # fmt: skip


def task_owners(env: Environment) -> dict[str, str]:
    from tasks.dag import build_dag

    return {node.name: node.owner for node in build_dag(env)}


def quality_errors(env: Environment, cur: Any) -> list[Alert]:
    """The latest result of every check (one per check id: table, check and column) in OPS.QUALITY_RESULTS: a failed
    `error` or `quarantine` check is a `quality_error`, a failed `warn` check a `quality_warning`; each names the
    table, the check and the run, owned by the table's source owner."""
    ops = env.snowflake.schemas["ops"]
    try:
        rows = _rows(cur, f"SELECT RUN_ID, CHECK_ID, CHECK_NAME, TABLE_NAME, SEVERITY, STATUS, OBSERVED, EXPECTED, "
                          f"DETAIL FROM {ops}.{QUALITY_RESULTS_TABLE} "
                          "QUALIFY ROW_NUMBER() OVER (PARTITION BY CHECK_ID ORDER BY CHECKED_AT DESC) = 1")  # fmt: skip
    except Exception:  # before the quality migration: no result, no alert
        return []
    out = []
    for row in sorted(rows, key=lambda r: r["CHECK_ID"]):
        if str(row["STATUS"]).upper() != "FAIL":
            continue
        kind = "quality_error" if str(row["SEVERITY"]).lower() in BLOCKING_SEVERITIES else "quality_warning"
        table, check, run_id = row["TABLE_NAME"], row["CHECK_NAME"], row["RUN_ID"]
        try:
            owner = table_owner(env, str(table).lower())
        except KeyError:  # a mart's check: the marts are data engineering's
            owner = ""
        message = (f"check {check} ({row['SEVERITY']}) failed on {table} in run {run_id}: observed {row['OBSERVED']}, "
                   f"expected {row['EXPECTED']}" + (f"; {row['DETAIL']}" if row["DETAIL"] else "")
                   + " (`finsight dq explain`)")  # fmt: skip
        out.append(Alert(kind, row["CHECK_ID"], message, owner=owner,
                         details={"table": table, "check": check, "check_id": row["CHECK_ID"], "run_id": run_id,
                                  "severity": row["SEVERITY"]}))  # fmt: skip
    return out


def owner_of_key(env: Environment, key: str) -> str:
    """The owner of the table an S3 key (a landed or quarantined file) belongs to; "" when it is no table's."""
    for table in env.warehouse_tables():
        if f"/{catalog.table_folder(table)}" in f"/{key}":
            return env.source(table.source).owner
    return ""


def month_spend_usd(env: Environment, cur: Any) -> float:
    """Month-to-date warehouse spend: busy seconds of the graph's tasks this month at the warehouse's rate."""
    from finsight.cost.tables import default_prices

    prices = default_prices()
    per_hour = prices["snowflake.warehouse_credits_per_hour"].value
    assert isinstance(per_hour, dict)
    rate = per_hour[env.snowflake.warehouses["transform"].size] * prices.usd("snowflake.credit_usd") / 3600
    # a month is longer than the table function's 7 days: Snowflake's ACCOUNT_USAGE view (365 days, completed runs)
    cur.execute(
        "SELECT COALESCE(SUM(DATEDIFF('millisecond', QUERY_START_TIME, COMPLETED_TIME)), 0) "
        f"FROM {task_history.account_usage()} WHERE COMPLETED_TIME IS NOT NULL "
        f"AND DATABASE_NAME = {literal(env.snowflake.database.upper())} "
        f"AND SCHEMA_NAME = {literal(env.snowflake.schemas['ops'].upper())} "
        "AND SCHEDULED_TIME >= DATE_TRUNC('month', CURRENT_TIMESTAMP())"
    )
    millis = cur.fetchone()[0] or 0
    return float(millis) / 1000 * rate


def evaluate(env: Environment, cur: Any, now: datetime | None = None) -> list[Alert]:
    """Every alert condition that holds now."""
    from finsight.ops.status import table_status

    alerts: list[Alert] = []
    owners = task_owners(env)
    for row in latest_tasks(env, cur):
        name, state = row["NAME"], row["STATE"]
        if state != "FAILED" or name in (FINALIZER, "LOAD"):
            continue  # LOAD fails for quarantined files: alerted per file below
        error = (row["ERROR_MESSAGE"] or "").splitlines()[0][:500] if row["ERROR_MESSAGE"] else ""
        details = {"task": name, "graph_run_group_id": row["GRAPH_RUN_GROUP_ID"]}
        if name.startswith("EXTRACT_"):
            source = name.removeprefix("EXTRACT_").lower()
            alerts.append(Alert("connector_failed", source, f"EXTRACT_{source.upper()} failed: {error}",
                                owner=owners.get(name, ""), details={**details, "source": source}))  # fmt: skip
        else:
            alerts.append(Alert("task_failed", name, f"{name} failed: {error}", owner=owners.get(name, ""),
                                details=details))  # fmt: skip
    ops = env.snowflake.schemas["ops"]
    for row in _rows(cur, f"SELECT PIPE_NAME, FILE_KEY, ERROR FROM {ops}.{catalog.LOAD_ERRORS_TABLE} "
                          "WHERE RELEASED_AT IS NULL ORDER BY FAILED_AT"):  # fmt: skip
        error = (row["ERROR"] or "").splitlines()[0][:300]
        message = f"{row['PIPE_NAME']} quarantined {row['FILE_KEY']}: {error}"
        alerts.append(Alert("pipe_failed", row["FILE_KEY"], message, owner=owner_of_key(env, row["FILE_KEY"]),
                            details={"pipe": row["PIPE_NAME"]}))  # fmt: skip
    alerts += quality_errors(env, cur)
    for status in table_status(env, cur, now):
        if status.breached:
            alerts.append(Alert("freshness_breach", status.table, f"{status.table} is {status.lag_minutes:.0f} min "
                                f"old, SLA {env.schedule.sla_minutes} min", owner=status.owner,
                                details={"table": status.table}))  # fmt: skip
    spend = month_spend_usd(env, cur)
    if spend > env.budget.monthly_usd:
        alerts.append(Alert("budget_exceeded", env.snowflake.warehouse_name("transform"),
                            f"month-to-date spend ${spend:.2f} > budget ${env.budget.monthly_usd:.2f}",
                            details={"spend_usd": round(spend, 4)}))  # fmt: skip
    return alerts


# -- publishing: OPS.ALERTS keeps what is open; SNS gets FIRING and RESOLVED -----------------------------------------
def ensure_alerts_table(env: Environment, cur: Any) -> str:
    table = f"{env.snowflake.schemas['ops']}.{ALERTS_TABLE}"
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {table} (ALERT_ID VARCHAR NOT NULL, ALERT_TYPE VARCHAR NOT NULL, "
        "TEAM VARCHAR NOT NULL, OWNER VARCHAR, TOPIC VARCHAR NOT NULL, RUNBOOK VARCHAR NOT NULL, MESSAGE VARCHAR, "
        "FIRST_SEEN_AT TIMESTAMP_NTZ NOT NULL, LAST_SEEN_AT TIMESTAMP_NTZ NOT NULL, RESOLVED_AT TIMESTAMP_NTZ)"
    )
    return table


def _sql(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def publish(env: Environment, message: dict[str, Any]) -> None:
    from finsight.aws import as_alert_publisher, client

    with as_alert_publisher(env):  # sns:Publish on the team topics, nothing else
        sns = client(env, "sns")
    sns.publish(
        TopicArn=topic_arn(env, message["team"]),
        Subject=f"[{env.name}] {message['state']} {message['alert_type']}"[:100],
        Message=json.dumps(message, default=str),
        MessageAttributes={"alert_type": {"DataType": "String", "StringValue": message["alert_type"]},
                           "state": {"DataType": "String", "StringValue": message["state"]}},
    )  # fmt: skip


def sync(env: Environment, conn: Any, now: datetime | None = None) -> list[dict[str, Any]]:
    """Evaluate, publish new alerts FIRING and cleared ones RESOLVED; returns the messages published."""
    cur = conn.cursor()
    table = ensure_alerts_table(env, cur)
    current = {a.id: a for a in evaluate(env, cur, now)}
    open_rows = _rows(cur, f"SELECT ALERT_ID, ALERT_TYPE, TEAM, OWNER, MESSAGE FROM {table} WHERE RESOLVED_AT IS NULL")
    open_ids = {r["ALERT_ID"]: r for r in open_rows}
    published = []
    for alert_id, alert in current.items():
        if alert_id in open_ids:
            cur.execute(f"UPDATE {table} SET LAST_SEEN_AT = SYSDATE(), MESSAGE = {_sql(alert.message)} "
                        f"WHERE ALERT_ID = {_sql(alert_id)} AND RESOLVED_AT IS NULL")  # fmt: skip
            continue
        message = alert.payload(env, "FIRING")
        cur.execute(
            f"INSERT INTO {table} (ALERT_ID, ALERT_TYPE, TEAM, OWNER, TOPIC, RUNBOOK, MESSAGE, FIRST_SEEN_AT, "
            f"LAST_SEEN_AT) SELECT {_sql(alert_id)}, {_sql(alert.type)}, {_sql(message['team'])}, "
            f"{_sql(message['owner'])}, {_sql(message['topic'])}, {_sql(message['runbook'])}, "
            f"{_sql(alert.message)}, SYSDATE(), SYSDATE()"
        )
        publish(env, message)
        published.append(message)
    for alert_id, row in open_ids.items():
        if alert_id in current:
            continue
        cur.execute(f"UPDATE {table} SET RESOLVED_AT = SYSDATE() WHERE ALERT_ID = {_sql(alert_id)} "
                    "AND RESOLVED_AT IS NULL")  # fmt: skip
        key = alert_id.split(":", 1)[1]
        message = Alert(row["ALERT_TYPE"], key, f"recovered: {row['MESSAGE']}", owner=row["OWNER"] or "").payload(
            env, "RESOLVED"
        )
        publish(env, message)
        published.append(message)
    return published


def open_alerts(env: Environment, conn: Any) -> list[dict[str, Any]]:
    cur = conn.cursor()
    table = ensure_alerts_table(env, cur)
    return _rows(cur, f"SELECT ALERT_ID, ALERT_TYPE, TEAM, OWNER, TOPIC, RUNBOOK, MESSAGE, "
                      f"CAST(FIRST_SEEN_AT AS VARCHAR) AS FIRST_SEEN_AT FROM {table} WHERE RESOLVED_AT IS NULL "
                      "ORDER BY FIRST_SEEN_AT")  # fmt: skip


# -- local inboxes: an SQS queue subscribed to each team's topic ------------------------------------------------------
def inbox_name(env: Environment, team: str) -> str:
    return f"{topic(env, team)}-inbox"  # type: ignore[arg-type]


def ensure_inboxes(env: Environment) -> dict[str, str]:
    """Local only: one SQS queue per topic, subscribed with raw delivery (idempotent). team -> queue URL."""
    from finsight.aws import client

    sns, sqs = client(env, "sns"), client(env, "sqs")
    out = {}
    for team in env.aws.alert_topics:
        arn = sns.create_topic(Name=topic(env, team))["TopicArn"]  # type: ignore[arg-type]
        url = sqs.create_queue(QueueName=inbox_name(env, team))["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        subs = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
        if not any(s["Endpoint"] == queue_arn for s in subs):
            sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn,
                          Attributes={"RawMessageDelivery": "true"})  # fmt: skip
        out[team] = url
    return out


def sink_path(env: Environment) -> Path:
    assert env.local is not None
    return repo_root() / env.local.state_dir / "alerts.jsonl"


def drain_inboxes(env: Environment) -> list[dict[str, Any]]:
    """Receive what arrived on each team's topic, append it to the local sink; returns the new messages."""
    from finsight.aws import client

    sqs = client(env, "sqs")
    new = []
    for team, url in ensure_inboxes(env).items():
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not got:
                break
            for msg in got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
                body = json.loads(msg["Body"])
                if "Message" in body and "alert_id" not in body:  # an SNS envelope (raw delivery not applied)
                    body = json.loads(body["Message"])
                if "alert_id" in body:  # anything else on the topic is not ours to list
                    new.append({**body, "received_on": topic(env, team)})  # type: ignore[arg-type]
    if new:
        path = sink_path(env)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.writelines(json.dumps(m, default=str) + "\n" for m in new)
    return new


def received(env: Environment) -> list[dict[str, Any]]:
    path = sink_path(env)
    if not path.exists():
        return []
    messages = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [m for m in messages if "alert_id" in m]  # a line written by an older version is skipped


def latest_by_alert(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for m in messages:
        out[m["alert_id"]] = m
    return out
