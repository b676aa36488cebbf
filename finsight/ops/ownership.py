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


def contact_name(env: Environment, team: str) -> str:
    return f"{env.snowflake.database}.{env.snowflake.schemas['ops']}.{team.upper()}_ONCALL"


def contact_sql(env: Environment) -> list[str]:
    """Snowflake contacts (one per team: its alert topic and the shared on-call path) and `SET CONTACT` on every
    CURATED table (STEWARD: the owning team from the catalog; SUPPORT: DevOps for the platform).

    Rendered for Snowflake only: fakesnow has no contacts, so the local environment renders nothing.
    """
    if env.is_local:
        return []
    # one clause a line: the rendered migration stays within sqlfluff's line length
    out = [
        f"CREATE CONTACT IF NOT EXISTS {contact_name(env, team)}\n"
        f"COMMENT = '{TEAM_NAMES[team]} on-call: SNS topic {topic(env, team)}; {ONCALL}'"  # type: ignore[arg-type]
        for team in TEAM_NAMES
    ]
    for table in env.warehouse_tables():
        steward = contact_name(env, team_of_owner(env.source(table.source).owner))
        out.append(
            f"ALTER TABLE {env.snowflake.qualified('curated', table.curated_name)} SET CONTACT\n"
            f"STEWARD = {steward},\nSUPPORT = {contact_name(env, 'devops')}"
        )
    return out
