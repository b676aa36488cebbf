"""The Task DAGs, generated from the config and the marts' metadata (owner + docs in every task's COMMENT).

Hourly graph, from landing to validated marts:

  EXTRACT_<SOURCE> (ECS connectors) -> LOAD (Snowpipe)                 stages outside Snowflake: in the history,
                                                                       not CREATE TASK statements
  FINSIGHT_HOURLY (root, triggered: WHEN SYSTEM$STREAM_HAS_DATA on the stream over OPS.LANDED_BATCHES)
    -> MERGE_<TABLE> (one per source table)
    -> [quality checks of the merged tables: quality_nodes(), the data-quality issue fills this slot]
    -> MART_<MART> (after the merges (and checks) of its upstream tables)
    -> VALIDATE_<MART> (the checks of its metadata.yaml)
  FINSIGHT_HOURLY_FINALIZE (finalizer: state FAILED / PARTIAL / SUCCEEDED, latency, alert)

Why triggered: connectors finish at different minutes. A root fired at a fixed minute makes a batch that lands a
minute late wait an hour; a triggered root starts when batches have landed (Snowflake starts at most one graph
run at a time and coalesces what landed meanwhile), so a late batch reaches the marts in the same hour. Every run
is incremental (merge pending batches, rebuild changed dates), so extra runs cost little.

Daily retention graph: FINSIGHT_RETENTION (root, cron: PRUNE_RAW) -> APPLY_RETENTION (7 years, hot and archive)
  -> ARCHIVE_CURATED (only with `curated_archive:`: history older than hot_months -> Iceberg tables on S3).

The same nodes render to CREATE TASK statements for Snowflake and drive the local runner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from finsight import archive_catalog, catalog, marts, quality, time_zone
from finsight.config import Environment
from snowpark import procedures
from snowpark.procedures import Procedure
from snowpark.sql_text import literal

ROOT = "FINSIGHT_HOURLY"
ROOT_RETRY_ATTEMPTS = 2
FINALIZER = "FINSIGHT_HOURLY_FINALIZE"
LOAD = "LOAD"
RETENTION_ROOT = "FINSIGHT_RETENTION"
RETENTION_7Y = "APPLY_RETENTION"
ARCHIVE = "ARCHIVE_CURATED"
RUN_ID_EXPR = "SYSTEM$TASK_RUNTIME_INFO('CURRENT_TASK_GRAPH_RUN_GROUP_ID')"  # Snowflake's id of this graph run
CONFIG_EXPR = "TO_JSON(SYSTEM$GET_TASK_GRAPH_CONFIG())"  # the root's CONFIG merged with EXECUTE TASK ... USING CONFIG
DEFAULT_CONFIG = {"full_refresh": False, "backfill": []}
MAX_LINE_LENGTH = 140  # .sqlfluff max_line_length
PLATFORM_OWNERS = "@finsight/data-engineering @finsight/devops"


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


RUN_ID = _Marker("RUN_ID")  # the graph run id (Snowflake's graph run group id)
CONFIG = _Marker("CONFIG")  # the graph run's CONFIG as JSON text


@dataclass(frozen=True)
class Expr:
    """An argument that differs in form only: SQL text for Snowflake, a value for the local runner."""

    sql: str
    local: Any


@dataclass(frozen=True)
class TaskNode:
    name: str
    procedure: Procedure | None  # None: a stage outside Snowflake (extract, load)
    args: tuple[Any, ...]
    after: tuple[str, ...]
    warehouse: str | None  # logical: load | transform; None for a stage (it runs on ECS or Snowpipe)
    owner: str
    comment: str
    # predecessors for order alone: the task does not read their output, it must only not overtake them
    waits_for: tuple[str, ...] = ()

    @property
    def predecessors(self) -> tuple[str, ...]:
        """Every task this one runs after (Snowflake's AFTER list): what it reads, then what it waits for."""
        return tuple(dict.fromkeys([*self.after, *self.waits_for]))

    @property
    def is_stage(self) -> bool:
        return self.procedure is None

    def call_values(self, run_id_sql: str) -> list[str]:
        """The CALL's arguments as SQL text."""
        out = []
        for a in self.args:
            if a is RUN_ID:
                out.append(run_id_sql)
            elif a is CONFIG:
                out.append(CONFIG_EXPR)
            elif isinstance(a, Expr):
                out.append(a.sql)
            elif isinstance(a, int) and not isinstance(a, bool):
                out.append(str(a))
            else:
                out.append(literal(a))
        return out

    def call_sql(self, run_id_sql: str) -> str:
        assert self.procedure is not None, f"{self.name} is a stage, not a task"
        return f"CALL {self.procedure.name}({', '.join(self.call_values(run_id_sql))})"

    def local_args(self, run_id: str, config_json: str = "{}") -> list[Any]:
        out: list[Any] = []
        for a in self.args:
            if a is RUN_ID:
                out.append(run_id)
            elif a is CONFIG:
                out.append(config_json)
            elif isinstance(a, Expr):
                out.append(a.local)
            else:
                out.append(a)
        return out


def snowflake_cron(eventbridge_cron: str, timezone: str) -> str:
    """EventBridge `m h dom mon dow year` -> Snowflake `USING CRON m h dom mon dow tz`."""
    fields = eventbridge_cron.split()[:5]
    return "USING CRON " + " ".join("*" if f == "?" else f for f in fields) + f" {timezone}"


def trigger_stream(env: Environment) -> str:
    return f"{env.snowflake.schemas['ops']}.{catalog.LANDED_STREAM}"


def quality_nodes(env: Environment, merges: dict[str, str]) -> dict[str, list[TaskNode]]:
    """Slot for the data-quality issue: check tasks per table (`<source>.<table>` -> nodes after its merge).

    Marts wait for the checks of their upstream tables, so a failed check keeps bad data out of MARTS.
    One CHECK_<TABLE> task per table runs every check the config declares for it (finsight/config/quality.py).
    A check also waits for the merges of the tables its references point at: Snowflake runs sibling tasks at
    once, and a referential check that ran before its parent's merge would count this hour's new parents as missing.
    """
    out: dict[str, list[TaskNode]] = {}
    for table in env.warehouse_tables():
        if table.qualified not in merges:
            continue
        spec = json.dumps(quality.table_quality_spec(env, table), separators=(",", ":"))
        parents = [merges[r["parent_table"]] for r in quality.references(env, table) if r["parent_table"] in merges]
        own = merges[table.qualified]
        out[table.qualified] = [
            TaskNode(f"CHECK_{table.raw_name}", procedures.CHECK_TABLE, (spec, RUN_ID), (own,),
                     "transform", env.source(table.source).owner, f"Quality checks of {table.qualified}",
                     waits_for=tuple(p for p in dict.fromkeys(parents) if p != own))
        ]  # fmt: skip
    return out


def build_dag(env: Environment) -> list[TaskNode]:
    """The hourly graph in a topological order (stages first, finalizer last)."""
    ops = env.snowflake.schemas["ops"]
    nodes = [
        TaskNode(f"EXTRACT_{source.upper()}", None, (), (), None, src.owner,
                 f"ECS connector: {src.description} -> S3 landing")
        for source, src in [*env.postgres_sources.items(), *env.api_sources.items()]
    ]  # fmt: skip
    nodes.append(TaskNode(LOAD, None, (), tuple(n.name for n in nodes), None, PLATFORM_OWNERS, "Snowpipe: S3 -> RAW"))
    trigger = Expr(literal(trigger_stream(env)), f"{ops}.{catalog.MANIFEST_TABLE}")
    nodes.append(
        TaskNode(ROOT, procedures.START_RUN, (RUN_ID, CONFIG, trigger), (LOAD,), "transform", PLATFORM_OWNERS,
                 "Hourly root, triggered when batches land: opens the run")
    )  # fmt: skip
    merges: dict[str, str] = {}
    for table in env.warehouse_tables():
        spec = json.dumps(marts.merge_spec(env, table), separators=(",", ":"))
        name = f"MERGE_{table.raw_name}"
        merges[table.qualified] = name
        nodes.append(
            TaskNode(
                name,
                procedures.MERGE_TABLE,
                (spec, RUN_ID, None),
                (ROOT,),
                "load",
                env.source(table.source).owner,
                f"RAW -> CURATED merge of {table.qualified}",
            )
        )
    checks = quality_nodes(env, merges)
    for table_nodes in checks.values():
        nodes.extend(table_nodes)
    for mart in marts.marts():
        after: list[str] = []
        for up in mart.upstreams:
            if up.table in merges:
                # the table's checks run after its merge: waiting for them is waiting for both
                after.extend([n.name for n in checks.get(up.table, [])] or [merges[up.table]])
        build = f"MART_{mart.table_name}"
        nodes.append(
            TaskNode(build, procedures.BUILD_MART, (mart.name, RUN_ID, CONFIG), tuple(after), "transform",
                     mart.owner, f"{mart.friendly_name}: {mart.grain}")
        )  # fmt: skip
        nodes.append(
            TaskNode(f"VALIDATE_{mart.table_name}", procedures.VALIDATE_MART, (mart.name, RUN_ID), (build,),
                     "transform", mart.owner, f"Checks of {mart.name} (metadata.yaml)")
        )  # fmt: skip
    nodes.append(
        # its own name: FINALIZE leaves its own (executing, or earlier attempts') rows out of the run's outcome
        TaskNode(FINALIZER, procedures.FINALIZE_RUN, (RUN_ID, FINALIZER), (), "transform", PLATFORM_OWNERS,
                 "Finalizer: run state and latency; fails (alerts) unless SUCCEEDED")
    )  # fmt: skip
    return nodes


def build_retention_dag(env: Environment) -> list[TaskNode]:
    nodes = [
        TaskNode(RETENTION_ROOT, procedures.PRUNE_RAW, (RUN_ID, env.retention.raw_table_days), (), "transform",
                 PLATFORM_OWNERS, f"Daily: prune RAW rows {env.retention.raw_table_days} days after merge"),
        TaskNode(RETENTION_7Y, procedures.APPLY_RETENTION, (RUN_ID, env.retention.curated_years), (RETENTION_ROOT,),
                 "transform", PLATFORM_OWNERS, f"Keep CURATED and MARTS {env.retention.curated_years} years"),
    ]  # fmt: skip
    spec = archive_catalog.archive_spec(env)
    if spec is not None:
        # after the 7-year retention: nothing due for deletion is written to Iceberg first
        spec_json = json.dumps(spec, separators=(",", ":"))
        nodes.append(
            TaskNode(ARCHIVE, procedures.ARCHIVE_CURATED, (RUN_ID, spec_json), (RETENTION_7Y,), "transform",
                     PLATFORM_OWNERS, f"Monthly: rows older than {spec['hot_months']} months to Iceberg")
        )  # fmt: skip
    return nodes


def _call_block(node: TaskNode) -> str:
    """The task body, one argument per line when there are several (what sqlfluff and reviewers read)."""
    values = node.call_values(RUN_ID_EXPR)
    assert node.procedure is not None
    if len(values) == 1:
        return f"    CALL {node.procedure.name}({values[0]})"
    lines = [f"        {v}," for v in values[:-1]] + [f"        {values[-1]}"]
    # the MERGE spec is one JSON literal that grows with the column list: it cannot be wrapped
    lines = [f"{line}  -- noqa: LT05" if len(line) > MAX_LINE_LENGTH else line for line in lines]
    return f"    CALL {node.procedure.name}(\n" + "\n".join(lines) + "\n    )"


def _create(env: Environment, node: TaskNode) -> str:
    ops = env.snowflake.schemas["ops"]
    assert node.warehouse is not None, f"{node.name} is a stage, not a task"
    clauses = [f"WAREHOUSE = {env.snowflake.warehouse_name(node.warehouse)}"]
    if node.name == RETENTION_ROOT:
        clauses.append(f"SCHEDULE = '{snowflake_cron(env.schedule.retention_cron, env.schedule.timezone)}'")
        clauses.append(f"ERROR_INTEGRATION = {catalog.error_integration(env)}")
    if node.name == ROOT:
        clauses.append("CONFIG = $$" + json.dumps(DEFAULT_CONFIG) + "$$")
    # a task runs as its owner, not in our session: its CURRENT_TIMESTAMP()s are UTC only if it says so
    # (CREATE TASK ... <session_parameter> = <value>; finsight/time_zone.py)
    clauses.extend(f"{name} = '{value}'" for name, value in time_zone.SESSION_PARAMETERS.items())
    if node.name == ROOT:
        clauses.append(f"USER_TASK_TIMEOUT_MS = {env.schedule.sla_minutes * 60_000}")
        # a failed graph run notifies the alerts SNS topic; transient failures get retried (99.9 % target)
        clauses.append(f"ERROR_INTEGRATION = {catalog.error_integration(env)}")
    comment = f"{node.comment} | owner: {node.owner}".replace("'", "\u2019")
    clauses.append(f"COMMENT = '{comment}'")
    if node.name == FINALIZER:
        clauses.append(f"FINALIZE = {ops}.{ROOT}")
    if node.name == ROOT:
        clauses.append(f"TASK_AUTO_RETRY_ATTEMPTS = {ROOT_RETRY_ATTEMPTS}")
    task_after = [a for a in node.predecessors if a != LOAD]  # the root follows LOAD through its trigger, not AFTER
    if task_after:
        after = "AFTER " + ", ".join(f"{ops}.{a}" for a in task_after)
        # a mart with many upstream merges (PostgreSQL + API) cannot wrap its AFTER list: tell sqlfluff so
        clauses.append(f"{after}  -- noqa: LT05" if len(after) + 4 > MAX_LINE_LENGTH else after)
    if node.name == ROOT:
        clauses.append(f"WHEN SYSTEM$STREAM_HAS_DATA('{trigger_stream(env)}')")
    # sqlfluff lays WHEN out like a WHERE: unindented
    head = f"CREATE OR REPLACE TASK {ops}.{node.name}\n" + "\n".join(
        c if c.startswith("WHEN ") else f"    {c}" for c in clauses
    )
    return f"{head}\nAS\n{_call_block(node)};\n"


def graphs(env: Environment) -> list[list[TaskNode]]:
    """Every task graph `dag deploy` creates: the hourly graph and the retention graph."""
    return [build_dag(env), build_retention_dag(env)]


def graph_root(nodes: list[TaskNode]) -> TaskNode:
    """The root of a graph: the one task that follows no task (stages are not tasks) and is not its finalizer."""
    tasks = {n.name for n in nodes if not n.is_stage}
    roots = [n for n in nodes if not n.is_stage and n.name != FINALIZER and not tasks.intersection(n.predecessors)]
    assert len(roots) == 1, f"a graph has exactly one root, found {[n.name for n in roots]}"
    return roots[0]


def suspend_statements(env: Environment) -> list[str]:
    """Suspend every graph's root before its tasks are replaced: altering a task of a task graph requires it to be
    suspended first (https://docs.snowflake.com/release-notes/bcr-bundles/2026_06/bcr-2363, which relaxes this for
    singleton tasks only). render_sql resumes each graph, children before their root
    (https://docs.snowflake.com/sql-reference/sql/alter-task: "Before resuming the root task ... resume all child
    tasks")."""
    ops = env.snowflake.schemas["ops"]
    return [f"ALTER TASK IF EXISTS {ops}.{graph_root(nodes).name} SUSPEND" for nodes in graphs(env)]


def render_sql(env: Environment) -> str:
    """CREATE TASK statements for both graphs, children resumed before their root (Snowflake's rule).

    Clauses follow the order of Snowflake's CREATE TASK reference (AFTER, WHEN last), one per line. Extract and load
    stages are not tasks (ECS, Snowpipe): they are listed in a comment and appear in the task history.
    """
    ops = env.snowflake.schemas["ops"]
    every = graphs(env)
    # the stages are not tasks, but an engineer reading TASK_HISTORY meets their rows: say what and whose they are
    stages = [n for nodes in every for n in nodes if n.is_stage]
    header = f"-- Stages outside Snowflake ({len(stages)}, history rows only):\n" + "".join(
        f"--   {n.name}: {n.comment}\n--       owner: {n.owner}\n" for n in stages
    )
    statements = [_create(env, n) for nodes in every for n in nodes if not n.is_stage]
    # nodes are in topological order: reversed, every child comes before the root it hangs from
    resume = [n for nodes in every for n in reversed(nodes) if not n.is_stage]
    statements.append("".join(f"ALTER TASK {ops}.{n.name} RESUME;\n" for n in resume))
    return header + "\n".join(statements)
