"""Who owns a signal: every alert, table and task names its team, derived from the catalog (never typed twice)."""

from __future__ import annotations

from typing import Literal

from finsight.config import Environment

Team = Literal["data_engineering", "devops"]
TEAM_NAMES: dict[str, str] = {"data_engineering": "data engineering", "devops": "DevOps"}
GITHUB_TEAMS: dict[str, str] = {"data_engineering": "@finsight/data-engineering", "devops": "@finsight/devops"}
ONCALL = "docs/ownership.md#on-call-and-escalation"  # the shared on-call path of both teams
RUNBOOKS = "docs/runbooks"


def table_owner(env: Environment, qualified: str) -> str:
    """The owner of `<source>.<table>`: its source's owner in environments/base.yaml."""
    return env.source(qualified.partition(".")[0]).owner


def team_of_owner(owner: str) -> Team:
    return "devops" if "devops" in owner and "data-engineering" not in owner else "data_engineering"


def topic(env: Environment, team: Team) -> str:
    return env.aws.alert_topics[team]


def topic_arn(env: Environment, team: Team) -> str:
    return f"arn:aws:sns:{env.aws.region}:{env.aws.account_id}:{topic(env, team)}"


def contact_sql(env: Environment) -> list[str]:
    """Snowflake contacts (`WITH CONTACT`, Snowflake only: fakesnow has no contacts) for the two teams' topics.

    Attach with `ALTER TABLE ... SET CONTACT STEWARD = OPS.<TEAM>_CONTACT`; rendered for deployed environments only.
    """
    if env.is_local:
        return []
    ops = f"{env.snowflake.database}.{env.snowflake.schemas['ops']}"
    return [
        f"CREATE CONTACT IF NOT EXISTS {ops}.{team.upper()}_CONTACT "
        f"NOTIFICATION_INTEGRATION = FINSIGHT_{env.name.upper()}_ALERTS_SNS_INTEGRATION "
        f"COMMENT = '{TEAM_NAMES[team]} on-call, topic {topic(env, team)}'"  # type: ignore[arg-type]
        for team in TEAM_NAMES
    ]
