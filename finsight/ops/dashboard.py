"""FinSight ops dashboard (Streamlit): DAG run timeline, freshness and lag per table, quality results, load volumes,
SLO burn, open alerts with owners.

Runs as Streamlit in Snowflake (the active Snowpark session) or locally with `finsight dashboard --env local`
against the local Snowflake (fakesnow). Every figure comes from the OPS tables, as `finsight status | slo | alerts`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

SECTIONS = ("DAG run timeline", "Freshness and lag per table", "Quality results", "Load volumes", "SLO burn",
            "Open alerts")  # fmt: skip


def _deployed() -> dict[str, Any] | None:
    """The bundle's marker (environment name) when this app runs as Streamlit in Snowflake; None locally."""
    from finsight.ops.dashboard_deploy import DEPLOYED_MARKER

    marker = Path(__file__).with_name(DEPLOYED_MARKER)
    return json.loads(marker.read_text()) if marker.exists() else None


def _local_env() -> Any:
    from finsight.config import load_environment

    deployed = _deployed()
    return load_environment(deployed["env"] if deployed else os.environ.get("FINSIGHT_ENV", "local"))


def _in_snowflake() -> bool:
    return _deployed() is not None


class SnowparkCursor:
    """The DB-API subset `finsight status | slo | alerts` read with, over the app's Snowpark session (in Snowflake,
    the app owner's session: no credentials in the app)."""

    def __init__(self, session: Any) -> None:
        self.session, self.description, self._rows = session, [], []  # type: ignore[var-annotated]

    def cursor(self) -> SnowparkCursor:
        return self

    def execute(self, sql: str) -> SnowparkCursor:
        frame = self.session.sql(sql)
        rows = frame.collect()
        names = list(rows[0]._fields) if rows else [f.name for f in frame.schema.fields]
        self.description = [(n.strip('"').upper(),) for n in names]
        self._rows = [tuple(r) for r in rows]
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None


@st.cache_resource
def _connection() -> Any:
    if _in_snowflake():
        from snowflake.snowpark.context import get_active_session

        return SnowparkCursor(get_active_session())
    from finsight import warehouse

    return warehouse.connect(_local_env())


def query(sql: str) -> pd.DataFrame:
    cur = _connection().cursor()
    cur.execute(sql)
    return pd.DataFrame(cur.fetchall(), columns=[d[0].upper() for d in cur.description])


def main() -> None:
    from finsight import catalog
    from finsight.ops import alerts, slo, status, task_runs

    env = _local_env()
    ops = env.snowflake.schemas["ops"]
    st.set_page_config(page_title="FinSight ops", layout="wide")
    st.title(f"FinSight ops: {env.name}")

    st.header(SECTIONS[0])
    runs = query(
        "SELECT RUN_ID, STATE, MIN(STARTED_AT) OVER (PARTITION BY RUN_ID) AS STARTED_AT, FINISHED_AT "
        f"FROM {ops}.{catalog.RUN_LOG_TABLE} WHERE TASK_NAME = 'RUN' "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY RUN_ID ORDER BY STARTED_AT DESC) = 1 ORDER BY STARTED_AT DESC LIMIT 48"
    )
    tasks = query(  # Snowflake's record of the graph tasks plus the stages' rows (finsight/ops/task_runs.py)
        "SELECT NAME, STATE, QUERY_START_TIME, COMPLETED_TIME, GRAPH_RUN_GROUP_ID "
        f"FROM {task_runs.attempts(env)} AS t ORDER BY SCHEDULED_TIME DESC LIMIT 300"
    )
    st.caption(f"{len(runs)} graph runs, {int((runs['STATE'] != 'SUCCEEDED').sum()) if len(runs) else 0} not succeeded")
    st.dataframe(runs, width="stretch")
    if len(tasks):
        tasks["SECONDS"] = (
            pd.to_datetime(tasks["COMPLETED_TIME"]) - pd.to_datetime(tasks["QUERY_START_TIME"])
        ).dt.total_seconds()
        st.bar_chart(tasks.groupby("NAME")["SECONDS"].max())

    st.header(SECTIONS[1])
    cur = _connection().cursor()
    rows = status.table_status(env, cur)
    fresh = pd.DataFrame([r.as_dict() for r in rows])
    if len(fresh):
        st.dataframe(fresh[["table", "state", "lag_minutes", "sla_minutes", "last_success", "owner", "last_error",
                            "next_action"]], width="stretch")  # fmt: skip
        st.bar_chart(fresh.set_index("table")["lag_minutes"])

    st.header(SECTIONS[2])
    try:
        quality = query(f"SELECT * FROM {ops}.{alerts.QUALITY_RESULTS_TABLE} LIMIT 500")
        st.dataframe(quality, width="stretch")
    except Exception:  # the checks' table is deployed by the data-quality work
        st.info(f"{ops}.{alerts.QUALITY_RESULTS_TABLE} does not exist yet: no quality result")

    st.header(SECTIONS[3])
    volumes = query(
        f"SELECT l.RAW_TABLE, SUM(l.ROW_COUNT) AS ROWS_LANDED, SUM(l.FILE_COUNT) AS FILES, COUNT(*) AS BATCHES "
        f"FROM {ops}.{catalog.MANIFEST_TABLE} l GROUP BY l.RAW_TABLE ORDER BY ROWS_LANDED DESC"
    )
    st.dataframe(volumes, width="stretch")
    if len(volumes):
        st.bar_chart(volumes.set_index("RAW_TABLE")["ROWS_LANDED"])

    st.header(SECTIONS[4])
    months = slo.monthly(env, cur)
    burn = pd.DataFrame([m.as_dict() for m in months])
    if len(burn):
        latest = months[-1]
        a, b, c = st.columns(3)
        a.metric("success rate (target 99.9 %)", f"{latest.success_rate * 100:.2f} %")
        b.metric("latency p95 (target 30 min)", "-" if latest.latency_p95_minutes is None else
                 f"{latest.latency_p95_minutes:.1f} min")  # fmt: skip
        c.metric("error budget burned", f"{latest.budget_burned * 100:.0f} %")
        st.dataframe(burn, width="stretch")
    else:
        st.info("no graph run yet")

    st.header(SECTIONS[5])
    open_alerts = pd.DataFrame(alerts.open_alerts(env, _connection()))
    if len(open_alerts):
        st.dataframe(open_alerts[["ALERT_TYPE", "ALERT_ID", "TEAM", "OWNER", "RUNBOOK", "MESSAGE", "FIRST_SEEN_AT"]],
                     width="stretch")  # fmt: skip
    else:
        st.success("no open alert")


main()
