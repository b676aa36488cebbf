"""Seeded value factories and the B2B-payments domain vocabulary the synthetic sources draw from.

Every factory takes an explicit `random.Random`, never the module-level generator, so the same seed always
yields the same bytes. Table *structure* (columns, types, keys, references) always comes from the config;
this module only knows what values look like and how each kind of business object behaves over time.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

CENT = Decimal("0.01")


def derive_rng(seed: int, *parts: object) -> random.Random:
    """An independent generator per (seed, purpose): adding a table never reshuffles another table's rows."""
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))  # noqa: S311 - synthetic data, not security


def stable_int(*parts: object) -> int:
    """A process-independent hash (Python's `hash()` is salted per process)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


# -- cards ---------------------------------------------------------------------------------------
# 16-digit PAN prefixes per brand (IIN ranges); Amex is 15 digits so it is left out on purpose.
CARD_PREFIXES: dict[str, tuple[str, ...]] = {
    "visa": ("4",),
    "mastercard": ("51", "52", "53", "54", "55", "2221", "2720"),
    "discover": ("6011", "65"),
    "jcb": ("3528", "3589"),
}
CARD_BRAND_WEIGHTS = {"visa": 55, "mastercard": 35, "discover": 6, "jcb": 4}


def luhn_check_digit(partial: str) -> str:
    """The digit that makes `partial + digit` pass the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:  # these positions get doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(pan: str) -> bool:
    return pan.isdigit() and len(pan) >= 2 and luhn_check_digit(pan[:-1]) == pan[-1]


def card_number(rng: random.Random) -> str:
    brand = weighted(rng, CARD_BRAND_WEIGHTS)
    prefix = rng.choice(CARD_PREFIXES[brand])
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
    return body + luhn_check_digit(body)


def card_brand(pan: str) -> str:
    """Brand from the IIN, longest matching prefix first (2221/2720 are Mastercard's 2-series)."""
    if pan[:1] == "4":
        return "visa"
    if "51" <= pan[:2] <= "55" or "2221" <= pan[:4] <= "2720":
        return "mastercard"
    if pan[:4] == "6011" or pan[:2] == "65":
        return "discover"
    if "3528" <= pan[:4] <= "3589":
        return "jcb"
    return "unknown"


# -- people, companies, places -------------------------------------------------------------------
FIRST_NAMES = (
    "Ava", "Noah", "Mia", "Liam", "Emma", "Lucas", "Sofia", "Mateo", "Yuki", "Hiro", "Amara", "Kofi",
    "Priya", "Arjun", "Chloe", "Oliver", "Lea", "Jonas", "Ines", "Diego", "Sara", "Omar", "Nora", "Ethan",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Garcia", "Müller", "Tanaka", "Okafor", "Patel", "Martin", "Rossi", "Silva", "Kowalski",
    "Nguyen", "Johansson", "Dubois", "Kim", "O'Brien", "Haddad", "Novak", "Costa", "Fischer", "Singh",
)  # fmt: skip
COMPANY_WORDS = (
    "Acme", "Northwind", "Blue Harbor", "Summit", "Vertex", "Ironwood", "Lumen", "Cobalt", "Atlas",
    "Pioneer", "Redwood", "Helix", "Orbit", "Keystone", "Meridian", "Silverline", "Brightpath", "Quarry",
)  # fmt: skip
COMPANY_KINDS = ("Logistics", "Software", "Supply", "Foods", "Health", "Industrial", "Media", "Analytics")
COMPANY_SUFFIXES = ("Inc.", "Ltd", "GmbH", "LLC", "S.A.", "B.V.", "Pty Ltd", "K.K.")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "corp.example")
COUNTRY_WEIGHTS = {"US": 40, "GB": 12, "DE": 10, "FR": 8, "CA": 8, "AU": 6, "JP": 5, "NL": 4, "IE": 4, "ES": 3}
# ISO 18245 merchant category codes typical of B2B acquiring
MCC_CODES = ("5045", "5065", "5085", "5111", "5169", "5199", "7372", "7379", "7392", "8111", "8931", "4214")
PRODUCT_TIERS = ("Starter", "Growth", "Business", "Enterprise", "Premium", "Team")


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def company_name(rng: random.Random) -> str:
    return f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_KINDS)} {rng.choice(COMPANY_SUFFIXES)}"


def slug(text: str) -> str:
    return "".join(ch for ch in text.lower().replace(" ", ".") if ch.isascii() and (ch.isalnum() or ch == "."))


def email(rng: random.Random, name: str | None, unique: int) -> str:
    """`unique` (the row id) keeps addresses distinct even when two people share a name."""
    local = slug(name).strip(".") if name else f"user{rng.randrange(10**6)}"
    return f"{local}.{unique % 100000}@{rng.choice(EMAIL_DOMAINS)}"


def country(rng: random.Random) -> str:
    return weighted(rng, COUNTRY_WEIGHTS)


def mcc(rng: random.Random) -> str:
    return rng.choice(MCC_CODES)


# -- money -----------------------------------------------------------------------------------------
CURRENCY_WEIGHTS = {"USD": 45, "EUR": 25, "GBP": 12, "CAD": 8, "AUD": 6, "JPY": 4}
CURRENCIES = tuple(CURRENCY_WEIGHTS)
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY"})  # no minor unit: amounts land as whole numbers (.00)
# a handful of pairs the rate book publishes, with a realistic mid rate to wander around
FX_PAIRS: dict[tuple[str, str], Decimal] = {
    ("USD", "EUR"): Decimal("0.92"),
    ("USD", "GBP"): Decimal("0.79"),
    ("USD", "CAD"): Decimal("1.36"),
    ("USD", "AUD"): Decimal("1.52"),
    ("USD", "JPY"): Decimal("151.20"),
    ("EUR", "GBP"): Decimal("0.86"),
}


def currency(rng: random.Random) -> str:
    return weighted(rng, CURRENCY_WEIGHTS)


def money(value: float | Decimal, currency_code: str | None = None) -> Decimal:
    """Two decimals, half-up; whole units for zero-decimal currencies."""
    quantum = Decimal(1) if currency_code in ZERO_DECIMAL_CURRENCIES else CENT
    return Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP).quantize(CENT)


def amount(rng: random.Random, low: float, high: float, currency_code: str | None = None) -> Decimal:
    """Log-uniform between low and high: many small invoices, a long tail of large ones (B2B)."""
    value = low * (high / low) ** rng.random()
    if currency_code == "JPY":
        value *= 150  # same economic size, yen denominated
    return max(money(value, currency_code), money(1 if currency_code in ZERO_DECIMAL_CURRENCIES else 0.01))


def fx_rate(mid: Decimal, day_index: int, rng: random.Random) -> Decimal:
    """A slow drift plus daily noise around the mid rate, 8 decimals like the rate book."""
    drift = Decimal(str(0.03 * ((day_index % 90) / 90 - 0.5)))
    noise = Decimal(str(rng.gauss(0, 0.004)))
    return (mid * (1 + drift + noise)).quantize(Decimal("0.00000001"))


# -- risk --------------------------------------------------------------------------------------------
REVIEW_FROM, DECLINE_FROM = 60, 85


def risk_score(rng: random.Random) -> int:
    return min(100, max(0, round(rng.betavariate(2, 5) * 100)))  # most payments are low risk


def risk_decision(score: int) -> str:
    return "decline" if score >= DECLINE_FROM else "review" if score >= REVIEW_FROM else "approve"


def weighted(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


# -- per-table behaviour ---------------------------------------------------------------------------
class Fanout(StrEnum):
    """How many rows a child table holds per eligible anchor (most specific referenced) parent row."""

    SPREAD = "spread"  # a skewed (exponential) number around `per_parent`: a few big merchants, many small
    EXACT = "exact"  # exactly `per_parent` each; mutations complete parents that are missing theirs
    SPARSE = "sparse"  # at most one, for a `per_parent` fraction of parents (refunds, disputes)


@dataclass(frozen=True)
class Lifecycle:
    """Status values: the seeded mix, what new rows start as, and which moves an update may make."""

    weights: Mapping[str, float]
    transitions: Mapping[str, tuple[str, ...]]
    new: Mapping[str, float] | None = None  # status mix of rows inserted by mutations (default: weights)


@dataclass(frozen=True)
class DoubleEntry:
    """Entries come in debit/credit pairs of equal amount against two different accounts of one owner."""

    direction_column: str
    kind_column: str
    fee_kind: str  # the second pair books the processing fee; the first pair books the anchor's full amount
    fee_rate: float = 0.029


@dataclass(frozen=True)
class TableProfile:
    rows: int = 100  # root tables (no references): rows at scale 1.0
    fanout: Fanout = Fanout.SPREAD
    per_parent: float = 3.0
    parent_where: Mapping[str, frozenset[str]] = field(default_factory=dict)  # eligible anchor parents
    lifecycle: Lifecycle | None = None
    enums: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    amount_range: tuple[float, float] = (10.0, 5_000.0)
    bounded_fraction: tuple[float, float] = (1.0, 1.0)  # child amount / parent amount when both name it alike
    corrections: tuple[str, ...] = ()  # columns an update may re-draw ("amount corrections", rescoring...)
    deletable: frozenset[str] = frozenset()  # statuses a hard delete may purge (delete-detected tables only)
    double_entry: DoubleEntry | None = None
    date_offset_days: tuple[int, int] = (1, 30)  # non-key date columns: days after the row's birth


def _flow(**transitions: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return transitions


# The domain knowledge the catalog cannot carry: volumes and lifecycles of each business object, keyed by
# `Table.qualified`. A table missing here still seeds and mutates with DEFAULT_PROFILE (tests prove it), and a
# test fails if a key here stops naming a table of the catalog.
DEFAULT_PROFILE = TableProfile()
PROFILES: dict[str, TableProfile] = {
    "merchants.merchants": TableProfile(
        rows=240,
        lifecycle=Lifecycle(
            weights={"active": 85, "suspended": 5, "pending_kyc": 10},
            transitions=_flow(pending_kyc=("active",), active=("suspended",), suspended=("active",)),
            new={"pending_kyc": 1},
        ),
        corrections=("contact_email",),
    ),
    "customers.customers": TableProfile(per_parent=10, corrections=("email", "country")),
    "billing.invoices": TableProfile(
        per_parent=4.5,
        lifecycle=Lifecycle(
            weights={"draft": 8, "open": 22, "paid": 65, "void": 5},
            transitions=_flow(draft=("open", "void"), open=("paid", "void")),
            new={"draft": 6, "open": 4},
        ),
        amount_range=(50.0, 20_000.0),
        corrections=("amount_due",),
        deletable=frozenset({"draft"}),
        date_offset_days=(14, 45),
    ),
    "payments.payments": TableProfile(
        fanout=Fanout.EXACT,  # one card payment per issued invoice
        per_parent=1,
        parent_where={"status": frozenset({"open", "paid"})},
        lifecycle=Lifecycle(
            weights={"succeeded": 85, "failed": 8, "pending": 7},
            transitions=_flow(pending=("succeeded", "succeeded", "succeeded", "failed")),
            new={"succeeded": 70, "pending": 20, "failed": 10},
        ),
    ),
    "refunds.refunds": TableProfile(
        fanout=Fanout.SPARSE,
        per_parent=0.06,
        parent_where={"status": frozenset({"succeeded"})},
        bounded_fraction=(0.1, 1.0),
        lifecycle=Lifecycle(
            weights={"succeeded": 85, "pending": 10, "failed": 5},
            transitions=_flow(pending=("succeeded", "failed")),
            new={"pending": 1},
        ),
        enums={"reason": ("requested_by_customer", "duplicate", "fraudulent", "product_not_received")},
    ),
    "disputes.disputes": TableProfile(
        fanout=Fanout.SPARSE,
        per_parent=0.012,
        parent_where={"status": frozenset({"succeeded"})},
        bounded_fraction=(0.5, 1.0),
        lifecycle=Lifecycle(
            weights={"needs_response": 20, "under_review": 30, "won": 30, "lost": 20},
            transitions=_flow(needs_response=("under_review",), under_review=("won", "lost")),
            new={"needs_response": 1},
        ),
        enums={"reason": ("fraudulent", "product_not_received", "duplicate", "subscription_canceled", "general")},
    ),
    "payouts.payouts": TableProfile(
        per_parent=15,
        amount_range=(500.0, 80_000.0),
        lifecycle=Lifecycle(
            weights={"paid": 85, "in_transit": 7, "pending": 5, "failed": 3},
            transitions=_flow(pending=("in_transit",), in_transit=("paid", "paid", "paid", "failed")),
            new={"pending": 1},
        ),
        date_offset_days=(1, 3),
    ),
    "ledger.accounts": TableProfile(
        fanout=Fanout.EXACT,
        per_parent=4,
        enums={"account_type": ("receivable", "balance", "fees", "reserve")},
    ),
    "ledger.ledger_entries": TableProfile(
        fanout=Fanout.EXACT,
        parent_where={"status": frozenset({"succeeded"})},
        enums={"direction": ("debit", "credit"), "entry_type": ("charge", "fee")},
        double_entry=DoubleEntry(direction_column="direction", kind_column="entry_type", fee_kind="fee"),
    ),
    "fx.fx_rates": TableProfile(corrections=("rate",)),
    "subscriptions.plans": TableProfile(
        fanout=Fanout.EXACT,
        per_parent=3,
        amount_range=(19.0, 2_000.0),
        enums={"billing_interval": ("month", "year")},
        corrections=("amount",),
    ),
    "subscriptions.subscriptions": TableProfile(
        per_parent=2.5,
        lifecycle=Lifecycle(
            weights={"active": 70, "trialing": 10, "past_due": 5, "canceled": 15},
            transitions=_flow(
                trialing=("active", "canceled"), active=("past_due", "canceled"), past_due=("active", "canceled")
            ),
            new={"trialing": 1},
        ),
        deletable=frozenset({"canceled"}),
    ),
    "risk.risk_assessments": TableProfile(fanout=Fanout.EXACT, per_parent=1, corrections=("score",)),
    "settlements.settlement_batches": TableProfile(
        per_parent=10, amount_range=(1_000.0, 150_000.0), corrections=("fee_amount",)
    ),
}


def profile_for(qualified: str) -> TableProfile:
    return PROFILES.get(qualified, DEFAULT_PROFILE)
