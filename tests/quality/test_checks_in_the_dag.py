"""Data quality on the real pipeline: anomalies injected into the local sources (and one into RAW) are caught by
the CHECK_<TABLE> tasks with the configured severity, block the marts reading the table, and clear after the fix;
normal mutation cycles raise no alarm.

One module, one sequence of cycles (the stack is shared and a cycle costs a minute): normal cycles first (no false
alarm, and the row-count history), then one cycle with six anomalies on six different tables, then the fixes.
The catalog is a temp copy of environments/ without the slow API providers (fxrates stays): quality thresholds are
tuned there, per table, the way an operator would (no code).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.apis.run import extract_api_source
from connectors.run import ExtractionError, extract_source
from finsight import migrate, warehouse
from finsight.config import Environment, load_environment, repo_root
from finsight.local.graph import extract_stages, load_stage, now
from finsight.local.snowpipe import drain
from finsight.local.stack import LocalStack
from tasks.runner import DagRun, run_dag

pytestmark = [pytest.mark.stack, pytest.mark.quality_e2e]
KEPT_APIS = {"fxrates"}
STALL_SLA_MINUTES = 4.0  # disputes' read SLA in the test catalog: above a normal cycle's extract -> check time


def _quality_env(tmp: Path) -> Environment:
    shutil.copytree(repo_root() / "environments", tmp / "environments")
    base = tmp / "environments" / "base.yaml"
    data = yaml.safe_load(base.read_text())
    dropped = set(data["api_sources"]) - KEPT_APIS
    for name in dropped:
        del data["api_sources"][name]
    data["quality"]["tables"] = {k: v for k, v in data["quality"]["tables"].items() if k.split(".")[0] not in dropped}
    base.write_text(yaml.safe_dump(data, sort_keys=False))
    local = tmp / "environments" / "local.yaml"
    overlay = yaml.safe_load(local.read_text())
    overlay["quality"] = {
        "defaults": {
            "row_count": {"seasonality": "none", "lookback": 2, "min_history": 2, "mad_threshold": 4,
                          "min_deviation_ratio": 0.75, "min_deviation_rows": 10},
            "referential": {"grace_minutes": 0},  # the sources are consistent: no child waits for its parent
        },
        "tables": {"disputes.disputes": {"freshness": {"read_sla_minutes": STALL_SLA_MINUTES}}},
    }  # fmt: skip
    local.write_text(yaml.safe_dump(overlay, sort_keys=False))
    return load_environment("local", tmp / "environments")


@dataclass
class Cycle:
    dag: DagRun
    results: dict[str, dict[str, Any]]  # check id -> this run's result row

    def state(self, task: str) -> str:
        return next(t.state for t in self.dag.tasks if t.name == task)

    def error(self, task: str) -> str:
        return next(t.error or "" for t in self.dag.tasks if t.name == task)

    def failed(self) -> dict[str, str]:
        return {k: r["SEVERITY"] for k, r in self.results.items() if r["STATUS"] == "FAIL"}


class Pipeline:
    def __init__(self, env: Environment, stack: LocalStack) -> None:
        self.env, self.stack, self.step = env, stack, 5000 + int(time.time()) % 1000 * 10

    def mutate(self, steps: int = 2) -> None:
        for _ in range(steps):
            self.step += 1
            self.stack.mutate(self.step)

    def land(self, skip: set[str] = frozenset()) -> tuple[list, list[str], Any, Any, Any]:
        extract_at, sources, errors = now(), [], []
        for source in self.env.postgres_sources:
            try:
                sources.append(extract_source(self.env, source))
            except ExtractionError as exc:
                errors.append(str(exc))
        for source in self.env.api_sources:
            sources.append(extract_api_source(self.env, source))
        load_at = now()
        with warehouse.connect(self.env, schema=self.env.snowflake.schemas["raw"]) as conn:
            pipe = drain(self.env, conn.cursor())
        return sources, errors, pipe, extract_at, load_at

    def graph(self, landed: tuple) -> Cycle:
        sources, errors, pipe, extract_at, load_at = landed
        run_id = f"dq-test-{uuid.uuid4().hex[:8]}"
        session = warehouse.snowpark_session(self.env)
        try:
            stages = [*extract_stages(self.env, sources, errors, extract_at, load_at), load_stage(pipe, load_at, now())]
            dag = run_dag(self.env, session, run_id, stages=stages)
        finally:
            session.close()
        rows = sf(self.env, f"SELECT * FROM OPS.QUALITY_RESULTS WHERE RUN_ID = '{run_id}'", dicts=True)
        return Cycle(dag, {r["CHECK_ID"]: r for r in rows})

    def cycle(self) -> Cycle:
        self.mutate()
        return self.graph(self.land())


def sf(env: Environment, query: str, dicts: bool = False) -> list[Any]:
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(query)
        rows = cur.fetchall()
        if dicts:
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in rows]
        return rows


def pg(stack: LocalStack, source: str, sql: str, params: tuple = ()) -> list[tuple]:
    with stack.admin_connect(source) as conn:
        cur = conn.execute(sql, params)
        rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows


def _reader_role(stack: LocalStack, source: str) -> str:
    rows = pg(stack, source, "SELECT (aclexplode(datacl)).grantee::regrole::text FROM pg_database WHERE datname = %s",
              (source,))  # fmt: skip
    roles = [r[0] for r in rows if r[0] not in ("-", "postgres") and not r[0].startswith("finsight_admin")]
    assert roles, f"no connector role found on database {source}"
    return roles[-1]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, local_stack: LocalStack) -> Iterator[Pipeline]:
    env = _quality_env(tmp_path_factory.mktemp("quality"))
    migrate.deploy(env)
    p = Pipeline(env, local_stack)
    p.graph(p.land())  # whatever an earlier test left pending lands now, outside the cycles under test
    yield p


@pytest.fixture
def undo() -> Iterator[list[Callable[[], None]]]:
    """Source fixes, also run when the test stops half-way: the shared stack's sources are left as found."""
    fixes: list[Callable[[], None]] = []
    yield fixes
    for fix in fixes:
        fix()


def _fix_sources(stack: LocalStack, nulled: list, orphaned: list, held_payouts: list) -> None:
    if nulled:
        pg(stack, "payments", "UPDATE payments AS p SET amount = v.amount, updated_at = now() FROM "
           "unnest(%s::bigint[], %s::numeric[]) AS v(id, amount) WHERE p.payment_id = v.id AND p.amount IS NULL",
           ([r[0] for r in nulled], [r[1] for r in nulled]))  # fmt: skip
    for entry_id, payment_id in orphaned:
        pg(stack, "ledger", "UPDATE ledger_entries SET payment_id = %s, updated_at = now() WHERE entry_id = %s "
           "AND payment_id = 987654321", (payment_id, entry_id))  # fmt: skip
    for payout_id, status in held_payouts:
        pg(stack, "payouts", "UPDATE payouts SET status = %s, updated_at = now() WHERE payout_id = %s "
           "AND status = 'on_hold'", (status, payout_id))  # fmt: skip


def test_anomalies_are_caught_block_the_right_marts_and_clear_after_the_fix(pipeline: Pipeline, undo: list) -> None:
    p, stack = pipeline, pipeline.stack
    # -- normal cycles on the seeded data: no false alarm (error, quarantine or warn), every mart published
    normal = [p.cycle() for _ in range(3)]
    for n, c in enumerate(normal):
        failed = c.failed()
        if n < 2:  # the row-count baseline (the last 2 runs) is still whatever ran before this module
            failed = {k: v for k, v in failed.items() if not k.endswith(":row_count")}
        assert failed == {}, f"false alarm in normal cycle {n}: {failed}"
        assert c.dag.state == "SUCCEEDED", [(t.name, t.error) for t in c.dag.tasks if t.error]
        assert len(c.results) > 60  # every table's checks ran and were recorded

    # -- inject six anomalies, each into a different table
    p.mutate()
    # 1. an hour's risk assessments never reach the connector: their cursor fell behind the watermark (clock skew)
    pg(stack, "risk", "UPDATE risk_assessments SET updated_at = updated_at - interval '3 days' "
                      "WHERE updated_at > now() - interval '2 hours'")  # fmt: skip
    nulled: list = []
    orphaned: list = []
    held_payouts: list = []
    undo.append(lambda: _fix_sources(stack, nulled, orphaned, held_payouts))
    # 2. a column nulled: this hour's payments.amount (declared `error` for payments in base.yaml)
    # (1,500 payments re-stamped with a NULL amount: well past the 30 % threshold of the hour's batch)
    nulled += pg(stack, "payments", "SELECT payment_id, amount FROM payments WHERE amount IS NOT NULL "
                                    "ORDER BY payment_id LIMIT 1500")  # fmt: skip
    pg(stack, "payments", "UPDATE payments SET amount = NULL, updated_at = now() WHERE payment_id = ANY(%s)",
       ([r[0] for r in nulled],))  # fmt: skip
    assert len(nulled) == 1500
    # 3. orphan foreign keys: ledger entries pointing at a payment that does not exist (another database: no FK)
    orphaned += pg(stack, "ledger", "SELECT entry_id, payment_id FROM ledger_entries ORDER BY entry_id LIMIT 3")
    pg(stack, "ledger", "UPDATE ledger_entries SET payment_id = 987654321, updated_at = now() "
                        "WHERE entry_id = ANY(%s)", ([r[0] for r in orphaned],))  # fmt: skip
    # 4. a stalled source: the disputes database refuses the connector
    role = _reader_role(stack, "disputes")
    pg(stack, "disputes", f'ALTER ROLE "{role}" NOLOGIN')
    # 6. a new status value nobody mapped: payouts 'on_hold' (payouts' vocabulary is learned from CURATED; `warn`)
    held_payouts += pg(stack, "payouts", "SELECT payout_id, status FROM payouts ORDER BY payout_id LIMIT 2")
    pg(stack, "payouts", "UPDATE payouts SET status = 'on_hold', updated_at = now() WHERE payout_id = ANY(%s)",
       ([r[0] for r in held_payouts],))  # fmt: skip
    # customers must change this hour for (5): the batch that lands is the one tampered with
    pg(stack, "customers", "UPDATE customers SET updated_at = now() WHERE customer_id IN "
                           "(SELECT customer_id FROM customers ORDER BY customer_id LIMIT 5)")  # fmt: skip
    try:
        landed = p.land()
    finally:
        pg(stack, "disputes", f'ALTER ROLE "{role}" LOGIN')
    # 5. duplicate keys slipped into RAW: in the customers batch just loaded, row 2 now carries row 1's key
    pending = (
        "SELECT BATCH_ID FROM OPS.LANDED_BATCHES WHERE RAW_TABLE = 'CUSTOMERS__CUSTOMERS' AND BATCH_ID "
        "NOT IN (SELECT BATCH_ID FROM OPS.MERGED_BATCHES) ORDER BY EXTRACTED_AT DESC LIMIT 1"
    )
    batch = sf(p.env, pending)[0][0]
    first, second = sf(p.env, f"SELECT CUSTOMER_ID, _ROW_NUMBER FROM RAW.CUSTOMERS__CUSTOMERS WHERE _BATCH_ID = "
                               f"'{batch}' ORDER BY _ROW_NUMBER LIMIT 2")  # fmt: skip
    sf(p.env, f"UPDATE RAW.CUSTOMERS__CUSTOMERS SET CUSTOMER_ID = {first[0]} WHERE _BATCH_ID = '{batch}' "
              f"AND _ROW_NUMBER = {second[1]}")  # fmt: skip
    repair = (
        f"UPDATE RAW.CUSTOMERS__CUSTOMERS SET CUSTOMER_ID = {second[0]} WHERE _BATCH_ID = '{batch}' "
        f"AND _ROW_NUMBER = {second[1]}"
    )
    release = f"UPDATE OPS.QUALITY_HOLDS SET RELEASED_AT = CURRENT_TIMESTAMP() WHERE BATCH_ID = '{batch}'"
    undo.append(lambda: (sf(p.env, repair), sf(p.env, release + " AND RELEASED_AT IS NULL")))
    # the disputes source must be older than its SLA when the checks run
    last_read = sf(p.env, "SELECT MAX(QUERY_START_TIME) FROM OPS.TASK_HISTORY WHERE NAME = 'EXTRACT_DISPUTES' "
                          "AND STATE = 'SUCCEEDED'")[0][0]  # fmt: skip
    time.sleep(max(0.0, STALL_SLA_MINUTES * 60 + 5 - (now() - last_read).total_seconds()))
    bad = p.graph(landed)

    failed = bad.failed()
    assert failed.get("risk.risk_assessments:row_count") == "warn", bad.results.get("risk.risk_assessments:row_count")
    assert failed.get("payments.payments:null_spike:amount") == "error"
    assert failed.get("ledger.ledger_entries:referential:payment_id") == "error"
    assert failed.get("disputes.disputes:freshness") == "error"
    assert failed.get("customers.customers:raw_duplicates") == "quarantine"
    assert failed.get("payouts.payouts:accepted_values:status") == "warn"
    samples = json.loads(bad.results["ledger.ledger_entries:referential:payment_id"]["SAMPLE_KEYS"])
    assert sorted(s[0] for s in samples) == sorted(r[0] for r in orphaned)
    assert "on_hold" in bad.results["payouts.payouts:accepted_values:status"]["OBSERVED"]
    # error and quarantine fail their CHECK task; warnings do not
    for task in ("CHECK_PAYMENTS__PAYMENTS", "CHECK_LEDGER__LEDGER_ENTRIES", "CHECK_DISPUTES__DISPUTES",
                 "CHECK_CUSTOMERS__CUSTOMERS"):  # fmt: skip
        assert bad.state(task) == "FAILED", task
    assert bad.state("CHECK_RISK__RISK_ASSESSMENTS") == bad.state("CHECK_PAYOUTS__PAYOUTS") == "SUCCEEDED"
    # the marts reading a failed table are not published; the one reading only warned tables is
    assert bad.state("MART_LEDGER_BALANCE") == "SKIPPED"
    assert "CHECK_LEDGER__LEDGER_ENTRIES" in bad.error("MART_LEDGER_BALANCE")
    assert bad.state("MART_DAILY_REVENUE") == "SKIPPED"
    assert "CHECK_PAYMENTS__PAYMENTS" in bad.error("MART_DAILY_REVENUE")
    assert bad.state("MART_REFUND_DISPUTE_RATES") == "SKIPPED"
    assert "CHECK_DISPUTES__DISPUTES" in bad.error("MART_REFUND_DISPUTE_RATES")
    assert bad.state("MART_SETTLEMENT_RECONCILIATION") == "SUCCEEDED"
    assert bad.dag.state == "FAILED"
    # the quarantined batch stayed out of CURATED
    assert not sf(p.env, f"SELECT 1 FROM CURATED.CUSTOMERS__CUSTOMERS WHERE _BATCH_ID = '{batch}'")

    # -- the fixes: sources corrected, RAW repaired and the batch released, the stalled source reachable again
    _fix_sources(stack, nulled, orphaned, held_payouts)
    sf(p.env, repair)
    sf(p.env, release)  # what `finsight dq release <batch>` does
    fixed = p.cycle()
    failed = fixed.failed()
    assert failed == {}, f"not cleared after the fix: {failed}"
    assert fixed.dag.state == "SUCCEEDED", [(t.name, t.error) for t in fixed.dag.tasks if t.error]
    assert sf(p.env, f"SELECT COUNT(*) FROM CURATED.CUSTOMERS__CUSTOMERS WHERE _BATCH_ID = '{batch}'")[0][0] > 0
