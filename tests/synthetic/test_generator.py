"""Synthetic sources against a real, throwaway PostgreSQL 15 cluster (no mocks).

Three fresh sets of the 12 source databases: `a` and `b` are seeded with the same parameters (determinism),
`c` with another seed. Digests are taken when a set is seeded, so the mutation tests (on `b`) cannot disturb them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from finsight.config import Environment, load_environment
from finsight.config.models import DeleteDetection
from finsight.local.postgres import LocalPostgres
from finsight.synthetic import create_source_tables, mutate_sources, seed_sources
from finsight.synthetic.values import PROFILES, card_brand, luhn_valid
from tests.ports import free_port

ENV = load_environment("local")
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SCALE = 0.05
PG_TYPES = {
    "string": "text",
    "int": "integer",
    "bigint": "bigint",
    "bool": "boolean",
    "timestamp": "timestamp with time zone",
    "date": "date",
    "json": "jsonb",
}

Connect = Callable[[str], psycopg.Connection]


@dataclass
class SourceSet:
    connect: Connect
    counts: dict[str, int]
    digest: dict[str, str]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalPostgres]:
    # Not tmp_path_factory: pytest keeps (and re-sets) its base dir at 0700, and when we run as root the cluster
    # belongs to the `postgres` OS user, whose pg_ctl must traverse every parent, also at teardown.
    base = Path(tempfile.mkdtemp(prefix="finsight-synthetic-"))
    base.chmod(0o711)
    pg = LocalPostgres(root=base / "pg", port=free_port())
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def make_set(pg: LocalPostgres, prefix: str, env: Environment = ENV) -> Connect:
    for source in env.postgres_sources:
        pg.ensure_database(f"{prefix}_{source}", "synthetic_reader", "reader-pw")
    return lambda source: pg.admin_connect(f"{prefix}_{source}")


def digest(env: Environment, connect: Connect) -> dict[str, str]:
    """md5 over every row's text form in primary-key order: equal digests == byte-identical tables."""
    out = {}
    for t in env.tables():
        with connect(t.source) as conn:
            query = sql.SQL("SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY {}), '')) FROM {} x").format(
                sql.SQL(", ").join(sql.SQL("x.{}").format(sql.Identifier(c)) for c in t.primary_key),
                sql.Identifier(t.name),
            )
            out[t.qualified] = conn.execute(query).fetchone()[0]  # type: ignore[index]
    return out


def seeded_set(pg: LocalPostgres, prefix: str, seed: int) -> SourceSet:
    connect = make_set(pg, prefix)
    create_source_tables(ENV, connect)
    counts = seed_sources(ENV, connect, scale=SCALE, seed=seed, now=NOW)
    return SourceSet(connect, counts, digest(ENV, connect))


@pytest.fixture(scope="module")
def set_a(cluster: LocalPostgres) -> SourceSet:
    return seeded_set(cluster, "a", 42)


@pytest.fixture(scope="module")
def set_b(cluster: LocalPostgres) -> SourceSet:
    return seeded_set(cluster, "b", 42)


@pytest.fixture(scope="module")
def set_c(cluster: LocalPostgres) -> SourceSet:
    return seeded_set(cluster, "c", 7)


def rows(connect: Connect, qualified: str) -> list[dict[str, Any]]:
    t = ENV.table(qualified)
    with connect(t.source) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return list(cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(t.name))))


def ri_violations(env: Environment, connect: Connect) -> list[str]:
    """Every `references` (same or cross database) resolves; children never hold NULL references."""
    values: dict[str, set[Any]] = {}

    def column(ref: str) -> set[Any]:
        if ref not in values:
            source, table, col = ref.split(".")
            with connect(source) as conn:
                q = sql.SQL("SELECT {} FROM {}").format(sql.Identifier(col), sql.Identifier(table))
                values[ref] = {r[0] for r in conn.execute(q)}
        return values[ref]

    problems = []
    for t in env.tables():
        for name, col in t.columns.items():
            if col.references:
                child = column(f"{t.qualified}.{name}")
                if None in child:
                    problems.append(f"{t.qualified}.{name}: NULL reference")
                if missing := child - {None} - column(col.references):
                    problems.append(f"{t.qualified}.{name}: {len(missing)} values missing in {col.references}")
    return problems


def ledger_imbalances(connect: Connect) -> list[Any]:
    with connect("ledger") as conn:
        return conn.execute(
            "SELECT payment_id FROM ledger_entries GROUP BY payment_id HAVING "
            "sum(amount) FILTER (WHERE direction = 'debit') IS DISTINCT FROM "
            "sum(amount) FILTER (WHERE direction = 'credit')"
        ).fetchall()


# -- DDL -----------------------------------------------------------------------------------------------
def test_ddl_matches_config(set_a: SourceSet) -> None:
    for source_name, source in ENV.postgres_sources.items():
        with set_a.connect(source_name) as conn:
            for t in source.tables.values():
                cols = {
                    r[0]: r[1:]
                    for r in conn.execute(
                        "SELECT column_name, data_type, is_nullable, numeric_precision, numeric_scale "
                        "FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
                        "ORDER BY ordinal_position",
                        (t.name,),
                    )
                }
                assert list(cols) == list(t.columns)
                for name, col in t.columns.items():
                    data_type, nullable, precision, scale = cols[name]
                    if col.type.startswith("decimal"):
                        assert (data_type, f"decimal({precision},{scale})") == ("numeric", col.type), name
                    else:
                        assert data_type == PG_TYPES[col.type], name
                    expect_not_null = not col.nullable or name in t.primary_key
                    assert (nullable == "NO") == expect_not_null, f"{t.qualified}.{name}"
                pk = [
                    r[0]
                    for r in conn.execute(
                        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                        "ORDER BY array_position(i.indkey::int2[], a.attnum)",
                        (t.name,),
                    )
                ]
                assert pk == t.primary_key
                fks = {
                    (r[0], r[1], r[2])
                    for r in conn.execute(
                        "SELECT a.attname, c.confrelid::regclass::text, fa.attname FROM pg_constraint c "
                        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
                        "JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1] "
                        "WHERE c.contype = 'f' AND c.conrelid = %s::regclass",
                        (t.name,),
                    )
                }
                same_db = {
                    (name, col.references.split(".")[1], col.references.split(".")[2])
                    for name, col in t.columns.items()
                    if col.references and col.references.split(".")[0] == source_name
                }
                assert fks == same_db, t.qualified
                indexed = [
                    r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (t.name,))
                ]
                assert any(f"({t.cursor})" in d for d in indexed), f"no cursor index on {t.qualified}"


def test_real_foreign_keys_exist_within_a_database(set_a: SourceSet) -> None:
    # the catalog has two same-database references; both must be enforced by PostgreSQL
    with set_a.connect("ledger") as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("INSERT INTO ledger_entries (entry_id, account_id, updated_at) VALUES (-1, -1, now())")


def test_create_is_idempotent(set_a: SourceSet) -> None:
    create_source_tables(ENV, set_a.connect)  # second run: no error, no change
    assert digest(ENV, set_a.connect) == set_a.digest


# -- seed ----------------------------------------------------------------------------------------------
def test_seed_is_deterministic(set_a: SourceSet, set_b: SourceSet, set_c: SourceSet) -> None:
    assert set_a.counts == set_b.counts
    assert set_a.digest == set_b.digest
    differs = [q for q in set_a.digest if set_a.digest[q] != set_c.digest[q]]
    assert len(differs) == len(set_a.digest), f"seed 7 reproduced seed 42 for {set(set_a.digest) - set(differs)}"


def test_seed_counts_cover_every_table(set_a: SourceSet) -> None:
    assert list(set_a.counts) == [t.qualified for t in ENV.tables()]
    assert all(n > 0 for n in set_a.counts.values()), set_a.counts
    c = set_a.counts
    assert c["risk.risk_assessments"] == c["payments.payments"]  # one assessment per payment
    assert c["ledger.ledger_entries"] > c["payments.payments"] > c["merchants.merchants"]
    assert c["fx.fx_rates"] % 365 == 0  # daily, per pair, over a year


def test_seed_is_idempotent(set_a: SourceSet) -> None:
    again = seed_sources(ENV, set_a.connect, scale=SCALE, seed=99, now=NOW + timedelta(days=3))
    assert again == set_a.counts
    assert digest(ENV, set_a.connect) == set_a.digest


def test_every_reference_resolves(set_a: SourceSet) -> None:
    assert ri_violations(ENV, set_a.connect) == []


def test_card_numbers_are_luhn_valid_and_branded(set_a: SourceSet) -> None:
    payments = rows(set_a.connect, "payments.payments")
    assert payments
    for p in payments:
        assert len(p["card_number"]) == 16 and luhn_valid(p["card_number"]), p["card_number"]
        assert p["card_brand"] == card_brand(p["card_number"]) != "unknown"
    assert len({p["card_brand"] for p in payments}) >= 2


def test_luhn_helpers() -> None:
    assert luhn_valid("4242424242424242") and luhn_valid("5555555555554444")
    assert not luhn_valid("4242424242424241") and not luhn_valid("42424242424242a2")
    assert card_brand("4111111111111111") == "visa" and card_brand("2221000000000009") == "mastercard"


def test_payments_agree_with_their_invoices(set_a: SourceSet) -> None:
    invoices = {i["invoice_id"]: i for i in rows(set_a.connect, "billing.invoices")}
    customers = {c["customer_id"]: c for c in rows(set_a.connect, "customers.customers")}
    for p in rows(set_a.connect, "payments.payments"):
        inv = invoices[p["invoice_id"]]
        assert (p["merchant_id"], p["customer_id"], p["currency"]) == (
            inv["merchant_id"],
            inv["customer_id"],
            inv["currency"],
        )
        assert customers[p["customer_id"]]["merchant_id"] == p["merchant_id"]
        assert p["currency"] in {"USD", "EUR", "GBP", "CAD", "AUD", "JPY"}
        assert p["amount"] > 0 and p["amount"] == p["amount"].quantize(Decimal("0.01"))
        assert p["status"] in {"succeeded", "failed", "pending"}
        assert inv["status"] in {"open", "paid"}


def test_money_rules(set_a: SourceSet) -> None:
    payments = {p["payment_id"]: p for p in rows(set_a.connect, "payments.payments")}
    for qualified in ("refunds.refunds", "disputes.disputes"):
        for r in rows(set_a.connect, qualified):
            assert 0 < r["amount"] <= payments[r["payment_id"]]["amount"], r
    for r in rows(set_a.connect, "refunds.refunds"):
        assert r["currency"] == payments[r["payment_id"]]["currency"]
    for b in rows(set_a.connect, "settlements.settlement_batches"):
        assert b["net_amount"] == b["gross_amount"] - b["fee_amount"] and 0 < b["fee_amount"] < b["gross_amount"]
    for a in rows(set_a.connect, "risk.risk_assessments"):
        assert 0 <= a["score"] <= 100
        expected = "decline" if a["score"] >= 85 else "review" if a["score"] >= 60 else "approve"
        assert a["decision"] == expected
    assert ledger_imbalances(set_a.connect) == []
    # every succeeded payment is booked, and only succeeded ones
    booked = {e["payment_id"] for e in rows(set_a.connect, "ledger.ledger_entries")}
    assert booked == {p for p, row in payments.items() if row["status"] == "succeeded"}


def test_fx_rates_calendar(set_a: SourceSet) -> None:
    rates = rows(set_a.connect, "fx.fx_rates")
    days = {r["rate_date"] for r in rates}
    pairs = {(r["base_currency"], r["quote_currency"]) for r in rates}
    assert len(days) == 365 and 3 <= len(pairs) <= 10 and len(rates) == len(days) * len(pairs)
    assert all(b != q and r["rate"] > 0 for r in rates for b, q in [(r["base_currency"], r["quote_currency"])])
    assert max(days) <= NOW.date()


def test_timestamps(set_a: SourceSet) -> None:
    for t in ENV.tables():
        births = [c for c, col in t.columns.items() if col.type == "timestamp" and c != t.cursor][:1]
        for r in rows(set_a.connect, t.qualified):
            assert r[t.cursor] is not None and r[t.cursor] <= NOW, t.qualified
            for b in births:
                assert r[b] <= r[t.cursor], f"{t.qualified}.{b} after the cursor"
                if t.qualified != "fx.fx_rates":
                    assert r[b] >= NOW - timedelta(days=31), f"{t.qualified}.{b} too old"


def test_statuses_and_vocabularies(set_a: SourceSet) -> None:
    merchants = rows(set_a.connect, "merchants.merchants")
    assert {m["status"] for m in merchants} <= {"active", "suspended", "pending_kyc"}
    assert all(len(m["mcc"]) == 4 and m["mcc"].isdigit() and len(m["country"]) == 2 for m in merchants)
    assert {i["status"] for i in rows(set_a.connect, "billing.invoices")} <= {"draft", "open", "paid", "void"}
    subs = rows(set_a.connect, "subscriptions.subscriptions")
    assert all((s["canceled_at"] is not None) == (s["status"] == "canceled") for s in subs)
    assert all("@" in c["email"] for c in rows(set_a.connect, "customers.customers"))


# -- mutations -------------------------------------------------------------------------------------------
def snapshot(connect: Connect) -> dict[str, dict[tuple[Any, ...], datetime]]:
    out = {}
    for t in ENV.tables():
        with connect(t.source) as conn:
            q = sql.SQL("SELECT {}, {} FROM {}").format(
                sql.SQL(", ").join(map(sql.Identifier, t.primary_key)), sql.Identifier(t.cursor), sql.Identifier(t.name)
            )
            out[t.qualified] = {tuple(r[:-1]): r[-1] for r in conn.execute(q)}
    return out


def test_mutations_match_the_database(set_b: SourceSet) -> None:
    totals: dict[str, int] = defaultdict(int)
    for step in range(3):
        now = NOW + timedelta(hours=step + 1, minutes=7)
        before = snapshot(set_b.connect)
        summary = mutate_sources(ENV, set_b.connect, step=step, seed=42, now=now)
        after = snapshot(set_b.connect)
        assert list(summary.tables) == [t.qualified for t in ENV.tables()]
        for t in ENV.tables():
            old, new, ch = before[t.qualified], after[t.qualified], summary.tables[t.qualified]
            inserted, deleted = new.keys() - old.keys(), old.keys() - new.keys()
            touched = {k for k in old.keys() & new.keys() if new[k] != old[k]}
            assert (ch.inserted, ch.deleted, ch.updated) == (len(inserted), len(deleted), len(touched)), t.qualified
            assert all(new[k] == now for k in inserted | touched), f"{t.qualified}: cursor != now"
            assert max(new.values()) <= now
            if t.deletes is DeleteDetection.NONE:
                assert not deleted, f"{t.qualified} lost rows but has no delete detection"
        totals["inserted"] += summary.inserted
        totals["updated"] += summary.updated
        totals["deleted"] += summary.deleted
    assert totals["inserted"] > 0 and totals["updated"] > 0 and totals["deleted"] > 0, totals
    assert ri_violations(ENV, set_b.connect) == []
    assert ledger_imbalances(set_b.connect) == []
    # hours keep the books complete: each succeeded payment, new or newly settled, has its entries
    booked = {e["payment_id"] for e in rows(set_b.connect, "ledger.ledger_entries")}
    succeeded = {p["payment_id"] for p in rows(set_b.connect, "payments.payments") if p["status"] == "succeeded"}
    assert booked == succeeded


def test_mutations_are_deterministic(cluster: LocalPostgres) -> None:
    """Same database state + step + seed -> same changes (two fresh sets seeded alike, mutated alike)."""
    d = make_set(cluster, "d")
    create_source_tables(ENV, d)
    seed_sources(ENV, d, scale=SCALE, seed=42, now=NOW)
    e = make_set(cluster, "e")
    create_source_tables(ENV, e)
    seed_sources(ENV, e, scale=SCALE, seed=42, now=NOW)
    now = NOW + timedelta(hours=30)  # crosses a publication time: new fx days arrive too
    first = mutate_sources(ENV, d, step=5, now=now)
    second = mutate_sources(ENV, e, step=5, now=now)
    assert first == second
    assert first.tables["fx.fx_rates"].inserted > 0
    assert digest(ENV, d) == digest(ENV, e)


# -- config-driven ---------------------------------------------------------------------------------------
def test_profiles_name_catalog_tables() -> None:
    known = {t.qualified for t in ENV.tables()}
    assert set(PROFILES) <= known, set(PROFILES) - known


def test_a_new_catalog_table_needs_no_code(cluster: LocalPostgres) -> None:
    """A table (and column names) the generator has never heard of still gets DDL, rows and mutations."""
    data = ENV.model_dump(mode="json")
    data["postgres_sources"] = {"merchants": data["postgres_sources"]["merchants"]}
    if data.get("quality"):  # per-table quality overrides may only name tables this smaller catalog still has
        overrides = data["quality"].get("tables") or {}
        kept = {"merchants"} | set(data["api_sources"])
        data["quality"]["tables"] = {k: v for k, v in overrides.items() if k.split(".")[0] in kept}
    data["postgres_sources"]["merchants"]["tables"]["merchant_notes"] = {
        "primary_key": ["note_id"],
        "cursor": "changed_at",
        "deletes": "pk_snapshot",
        "columns": {
            "note_id": {"type": "bigint", "nullable": False},
            "merchant_id": {"type": "bigint", "references": "merchants.merchants.merchant_id"},
            "body": {"type": "string", "nullable": False},
            "meta": {"type": "json"},
            "flagged": {"type": "bool"},
            "weight": {"type": "decimal(10,4)"},
            "noted_on": {"type": "date"},
            "written_at": {"type": "timestamp"},
            "changed_at": {"type": "timestamp", "nullable": False},
        },
    }
    env = Environment.model_validate(data)
    connect = make_set(cluster, "x", env)
    create_source_tables(env, connect)
    counts = seed_sources(env, connect, scale=0.2, now=NOW)
    assert counts["merchants.merchant_notes"] > 0
    assert ri_violations(env, connect) == []
    later = NOW + timedelta(hours=1)
    summary = mutate_sources(env, connect, step=0, now=later)
    assert summary.tables["merchants.merchant_notes"].inserted > 0
    with connect("merchants") as conn:
        assert conn.execute("SELECT count(*) FROM merchant_notes WHERE meta IS NULL OR body IS NULL").fetchone() == (0,)
    assert ri_violations(env, connect) == []
