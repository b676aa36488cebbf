"""The account and the service user default to UTC (finsight/time_zone.py), in every environment's synth output.

Snowflake's TIMEZONE defaults to America/Los_Angeles ("Parameters",
https://docs.snowflake.com/en/sql-reference/parameters#timezone) and CURRENT_TIMESTAMP() returns TIMESTAMP_LTZ in
the session's zone ("CURRENT_TIMESTAMP", https://docs.snowflake.com/en/sql-reference/functions/current_timestamp):
left alone, timestamps written into the TIMESTAMP_NTZ columns would be Pacific wall-clock time. No terraform here:
what the plan would apply is the synthesized JSON.
"""

from __future__ import annotations

from finsight import time_zone
from tests.infra.conftest import Synth


def test_account_default_time_zone_is_utc(stack: Synth) -> None:
    (account,) = stack.resources("snowflake", "snowflake_current_account").values()
    assert account["timezone"] == time_zone.TIMEZONE == "UTC"
    # one owner per parameter: a second resource setting TIMEZONE would fight snowflake_current_account
    params = stack.resources("snowflake", "snowflake_account_parameter").values()
    assert not [p for p in params if p["key"].upper() == "TIMEZONE"]


def test_service_user_default_time_zone_is_utc(stack: Synth) -> None:
    users = stack.resources("snowflake", "snowflake_service_user").values()
    assert stack.env.snowflake.user in {u["name"] for u in users}
    assert {u["timezone"] for u in users} == {"UTC"}  # the service, governance deploy and plan users alike
