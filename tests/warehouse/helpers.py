"""Independent computations over the source databases, and small warehouse readers, for the warehouse tests.

Nothing here reuses the marts' SQL: each figure is recomputed in Python from the PostgreSQL sources (the sources live
in separate databases, so joins happen here), with Decimal arithmetic, to compare with MARTS exactly.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import requests

from finsight import warehouse
from finsight.config import Environment
from finsight.local.stack import LocalStack
from finsight.secrets import read_secret

ZERO = Decimal("0")


def pg(stack: LocalStack, source: str, query: str) -> list[tuple]:
    with stack.admin_connect(source) as conn:
        return conn.execute(query).fetchall()


def sf(env: Environment, query: str) -> list[tuple]:
    with warehouse.connect(env) as conn:
        return conn.cursor().execute(query).fetchall()


def _day(column: str) -> str:
    return f"(({column}) AT TIME ZONE 'UTC')::date"


def source_revenue(stack: LocalStack) -> dict[tuple, dict[str, Any]]:
    """(business_date, merchant_id, currency, card_brand) -> counts and amounts, as daily_revenue defines them."""
    payments = {
        r[0]: r[1:]
        for r in pg(
            stack,
            "payments",
            f"SELECT payment_id, merchant_id, currency, COALESCE(card_brand, 'unknown'), "
            f"status, amount, {_day('created_at')} FROM payments",
        )
    }
    out: dict[tuple, dict[str, Any]] = defaultdict(
        lambda: {"payments": 0, "refunds": 0, "gross": ZERO, "refunded": ZERO, "fees": ZERO}
    )
    for merchant, currency, brand, status, amount, day in payments.values():
        if status == "succeeded":
            row = out[(day, merchant, currency, brand)]
            row["payments"] += 1
            row["gross"] += amount
    refunds = f"SELECT payment_id, amount, {_day('created_at')} FROM refunds WHERE status = 'succeeded'"
    for payment_id, amount, day in pg(stack, "refunds", refunds):
        if payment_id in payments:
            merchant, currency, brand = payments[payment_id][:3]
            row = out[(day, merchant, currency, brand)]
            row["refunds"] += 1
            row["refunded"] += amount
    fees = (
        f"SELECT payment_id, amount, {_day('created_at')} FROM ledger_entries "
        "WHERE entry_type = 'fee' AND direction = 'debit'"
    )
    for payment_id, amount, day in pg(stack, "ledger", fees):
        if payment_id in payments:
            merchant, currency, brand = payments[payment_id][:3]
            out[(day, merchant, currency, brand)]["fees"] += amount
    return dict(out)


def per_merchant_day_currency(rows: dict[tuple, dict[str, Any]]) -> dict[tuple, tuple]:
    totals: dict[tuple, list] = defaultdict(lambda: [0, 0, ZERO, ZERO, ZERO])
    for (day, merchant, currency, _brand), r in rows.items():
        t = totals[(day, merchant, currency)]
        t[0] += r["payments"]
        t[1] += r["refunds"]
        t[2] += r["gross"]
        t[3] += r["refunded"]
        t[4] += r["fees"]
    return {k: (v[0], v[1], v[2], v[3], v[4], v[2] - v[3] - v[4]) for k, v in totals.items()}


def mart_revenue(env: Environment) -> dict[tuple, tuple]:
    rows = sf(
        env,
        # sums cast back to the columns' type: fakesnow returns a NUMBER(38, 2) sum as a float
        "SELECT BUSINESS_DATE, MERCHANT_ID, CURRENCY, SUM(PAYMENT_COUNT), SUM(REFUND_COUNT), "
        + ", ".join(
            f"CAST(SUM({c}) AS NUMBER(18, 2))" for c in ("GROSS_AMOUNT", "REFUNDED_AMOUNT", "FEE_AMOUNT", "NET_AMOUNT")
        )
        + " FROM MARTS.DAILY_REVENUE GROUP BY 1, 2, 3",
    )
    return {(r[0], r[1], r[2]): (int(r[3]), int(r[4]), r[5], r[6], r[7], r[8]) for r in rows}


def _api_get(env: Environment, source: str, path: str, params: dict[str, str] | None = None) -> Any:
    """GET from the stack's mock payment API (the API source itself), with its own key; 429 waits Retry-After."""
    api = env.api_sources[source]
    key = read_secret(env, api.secret)["api_key"].get_secret_value()
    for _ in range(20):
        resp = requests.get(f"{api.base_url}{path}", params=params, headers={"X-API-Key": key}, timeout=10)
        if resp.status_code != 429:
            resp.raise_for_status()
            return resp
        time.sleep(float(resp.headers.get("Retry-After", "1")))  # the provider's rate limit, not a wait for state
    raise AssertionError(f"{source}{path}: still rate-limited")


FX_BOOK, FX_API = "fx.fx_rates", "fxrates.daily_rates"


def usd_rates(env: Environment, stack: LocalStack) -> dict[str, list[tuple[date, int, Decimal, str]]]:
    """currency -> [(rate_date, preference, units per USD, source)], from the internal FX book (PostgreSQL) and,
    when the FX API is a catalog table, from the FX API itself (preferred on the same date)."""
    rates: dict[str, list[tuple[date, int, Decimal, str]]] = defaultdict(list)
    for quote, day, rate in pg(
        stack,
        "fx",
        "SELECT quote_currency, rate_date, rate FROM fx_rates WHERE base_currency = 'USD' AND rate > 0",
    ):
        rates[quote].append((day, 2, rate, FX_BOOK))
    if FX_API in {t.qualified for t in env.warehouse_tables()}:
        stream = env.table(FX_API)
        path = env.api_sources[stream.source].streams[stream.name].path
        end = today() + timedelta(days=1)
        params = {"base": "USD", "start_date": (end - timedelta(days=365)).isoformat(), "end_date": end.isoformat()}
        for r in _api_get(env, stream.source, path, params).json()["rates"]:
            if Decimal(str(r["rate"])) > 0:
                rates[r["quote"]].append((date.fromisoformat(r["date"]), 1, Decimal(str(r["rate"])), FX_API))
    return rates


def rate_of_day(rates: dict[str, list[tuple[date, int, Decimal, str]]], currency: str, day: date) -> tuple:
    """(rate, source): the latest rate on or before the day, the FX API before the book on the same date."""
    if currency == "USD":
        return Decimal(1), "identity"
    found = sorted((d, -pref, rate, src) for d, pref, rate, src in rates.get(currency, []) if d <= day)
    return (found[-1][2], found[-1][3]) if found else (None, None)


def usd(amount: Decimal, rate: Decimal) -> Decimal:
    return (amount / rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def source_ledger(stack: LocalStack) -> dict[tuple, tuple[Decimal, Decimal]]:
    """(entry_date, account_id) -> (debits, credits)."""
    out: dict[tuple, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for account, day, direction, amount in pg(
        stack,
        "ledger",
        f"SELECT account_id, {_day('created_at')}, direction, amount FROM ledger_entries WHERE account_id IS NOT NULL",
    ):
        out[(day, account)][0 if direction == "debit" else 1] += amount
    return {k: (v[0], v[1]) for k, v in out.items()}


def source_rates(stack: LocalStack) -> dict[tuple, tuple[int, int, int]]:
    """(month_start, merchant_id) -> (succeeded payments, succeeded refunds, disputes opened)."""
    month = "date_trunc('month', ({} AT TIME ZONE 'UTC'))::date"
    payments = {
        r[0]: r[1:]
        for r in pg(
            stack, "payments", f"SELECT payment_id, merchant_id, status, {month.format('created_at')} FROM payments"
        )
    }
    out: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])
    for merchant, status, m in payments.values():
        if status == "succeeded" and merchant is not None:
            out[(m, merchant)][0] += 1
    for payment_id, m in pg(
        stack, "refunds", f"SELECT payment_id, {month.format('created_at')} FROM refunds WHERE status = 'succeeded'"
    ):
        if payment_id in payments and payments[payment_id][0] is not None:
            out[(m, payments[payment_id][0])][1] += 1
    for payment_id, m in pg(
        stack, "disputes", f"SELECT payment_id, {month.format('opened_at')} FROM disputes WHERE opened_at IS NOT NULL"
    ):
        if payment_id in payments and payments[payment_id][0] is not None:
            out[(m, payments[payment_id][0])][2] += 1
    return {k: tuple(v) for k, v in out.items()}


ADYEN = "adyen.settlement_details"
ACQUIRER_LINES = ("Settled", "Refunded", "Chargeback")  # payout and fee lines carry no merchant


def acquirer_lines(env: Environment) -> list[dict[str, str]]:
    """Every line of every settlement report the acquirer's API publishes (the CSV files themselves)."""
    stream = env.table(ADYEN)
    path = env.api_sources[stream.source].streams[stream.name].path
    out = []
    for report in _api_get(env, stream.source, path).json()["data"]:
        text = _api_get(env, stream.source, "/" + report["downloadPath"].lstrip("/")).text
        out += list(csv.DictReader(io.StringIO(text)))
    return out


def source_settlements(env: Environment, stack: LocalStack) -> dict[tuple, tuple]:
    """(settlement_date, merchant_id, currency) -> (internal net, payout amount, acquirer lines, acquirer net);
    the acquirer side is (None, None) when the acquirer's API is not a catalog table."""
    out: dict[tuple, list] = defaultdict(lambda: [ZERO, ZERO, 0, ZERO])
    for merchant, currency, day, net in pg(
        stack,
        "settlements",
        f"SELECT merchant_id, currency, {_day('settled_at')}, net_amount FROM settlement_batches "
        "WHERE settled_at IS NOT NULL AND merchant_id IS NOT NULL",
    ):
        out[(day, merchant, currency)][0] += net
    for merchant, currency, day, amount in pg(
        stack,
        "payouts",
        "SELECT merchant_id, currency, arrival_date, amount FROM payouts "
        "WHERE status IN ('paid', 'in_transit') AND arrival_date IS NOT NULL "
        "AND merchant_id IS NOT NULL",
    ):
        out[(day, merchant, currency)][1] += amount
    acquirer_on = ADYEN in {t.qualified for t in env.warehouse_tables()}
    if acquirer_on:
        for line in acquirer_lines(env):
            found = re.match(r"M(\d+)-", line["Merchant Reference"] or "")
            if line["Type"] not in ACQUIRER_LINES or not found:
                continue
            row = out[(date.fromisoformat(line["Creation Date"][:10]), int(found[1]), line["Net Currency"])]
            row[2] += 1
            row[3] += Decimal(line["Net Credit (NC)"] or "0") - Decimal(line["Net Debit (NC)"] or "0")
    return {k: (v[0], v[1], v[2], v[3]) if acquirer_on else (v[0], v[1], None, None) for k, v in out.items()}


def expected_status(rows: dict[tuple, tuple], key: tuple, days: int) -> str:
    net, paid, _, acquirer = rows[key]
    acquirer_agrees = acquirer is None or net - acquirer == 0
    if net - paid == 0 and acquirer_agrees:
        return "matched"
    day, merchant, currency = key
    window = sum(
        (rows[k][0] - rows[k][1] for k in rows if k[1:] == (merchant, currency) and abs((k[0] - day).days) <= days),
        ZERO,
    )
    return "timing" if window == 0 and acquirer_agrees else "mismatch"


def last_run_detail(env: Environment, run_id: str) -> dict[str, Any]:
    rows = sf(
        env,
        f"SELECT STATE, DETAIL FROM OPS.PIPELINE_RUNS WHERE RUN_ID = '{run_id}' AND TASK_NAME = 'RUN' "
        "AND FINISHED_AT IS NOT NULL ORDER BY FINISHED_AT DESC LIMIT 1",
    )
    assert rows, f"no finished RUN row for {run_id}"
    return {"state": rows[0][0], **json.loads(rows[0][1])}


def today() -> date:
    from datetime import UTC, datetime

    return datetime.now(UTC).date()


def window_days(days: int) -> tuple[str, str]:
    start = today() - timedelta(days=days)
    end = today() + timedelta(days=1)
    return start.isoformat(), end.isoformat()
