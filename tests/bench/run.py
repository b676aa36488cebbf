"""`make bench`: throughput of the pipeline stages on the local stack (numbers, not pass/fail tests).

Measures a full (non-incremental) extraction of the largest source and a whole hourly cycle, and compares the
extraction rate with the production target (333 M rows in a peak hour in <= 10 min over 12 databases).
"""

from __future__ import annotations

import time

from connectors.run import extract_source
from finsight.config import load_environment
from finsight.local.cycle import hourly_cycle
from finsight.local.stack import LocalStack

PEAK_ROWS_PER_HOUR = 333_000_000
EXTRACT_BUDGET_SECONDS = 600
DATABASES = 12


def main() -> None:
    env = load_environment("local")
    stack = LocalStack(env)
    stack.up()
    started = time.monotonic()
    run = extract_source(env, "ledger", mode="full")
    seconds = time.monotonic() - started
    rate = run.rows / seconds
    needed = PEAK_ROWS_PER_HOUR / EXTRACT_BUDGET_SECONDS / DATABASES
    print(f"extract ledger (full): {run.rows} rows in {seconds:.2f}s = {rate:,.0f} rows/s per database")
    print(f"  production need: {needed:,.0f} rows/s per database -> {rate / needed:.0%} of target on one 2-core box")
    cycle = hourly_cycle(env)
    print(f"hourly cycle: {cycle.rows_extracted} rows extracted, stages {cycle.seconds}")


if __name__ == "__main__":
    main()
