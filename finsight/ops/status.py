"""`finsight status`: per table, last success, freshness, lag against the SLA, last error, owner, next action.

Read from the OPS tables (LANDED_BATCHES, MERGED_BATCHES, LOAD_ERRORS) and the task outcomes (Snowflake's
INFORMATION_SCHEMA.TASK_HISTORY for the graph tasks, OPS.TASK_HISTORY for the stages): the same in every environment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from finsight import catalog
from finsight.config import Environment
from finsight.ops import task_runs
from finsight.ops.ownership import GITHUB_TEAMS, RUNBOOKS, team_of_owner


@dataclass
class TableStatus:
    table: str  # <source>.<table>
    source: str
    owner: str
    team: str
    last_success: str | None  # last batch merged into CURATED
    freshness_at: str | None  # source snapshot time CURATED is current to
    lag_minutes: float | None
    sla_minutes: int
    last_error: str | None
    state: str  # ok | failing | late | no data
    next_action: str

    @property
    def breached(self) -> bool:
        return self.lag_minutes is not None and self.lag_minutes > self.sla_minutes

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "breached": self.breached}


def _ts(value: Any) -> datetime | None:
    if value is None or str(value).startswith("1970-01-01"):  # fakesnow's server returns NULL as the epoch
        return None
    return datetime.fromisoformat(str(value)[:26])


def table_status(env: Environment, cur: Any, now: datetime | None = None) -> list[TableStatus]:
    now = now or datetime.now(UTC).replace(tzinfo=None)
    ops = env.snowflake.schemas["ops"]
    cur.execute(
        "SELECT m.RAW_TABLE, CAST(MAX(m.MERGED_AT) AS VARCHAR), CAST(MAX(l.EXTRACTED_AT) AS VARCHAR) "
        f"FROM {ops}.{catalog.MERGED_TABLE} m JOIN {ops}.{catalog.MANIFEST_TABLE} l "
        "ON l.BATCH_ID = m.BATCH_ID AND l.RAW_TABLE = m.RAW_TABLE GROUP BY m.RAW_TABLE"
    )
    merged = {r[0].upper(): (_ts(r[1]), _ts(r[2])) for r in cur.fetchall()}
    cur.execute(
        f"SELECT l.RAW_TABLE, CAST(MIN(l.EXTRACTED_AT) AS VARCHAR) FROM {ops}.{catalog.MANIFEST_TABLE} l "
        f"WHERE NOT EXISTS (SELECT 1 FROM {ops}.{catalog.MERGED_TABLE} m WHERE m.BATCH_ID = l.BATCH_ID "
        "AND m.RAW_TABLE = l.RAW_TABLE) GROUP BY l.RAW_TABLE"
    )
    waiting = {r[0].upper(): _ts(r[1]) for r in cur.fetchall()}
    cur.execute(
        f"SELECT NAME, STATE, ERROR_MESSAGE, CAST(QUERY_START_TIME AS VARCHAR) FROM {task_runs.latest(env)} AS t"
    )
    tasks = {r[0]: (r[1], r[2], _ts(r[3])) for r in cur.fetchall()}
    cur.execute(f"SELECT FILE_KEY, ERROR FROM {ops}.{catalog.LOAD_ERRORS_TABLE} WHERE RELEASED_AT IS NULL")
    quarantined = cur.fetchall()

    out = []
    for table in env.warehouse_tables():
        raw = table.raw_name
        owner = env.source(table.source).owner
        last_merged, merged_snapshot = merged.get(raw, (None, None))
        extract = tasks.get(f"EXTRACT_{table.source.upper()}")
        merge = tasks.get(f"MERGE_{raw}")
        # a table with nothing new lands no batch: a successful read of its source keeps it fresh
        fresh = merged_snapshot
        if extract and extract[0] == "SUCCEEDED" and extract[2] and raw not in waiting:
            fresh = max(d for d in (fresh, extract[2]) if d is not None)
        if raw in waiting and waiting[raw] is not None and fresh is not None:
            fresh = min(fresh, waiting[raw])
        lag = None if fresh is None else round((now - fresh).total_seconds() / 60, 1)
        folder = f"/{catalog.table_folder(table)}"
        errors = []
        if extract and extract[0] == "FAILED":
            errors.append((f"EXTRACT_{table.source.upper()}: {extract[1] or ''}", "source-db-unreachable.md",
                           f"finsight extract --env {env.name} --source {table.source}"))  # fmt: skip
        if merge and merge[0] == "FAILED":
            errors.append(
                (f"MERGE_{raw}: {merge[1] or ''}", "failed-merge.md", f"finsight dag retry-last --env {env.name}")
            )
        for key, error in quarantined:
            if folder in f"/{key}":
                errors.append((f"quarantined {key}: {error}", "quarantined-file.md",
                               f"finsight quarantine list --env {env.name}"))  # fmt: skip
        state = "failing" if errors else ("no data" if lag is None else "ok")
        if not errors and lag is not None and lag > env.schedule.sla_minutes:
            state = "late"
        if errors:
            message, runbook, command = errors[0]
            action = f"{command}  (runbook {RUNBOOKS}/{runbook})"
        elif state == "late":
            message, action = None, f"finsight run --env local  (runbook {RUNBOOKS}/sla-breach.md)"
            if not env.is_local:
                action = (
                    f"finsight extract --env {env.name} --source {table.source}  (runbook {RUNBOOKS}/sla-breach.md)"
                )
        else:
            message, action = None, "-"
        out.append(TableStatus(
            table=table.qualified, source=table.source, owner=owner, team=team_of_owner(owner),
            last_success=None if last_merged is None else last_merged.isoformat(sep=" ", timespec="seconds"),
            freshness_at=None if fresh is None else fresh.isoformat(sep=" ", timespec="seconds"),
            lag_minutes=lag, sla_minutes=env.schedule.sla_minutes,
            last_error=None if message is None else message.splitlines()[0][:300], state=state, next_action=action,
        ))  # fmt: skip
    return out


def team_owner(team: str) -> str:
    return GITHUB_TEAMS[team]
