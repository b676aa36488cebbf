"""The platform's one time-zone rule: UTC everywhere, set at every level where Snowflake decides it.

Snowflake's CURRENT_TIMESTAMP() returns TIMESTAMP_LTZ in the session's TIMEZONE ("CURRENT_TIMESTAMP",
https://docs.snowflake.com/en/sql-reference/functions/current_timestamp); stored into a TIMESTAMP_NTZ column it
keeps that wall-clock time and drops the zone. TIMEZONE defaults to America/Los_Angeles ("Parameters",
https://docs.snowflake.com/en/sql-reference/parameters#timezone), so every `_MERGED_AT`, `checked_at` or run
timestamp would sit 7-8 hours behind the UTC times the connectors land (`_extracted_at`), and latency and
freshness would be off by as much. Hence, in the parameter hierarchy (account > user > session):
  - account and service user: TIMEZONE = 'UTC' (cdktf/finsight_infra/snowflake_account.py);
  - every session the platform opens (connector, Snowpark, schemachange): session parameter TIMEZONE = 'UTC',
    so a later change of the account default cannot shift the platform's clocks;
  - every task: `TIMEZONE = 'UTC'` on CREATE TASK (a task's session parameters, "CREATE TASK",
    https://docs.snowflake.com/en/sql-reference/sql/create-task), because a task runs as its owner, not in our session.
"""

from __future__ import annotations

from types import MappingProxyType

TIMEZONE = "UTC"
SESSION_PARAMETERS = MappingProxyType({"TIMEZONE": TIMEZONE})
