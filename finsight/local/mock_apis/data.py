"""Deterministic synthetic data for the mock payment APIs (B2B invoices paid by card, wallet and bank).

Every provider draws from its own ``random.Random(f"{seed}:{provider}")``: a seed reproduces identical data in any
process (string seeds are hashed with SHA-512, not the per-process ``hash()``), and changing one provider's generator
never shifts another provider's data. Timestamps span the ``SPAN`` before ``now``; nothing is dated after ``now``.
"""

from __future__ import annotations

import csv
import io
import math
import random
import string
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

SPAN = timedelta(days=3)
DAY = 86_400
ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits

# Units of currency per 1 USD: starting point for amounts and FX rates.
USD_RATES: dict[str, float] = {
    "USD": 1.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "JPY": 151.2,
    "CHF": 0.88,
    "CAD": 1.36,
    "AUD": 1.52,
    "SEK": 10.6,
    "NOK": 10.8,
    "DKK": 6.87,
    "SGD": 1.34,
    "HKD": 7.81,
}
ZERO_DECIMAL = frozenset({"JPY"})  # Stripe and Adyen count JPY in whole yen, not in cents
CURRENCY_WEIGHTS: dict[str, float] = {
    "USD": 45,
    "EUR": 25,
    "GBP": 12,
    "CAD": 5,
    "AUD": 4,
    "CHF": 3,
    "SEK": 3,
    "JPY": 3,
}

# country -> (settlement currency, legal form, weight)
COUNTRIES: dict[str, tuple[str, str, float]] = {
    "US": ("USD", "Inc.", 30),
    "GB": ("GBP", "Ltd", 12),
    "DE": ("EUR", "GmbH", 12),
    "FR": ("EUR", "SAS", 8),
    "NL": ("EUR", "B.V.", 6),
    "CA": ("CAD", "Corp.", 8),
    "AU": ("AUD", "Pty Ltd", 6),
    "CH": ("CHF", "AG", 5),
    "SE": ("SEK", "AB", 5),
    "JP": ("JPY", "K.K.", 3),
}
NAME_HEADS = [
    "Acme", "Northwind", "Globex", "Initech", "Vandelay", "Blue Harbor", "Pioneer", "Summit", "Evergreen", "Crescent",
    "Ironbridge", "Silverline", "Redwood", "Keystone", "Brightwater", "Copperfield", "Lakeshore", "Granite Peak",
]  # fmt: skip
NAME_TAILS = [
    "Logistics", "Industrial Supply", "Software", "Medical Devices", "Freight", "Foods", "Energy", "Consulting",
    "Manufacturing", "Analytics", "Packaging", "Office Solutions",
]  # fmt: skip
N_MERCHANTS = 40  # merchant_id 1..40: the ids the local PostgreSQL `merchants` seed should also cover


def count(base: int, scale: float, minimum: int = 3) -> int:
    return max(minimum, round(base * scale))


def make_id(rng: random.Random, prefix: str, n: int = 24) -> str:
    return f"{prefix}_{''.join(rng.choices(ALNUM, k=n))}"


def upper_id(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(UPPER_ALNUM, k=n))


def weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def iso_z(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def minor_units(amount_usd: float, currency: str) -> int:
    """Major USD amount -> integer minor units of ``currency`` (whole yen for JPY)."""
    factor = 1 if currency.upper() in ZERO_DECIMAL else 100
    return max(1, round(amount_usd * USD_RATES[currency.upper()] * factor))


def invoice_usd(rng: random.Random) -> float:
    """A B2B invoice amount: log-normal around $1.2k, from $25 to $250k."""
    return min(250_000.0, max(25.0, rng.lognormvariate(math.log(1_200), 1.1)))


class Clock:
    """The mock's notion of time: ``start`` (the pinned ``now``) plus wall time elapsed since the app was built."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self._t0 = time.monotonic()

    def ts(self) -> int:
        return int(self.start.timestamp() + (time.monotonic() - self._t0))


@dataclass(frozen=True)
class Merchant:
    merchant_id: int
    legal_name: str
    country: str
    currency: str  # settlement currency, upper-case ISO 4217


def merchants(seed: int) -> list[Merchant]:
    rng = random.Random(f"{seed}:merchants")
    out = []
    for merchant_id in range(1, N_MERCHANTS + 1):
        country = rng.choices(list(COUNTRIES), weights=[w for _, _, w in COUNTRIES.values()])[0]
        currency, form, _ = COUNTRIES[country]
        name = f"{rng.choice(NAME_HEADS)} {rng.choice(NAME_TAILS)} {form}"
        out.append(Merchant(merchant_id, name, country, currency))
    return out


def newest_first(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objects, key=lambda o: (o["created"], o["id"]), reverse=True)


# -- stripe ---------------------------------------------------------------------------------------------------


@dataclass
class StripeData:
    """Stream name -> objects, newest first (Stripe's list order). Mutated only under ``lock`` (refund creation)."""

    streams: dict[str, list[dict[str, Any]]]
    lock: threading.Lock = field(default_factory=threading.Lock)


def stripe_fee(amount: int, currency: str) -> int:
    return round(amount * 0.029) + (0 if currency.upper() in ZERO_DECIMAL else 30)


def balance_txn(
    rng: random.Random, source: dict[str, Any], amount: int, fee: int, kind: str, now_ts: int
) -> dict[str, Any]:
    available_on = source["created"] + (2 * DAY if kind == "charge" else 0)
    return {
        "id": make_id(rng, "txn"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": available_on,
        "created": source["created"],
        "currency": source["currency"],
        "description": source.get("description"),
        "exchange_rate": None,
        "fee": fee,
        "fee_details": [{"amount": fee, "currency": source["currency"], "type": "stripe_fee"}] if fee else [],
        "net": amount - fee,
        "reporting_category": {"adjustment": "dispute"}.get(kind, kind),
        "source": source["id"],
        "status": "available" if available_on <= now_ts else "pending",
        "type": kind,
    }


def build_stripe(seed: int, scale: float, now: datetime) -> StripeData:
    rng = random.Random(f"{seed}:stripe")
    ms = merchants(seed)
    now_ts = int(now.timestamp())
    start_ts = now_ts - int(SPAN.total_seconds())
    charges: list[dict[str, Any]] = []
    refunds: list[dict[str, Any]] = []
    disputes: list[dict[str, Any]] = []
    txns: list[dict[str, Any]] = []
    net_by_day: dict[tuple[int, str, int], int] = defaultdict(int)  # (merchant_id, currency, day) -> payout

    for _ in range(count(1500, scale)):
        m = rng.choice(ms)
        currency = (m.currency if rng.random() < 0.8 else weighted(rng, CURRENCY_WEIGHTS)).lower()
        amount = minor_units(invoice_usd(rng), currency)
        created = rng.randint(start_ts, now_ts)
        status = rng.choices(["succeeded", "failed", "pending"], weights=[92, 5, 3])[0]
        invoice = f"INV-{rng.randrange(2024, 2027)}-{rng.randrange(1, 999_999):06d}"
        charge: dict[str, Any] = {
            "id": make_id(rng, "ch"),
            "object": "charge",
            "amount": amount,
            "amount_captured": amount if status == "succeeded" else 0,
            "amount_refunded": 0,
            "balance_transaction": None,
            "captured": status == "succeeded",
            "created": created,
            "currency": currency,
            "customer": make_id(rng, "cus", 14),
            "description": f"Invoice {invoice}",
            "disputed": False,
            "failure_code": "card_declined" if status == "failed" else None,
            "failure_message": "Your card was declined." if status == "failed" else None,
            "livemode": False,
            "metadata": {"merchant_id": str(m.merchant_id), "invoice_id": invoice},
            "paid": status == "succeeded",
            "payment_method": make_id(rng, "pm"),
            "payment_method_details": {
                "type": "card",
                "card": {
                    "brand": rng.choices(["visa", "mastercard", "amex", "discover"], weights=[50, 35, 12, 3])[0],
                    "country": m.country,
                    "exp_month": rng.randint(1, 12),
                    "exp_year": rng.randint(2027, 2031),
                    "funding": rng.choices(["credit", "debit"], weights=[80, 20])[0],
                    "last4": f"{rng.randrange(10_000):04d}",  # never a full card number
                },
            },
            "refunded": False,
            "statement_descriptor": "FINSIGHT*" + m.legal_name.split()[0].upper()[:12],
            "status": status,
        }
        charges.append(charge)
        if status != "succeeded":
            continue
        txn = balance_txn(rng, charge, amount, stripe_fee(amount, currency), "charge", now_ts)
        charge["balance_transaction"] = txn["id"]
        txns.append(txn)
        net_by_day[(m.merchant_id, currency, (created - start_ts) // DAY)] += txn["net"]

        if rng.random() < 0.12 and now_ts - created > 600:
            refund_amount = amount if rng.random() < 0.7 or amount < 2 else rng.randint(1, amount - 1)
            refund = {
                "id": make_id(rng, "re"),
                "object": "refund",
                "amount": refund_amount,
                "balance_transaction": None,
                "charge": charge["id"],
                "created": rng.randint(created + 600, now_ts),
                "currency": currency,
                "metadata": {"merchant_id": str(m.merchant_id)},
                "reason": rng.choice(["requested_by_customer", "duplicate", "fraudulent"]),
                "status": rng.choices(["succeeded", "pending"], weights=[95, 5])[0],
            }
            rtxn = balance_txn(rng, refund, -refund_amount, 0, "refund", now_ts)
            refund["balance_transaction"] = rtxn["id"]
            refunds.append(refund)
            txns.append(rtxn)
            charge["amount_refunded"] = refund_amount
            charge["refunded"] = refund_amount == amount
        elif rng.random() < 0.03 and now_ts - created > 3600:
            d_created = rng.randint(created + 3600, now_ts)
            dispute = {
                "id": make_id(rng, "dp"),
                "object": "dispute",
                "amount": amount,
                "balance_transactions": [],
                "charge": charge["id"],
                "created": d_created,
                "currency": currency,
                "evidence_details": {"due_by": d_created + 7 * DAY, "has_evidence": False, "submission_count": 0},
                "is_charge_refundable": False,
                "metadata": {"merchant_id": str(m.merchant_id)},
                "reason": rng.choice(["fraudulent", "product_not_received", "duplicate", "credit_not_processed"]),
                "status": rng.choices(["needs_response", "under_review", "won", "lost"], weights=[5, 3, 1, 1])[0],
            }
            dispute_fee = 2_000 if currency.upper() in ZERO_DECIMAL else 1_500
            dtxn = balance_txn(rng, dispute, -amount, dispute_fee, "adjustment", now_ts)
            dispute["balance_transactions"] = [dtxn]
            disputes.append(dispute)
            txns.append(dtxn)
            charge["disputed"] = True

    payouts = []
    for (merchant_id, currency, day), net in sorted(net_by_day.items()):
        created = start_ts + (day + 1) * DAY + 2 * 3600  # daily payout, two hours after the day closes
        if created > now_ts or net <= 0:
            continue
        arrival = created + DAY
        failed = rng.random() < 0.02
        payout = {
            "id": make_id(rng, "po"),
            "object": "payout",
            "amount": net,
            "arrival_date": arrival,
            "balance_transaction": None,
            "created": created,
            "currency": currency,
            "description": "STRIPE PAYOUT",
            "destination": make_id(rng, "ba"),
            "failure_code": "account_closed" if failed else None,
            "metadata": {"merchant_id": str(merchant_id)},
            "method": "standard",
            "statement_descriptor": "FINSIGHT PAYOUT",
            "status": "failed" if failed else ("paid" if arrival <= now_ts else "in_transit"),
            "type": "bank_account",
        }
        ptxn = balance_txn(rng, payout, -net, 0, "payout", now_ts)
        payout["balance_transaction"] = ptxn["id"]
        payouts.append(payout)
        txns.append(ptxn)

    return StripeData(
        streams={
            "charges": newest_first(charges),
            "refunds": newest_first(refunds),
            "disputes": newest_first(disputes),
            "payouts": newest_first(payouts),
            "balance_transactions": newest_first(txns),
        }
    )


# -- paypal ---------------------------------------------------------------------------------------------------

PAYPAL_STATUSES = {"S": 86, "P": 6, "V": 3, "D": 2, "F": 3}  # success, pending, reversed, denied, partially refunded
BUYERS = ["Harbor Freight Partners", "Meridian Health Group", "Atlas Construction", "Nimbus Retail", "Orbit Labs",
          "Quarry Road Farms", "Helix Biotech", "Cobalt Media", "Juniper Hotels", "Tidewater Marine"]  # fmt: skip


def paypal_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")  # PayPal's own offset style


def money(currency: str, major: float) -> dict[str, str]:
    places = 0 if currency in ZERO_DECIMAL else 2
    return {"currency_code": currency, "value": f"{major:.{places}f}"}  # PayPal sends amounts as strings


def build_paypal(seed: int, scale: float, now: datetime) -> list[dict[str, Any]]:
    """Transaction details sorted by (transaction_updated_date, transaction_id); ``_updated_ts`` is for filtering."""
    rng = random.Random(f"{seed}:paypal")
    ms = merchants(seed)
    now_ts = now.timestamp()
    start_ts = now_ts - SPAN.total_seconds()
    out: list[dict[str, Any]] = []

    def add(initiated: float, updated: float, info: dict[str, Any], buyer: str, country: str) -> None:
        slug = buyer.lower().replace(" ", "-")
        info |= {
            "transaction_initiation_date": paypal_time(initiated),
            "transaction_updated_date": paypal_time(updated),
            "protection_eligibility": "01",
        }
        payer = {
            "account_id": upper_id(rng, 13),
            "email_address": f"ap@{slug}.example",
            "address_status": "Y",
            "payer_status": "Y",
            "payer_name": {"alternate_full_name": buyer},
            "country_code": country,
        }
        out.append({"_updated_ts": int(updated), "transaction_info": info, "payer_info": payer})

    for _ in range(count(900, scale)):
        m = rng.choice(ms)
        currency = m.currency if rng.random() < 0.8 else weighted(rng, CURRENCY_WEIGHTS)
        major = minor_units(invoice_usd(rng), currency) / (1 if currency in ZERO_DECIMAL else 100)
        initiated = rng.uniform(start_ts, now_ts)
        status = weighted(rng, PAYPAL_STATUSES)
        late_update = status != "S" or rng.random() < 0.3  # status changes move transaction_updated_date
        updated = min(now_ts, initiated + rng.uniform(300, 36 * 3600)) if late_update else initiated
        txn_id = upper_id(rng, 17)
        invoice = f"INV-{rng.randrange(2024, 2027)}-{rng.randrange(1, 999_999):06d}"
        buyer, country = rng.choice(BUYERS), rng.choice(list(COUNTRIES))
        fee = -(major * 0.0349 + (0 if currency in ZERO_DECIMAL else 0.49))
        info = {
            "paypal_account_id": upper_id(rng, 13),
            "transaction_id": txn_id,
            "transaction_event_code": rng.choice(["T0006", "T0007", "T0003"]),
            "transaction_amount": money(currency, major),
            "fee_amount": money(currency, fee),
            "transaction_status": status,
            "transaction_subject": f"Invoice {invoice}",
            "invoice_id": invoice,
            "custom_field": f"merchant_id={m.merchant_id}",
        }
        add(initiated, updated, info, buyer, country)
        if status == "S" and rng.random() < 0.04 and now_ts - updated > 600:
            refunded_at = rng.uniform(updated + 600, now_ts)
            refund = {
                "paypal_account_id": info["paypal_account_id"],
                "paypal_reference_id": txn_id,
                "paypal_reference_id_type": "TXN",
                "transaction_id": upper_id(rng, 17),
                "transaction_event_code": "T1107",
                "transaction_amount": money(currency, -major),
                "fee_amount": money(currency, 0),
                "transaction_status": "S",
                "transaction_subject": f"Refund of invoice {invoice}",
                "invoice_id": invoice,
                "custom_field": info["custom_field"],
            }
            add(refunded_at, refunded_at, refund, buyer, country)

    out.sort(key=lambda t: (t["_updated_ts"], t["transaction_info"]["transaction_id"]))
    return out


# -- adyen ----------------------------------------------------------------------------------------------------

SETTLEMENT_DETAIL_COLUMNS = [
    "Company Account", "Merchant Account", "Psp Reference", "Merchant Reference", "Payment Method", "Creation Date",
    "TimeZone", "Type", "Modification Reference", "Gross Currency", "Gross Debit (GC)", "Gross Credit (GC)",
    "Exchange Rate", "Net Currency", "Net Debit (NC)", "Net Credit (NC)", "Commission (NC)", "Markup (NC)",
    "Scheme Fees (NC)", "Interchange (NC)", "Payment Method Variant", "Modification Merchant Reference",
    "Batch Number",
]  # fmt: skip
ADYEN_COMPANY = "FinSightGroup"
ADYEN_MERCHANT_ACCOUNT = "FinSightPlatformEU"
ADYEN_NET_CURRENCY = "EUR"
ADYEN_BATCH_HOURS = 6
ADYEN_GROSS_CURRENCIES = {"EUR": 60, "GBP": 12, "USD": 12, "SEK": 5, "CHF": 5, "DKK": 3, "NOK": 3}
ADYEN_METHODS = {("visa", "visacorporate"): 35, ("mc", "mccorporate"): 30, ("amex", "amex"): 8,
                 ("sepadirectdebit", "sepadirectdebit"): 20, ("ideal", "ideal"): 7}  # fmt: skip


@dataclass(frozen=True)
class AdyenReport:
    batch_number: int
    filename: str
    created_at: str  # ISO time the report became available (30 min after the batch closed)
    csv_text: str
    rows: int


def _psp(rng: random.Random) -> str:
    return upper_id(rng, 16)


def build_adyen(seed: int, scale: float, now: datetime) -> list[AdyenReport]:
    """One settlement-detail report per closed 6-hour batch; the batch still open at ``now`` is not published."""
    rng = random.Random(f"{seed}:adyen")
    ms = merchants(seed)
    now_ts = now.timestamp()
    start_ts = now_ts - SPAN.total_seconds()
    first_batch = 100 + rng.randrange(900)
    settled: list[dict[str, str]] = []  # payments that can later be refunded or charged back
    reports = []
    n_batches = int(SPAN.total_seconds() // (ADYEN_BATCH_HOURS * 3600))
    for i in range(n_batches):
        window_start = start_ts + i * ADYEN_BATCH_HOURS * 3600
        closed = window_start + ADYEN_BATCH_HOURS * 3600
        published = closed + 1800
        if published > now_ts:
            break
        batch = str(first_batch + i)
        rows: list[dict[str, str]] = []

        def row(
            kind: str, ts: float, _rows: list[dict[str, str]] = rows, _batch: str = batch, **values: str
        ) -> dict[str, str]:
            r = dict.fromkeys(SETTLEMENT_DETAIL_COLUMNS, "")
            r |= {
                "Company Account": ADYEN_COMPANY,
                "Merchant Account": ADYEN_MERCHANT_ACCOUNT,
                "Creation Date": datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "TimeZone": "UTC",
                "Type": kind,
                "Net Currency": ADYEN_NET_CURRENCY,
                "Batch Number": _batch,
            }
            _rows.append(r | values)
            return r | values

        net_total = 0.0
        n_payments = count(100, scale)
        for _ in range(n_payments):
            m = rng.choice(ms)
            gross_ccy = weighted(rng, ADYEN_GROSS_CURRENCIES)
            gross = round(invoice_usd(rng) * USD_RATES[gross_ccy], 2)
            fx = round(USD_RATES[ADYEN_NET_CURRENCY] / USD_RATES[gross_ccy], 6)
            gross_nc = round(gross * fx, 2)
            method, variant = rng.choices(list(ADYEN_METHODS), weights=list(ADYEN_METHODS.values()))[0]
            card = method in {"visa", "mc", "amex"}
            interchange = round(gross_nc * 0.012, 2) if card else 0.0
            scheme = round(gross_nc * 0.002, 2) if card else 0.0
            markup = round(gross_nc * 0.006, 2)
            commission = 0.11
            net = round(gross_nc - interchange - scheme - markup - commission, 2)
            net_total += net
            r = row(
                "Settled",
                rng.uniform(window_start, closed),
                **{
                    "Psp Reference": _psp(rng),
                    "Merchant Reference": f"M{m.merchant_id}-INV-{rng.randrange(1, 999_999):06d}",
                    "Payment Method": method,
                    "Payment Method Variant": variant,
                    "Modification Reference": _psp(rng),
                    "Gross Currency": gross_ccy,
                    "Gross Credit (GC)": f"{gross:.2f}",
                    "Exchange Rate": f"{fx}",
                    "Net Credit (NC)": f"{net:.2f}",
                    "Commission (NC)": f"{commission:.2f}",
                    "Markup (NC)": f"{markup:.2f}",
                    "Scheme Fees (NC)": f"{scheme:.2f}",
                    "Interchange (NC)": f"{interchange:.2f}",
                },
            )
            settled.append(r)
        # Refunds and chargebacks reuse the original payment's Psp Reference (hence Type in the primary key).
        for kind, share, fee in (("Refunded", 0.08, 0.11), ("Chargeback", 0.01, 15.0)):
            for _ in range(min(len(settled), round(n_payments * share))):
                original = settled.pop(rng.randrange(len(settled)))
                gross_nc = round(float(original["Gross Credit (GC)"]) * float(original["Exchange Rate"]), 2)
                net_total -= gross_nc + fee
                row(
                    kind,
                    rng.uniform(window_start, closed),
                    **{
                        k: original[k]
                        for k in ("Psp Reference", "Merchant Reference", "Payment Method", "Payment Method Variant")
                    },
                    **{
                        "Modification Reference": _psp(rng),
                        "Gross Currency": original["Gross Currency"],
                        "Gross Debit (GC)": original["Gross Credit (GC)"],
                        "Exchange Rate": original["Exchange Rate"],
                        "Net Debit (NC)": f"{gross_nc + fee:.2f}",
                        "Commission (NC)": f"{fee:.2f}",
                    },
                )
        if i % 4 == 3:  # a daily platform fee line
            net_total -= 25.0
            row("Fee", closed - 1, **{"Psp Reference": _psp(rng), "Modification Reference": "Fee: Platform daily",
                                       "Net Debit (NC)": "25.00"})  # fmt: skip
        row(
            "MerchantPayout",
            closed,
            **{
                "Psp Reference": _psp(rng),
                "Modification Reference": f"Batch {batch} payout",
                "Net Debit (NC)": f"{max(0.0, net_total):.2f}",
            },
        )
        rows.sort(key=lambda r: (r["Creation Date"], r["Psp Reference"], r["Type"]))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=SETTLEMENT_DETAIL_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        reports.append(
            AdyenReport(
                batch_number=int(batch),
                filename=f"settlement_detail_report_batch_{batch}.csv",
                created_at=iso_z(published),
                csv_text=buf.getvalue(),
                rows=len(rows),
            )
        )
    return reports


# -- fx -------------------------------------------------------------------------------------------------------

FX_BASES = ["USD", "EUR", "GBP"]
FX_PUBLISH_HOUR = 16  # daily reference rates are published at 16:00 UTC for that date


def build_fx(seed: int, scale: float, now: datetime) -> list[dict[str, Any]]:
    """Latest revision of each (date, base, quote), sorted by (date, base, quote).

    About 3 % of past rates are corrected a day later (``revision`` 2, later ``published_at``) so an incremental
    reader keyed on ``published_at`` picks the correction up.
    """
    rng = random.Random(f"{seed}:fx")
    days = max(3, round(14 * scale))
    last = now.date() if now.hour >= FX_PUBLISH_HOUR else now.date() - timedelta(days=1)
    dates = [last - timedelta(days=n) for n in range(days - 1, -1, -1)]
    now_ts = now.timestamp()
    mid = dict(USD_RATES)
    out: list[dict[str, Any]] = []
    for d in dates:
        mid = {c: (r if c == "USD" else r * math.exp(rng.gauss(0, 0.004))) for c, r in mid.items()}  # random walk
        published = datetime(d.year, d.month, d.day, FX_PUBLISH_HOUR, tzinfo=UTC).timestamp()
        for base in FX_BASES:
            for quote in mid:
                if quote == base:
                    continue
                rate, revision, published_at = mid[quote] / mid[base], 1, published
                if d < last and rng.random() < 0.03:
                    corrected_at = published + rng.uniform(20 * 3600, 44 * 3600)
                    if corrected_at <= now_ts:
                        rate, revision, published_at = rate * (1 + rng.gauss(0, 0.002)), 2, corrected_at
                out.append(fx_row(d, base, quote, rate, published_at, revision))
    if not any(r["revision"] == 2 for r in out):  # small scales: still show one correction
        r = out[0]
        out[0] = fx_row(date.fromisoformat(r["date"]), r["base"], r["quote"], r["rate"] * 1.001,
                        published_of(r) + 20 * 3600, 2)  # fmt: skip
    return out


def published_of(row: dict[str, Any]) -> float:
    return datetime.fromisoformat(row["published_at"]).timestamp()


def fx_row(d: date, base: str, quote: str, rate: float, published_at: float, revision: int) -> dict[str, Any]:
    return {
        "date": d.isoformat(),
        "base": base,
        "quote": quote,
        "rate": round(rate, 6),
        "published_at": iso_z(published_at),
        "revision": revision,
    }
