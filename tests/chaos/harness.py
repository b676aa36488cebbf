"""What every chaos scenario shares: the verdict (source vs CURATED after recovery), the timing, the report.

The verdict reuses the platform's own checks, not a copy: `finsight.reconcile.reconcile` (every PostgreSQL table by
primary key + hash of all columns, deletes included, PAN by token) and `finsight.local.verify.reconcile_apis` (every
API stream against the mock server), plus one duplicate-key count per CURATED table (a dict keyed by primary key
cannot see duplicates). Definitions used in docs/reliability.md:

- lost: keys at the source missing from CURATED (PostgreSQL) or records the API holds that CURATED lacks;
- duplicated: rows in CURATED beyond one per primary key;
- stale: keys whose CURATED values differ from the source, or deleted at the source and still in CURATED.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finsight import warehouse
from finsight.aws import client
from finsight.config import Environment, repo_root
from finsight.local.aws_bootstrap import queue_name
from finsight.local.verify import reconcile_apis
from finsight.reconcile import reconcile

REPORT = Path("docs/reliability.md")
RESULTS: list[Outcome] = []


@dataclass
class Verdict:
    compared: int
    lost: int
    duplicated: int
    stale: int
    problems: list[str] = field(default_factory=list)  # one line per table that is not equal


def verdict(env: Environment) -> Verdict:
    """Every source table and API stream against CURATED."""
    v = Verdict(0, 0, 0, 0)
    for r in reconcile(env):
        v.compared += r.source_rows
        v.lost += r.missing
        v.stale += r.different + r.extra
        if not r.equal:
            v.problems.append(f"{r.table}: missing {r.missing}, extra {r.extra}, different {r.different} {r.samples}")
    for d in reconcile_apis(env):
        v.compared += d.source_rows
        v.lost += d.missing
        if d.missing:
            v.problems.append(f"{d.table}: {d.missing} record(s) of the API missing")
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        for table in env.warehouse_tables():
            keys = ", ".join(c.upper() for c in table.primary_key)
            cur.execute(f"SELECT COUNT(*) - COUNT(DISTINCT ({keys})) "
                        f"FROM {env.snowflake.schemas['curated']}.{table.curated_name}")  # fmt: skip
            dupes = int(cur.fetchone()[0])
            v.duplicated += dupes
            if dupes:
                v.problems.append(f"{table.qualified}: {dupes} duplicated row(s)")
    return v


@dataclass
class Outcome:
    scenario: str
    fault: str
    recovery: str
    compared: int
    lost: int
    duplicated: int
    stale: int
    seconds_to_recover: float


class Scenario:
    """One fault, one recovery path, one verdict. `fault()` marks the injection, `recovering()` the first step of
    the recovery; the verdict after the recovery must be 0 lost, 0 duplicated, 0 stale."""

    def __init__(self, name: str, fault: str, recovery: str) -> None:
        self.name, self.fault_text, self.recovery_text = name, fault, recovery
        self.fault_at: float | None = None

    def fault(self) -> None:
        self.fault_at = time.monotonic()

    def verify(self, env: Environment) -> Verdict:
        assert self.fault_at is not None, "mark the fault with scenario.fault()"
        recovered_s = round(time.monotonic() - self.fault_at, 1)
        v = verdict(env)
        RESULTS.append(Outcome(self.name, self.fault_text, self.recovery_text, v.compared, v.lost, v.duplicated,
                               v.stale, recovered_s))  # fmt: skip
        assert (v.lost, v.duplicated, v.stale) == (0, 0, 0), "\n".join(v.problems)
        assert v.compared > 0
        return v


# -- waiting on events, never on fixed sleeps --------------------------------------------------------------------------
def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")


# -- the landing queue: what S3 event notifications Snowpipe will see -------------------------------------------------
def take_queued_events(env: Environment) -> list[str]:
    """Every message body now in the landing queue, removed from it (to redeliver later, twice, or reordered)."""
    sqs = client(env, "sqs")
    url = sqs.get_queue_url(QueueName=queue_name(env))["QueueUrl"]
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
        if not got:
            return bodies
        for message in got:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def deliver_events(env: Environment, bodies: list[str]) -> None:
    sqs = client(env, "sqs")
    url = sqs.get_queue_url(QueueName=queue_name(env))["QueueUrl"]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)


# -- the report --------------------------------------------------------------------------------------------------------
HEADER = """# Reliability: fault-injection scenarios and what they prove

Generated by the chaos suite (`make chaos`; `tests/chaos/`). Each scenario injects one fault on the real local stack
(PostgreSQL, moto S3/SQS, fakesnow, mock payment APIs), recovers by the normal path (no hand edits), then compares
every source table and API stream with CURATED: `finsight reconcile` (primary key + hash of all columns, deletes
included) and `finsight local verify` (API streams), plus a duplicate-key count per CURATED table.
**lost** = source keys missing from CURATED; **duplicated** = rows beyond one per primary key; **stale** = values
differing from the source or rows deleted at the source still in CURATED. Every row below must read 0 / 0 / 0: the
suite fails otherwise. Seconds to recover: from the fault to the end of the recovery (this 2-core box, shared).
Rows are updated per scenario: a partial run (`make test` runs the fast subset) keeps the others' last figures.

| scenario | fault injected | recovery path | rows compared | lost | duplicated | stale | seconds to recover |
|---|---|---|---:|---:|---:|---:|---:|
"""
_ROW = re.compile(r"^\| (?P<scenario>[^|]+?) \|")


def _row(o: Outcome) -> str:
    return (f"| {o.scenario} | {o.fault} | {o.recovery} | {o.compared} | {o.lost} | {o.duplicated} | {o.stale} "
            f"| {o.seconds_to_recover:.0f} |")  # fmt: skip


def render(outcomes: list[Outcome], existing: str = "") -> str:
    """The report, keeping rows of scenarios not run this time; scenarios sorted by name."""
    rows: dict[str, str] = {}
    for line in existing.splitlines():
        m = _ROW.match(line)
        if m and m["scenario"] not in ("scenario", "---") and not line.startswith("|---"):
            rows[m["scenario"]] = line
    for o in outcomes:
        rows[o.scenario] = _row(o)
    return HEADER + "".join(f"{rows[name]}\n" for name in sorted(rows))


def write_report(outcomes: list[Outcome]) -> Path | None:
    """docs/reliability.md when FINSIGHT_CHAOS_REPORT=1 (`make chaos`); otherwise the state dir, so a plain test run
    never dirties the checkout."""
    if not outcomes:
        return None
    target = repo_root() / (REPORT if os.environ.get("FINSIGHT_CHAOS_REPORT") == "1" else ".local/chaos/reliability.md")
    target.parent.mkdir(parents=True, exist_ok=True)
    existing = target.read_text() if target.exists() else ""
    target.write_text(render(outcomes, existing))
    return target


@contextmanager
def bounded(seconds: float, what: str) -> Iterator[None]:
    """Assert a block finished within `seconds` (a bound promised to operators, not a speed goal)."""
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    assert took <= seconds, f"{what} took {took:.0f}s, more than the promised {seconds:.0f}s"


# -- source activity ---------------------------------------------------------------------------------------------------
def touch(stack: Any, env: Environment, qualified: str, rows: int) -> int:
    """Move the cursor of `rows` rows to now (a new version of each): returns how many changed."""
    from psycopg import sql

    table = env.table(qualified)
    (pk,) = table.primary_key
    query = sql.SQL("UPDATE {t} SET {c} = clock_timestamp() WHERE {k} IN (SELECT {k} FROM {t} ORDER BY {k} LIMIT %s)")
    with stack.admin_connect(table.source) as conn:
        cur = conn.execute(
            query.format(t=sql.Identifier(table.name), c=sql.Identifier(table.cursor), k=sql.Identifier(pk)), (rows,)
        )
        return cur.rowcount


def with_s3_endpoint(env: Environment, url: str) -> Environment:
    """The same environment whose AWS clients go through `url` (the fault proxy)."""
    return env.model_copy(update={"aws": env.aws.model_copy(update={"endpoint_url": url})})


def raw_rows(env: Environment, qualified: str, batch_id: str) -> int:
    with warehouse.connect(env) as conn:
        raw = f"{env.snowflake.schemas['raw']}.{env.table(qualified).raw_name}"
        return int(conn.cursor().execute(f"SELECT COUNT(*) FROM {raw} WHERE _BATCH_ID = '{batch_id}'").fetchone()[0])
