"""Optional upstreams switch on by themselves: the FX API's CURATED table is preferred for the rate of the day, the
acquirer report adds its side to the settlement reconciliation; without them the marts fall back (internal FX
book, internal vs payouts only).

Both API tables are catalog tables, so each test takes the real one away (renamed, restored in `finally`), builds
without it, then builds on a stand-in with the real table's columns (CTAS of zero rows: no column typed twice)
holding a few known rows, and ends by rebuilding the mart on the real table again, so the shared stack is left
as it was found.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest

from finsight import deploy_fingerprint, warehouse
from finsight.config import Environment
from finsight.local.stack import LocalStack
from snowpark.marts_build import build_mart
from tasks.runner import sync_catalog
from tests.warehouse.helpers import sf

pytestmark = pytest.mark.stack


@pytest.fixture
def session(local_env: Environment, local_stack: LocalStack) -> Iterator[object]:
    deploy_fingerprint.deploy_if_changed(local_env)
    s = warehouse.snowpark_session(local_env)
    sync_catalog(local_env, s)
    yield s
    s.close()


def _build(session: object, mart: str, full: bool = False) -> dict:
    config = json.dumps({"full_refresh_marts": [mart]}) if full else None
    return json.loads(build_mart(session, mart, f"test-optional-{mart}", config))


class _TakenAway:
    """The CURATED table of a catalog table renamed away, and later a stand-in with its columns under its name."""

    def __init__(self, env: Environment, session: object, qualified: str) -> None:
        curated = env.snowflake.schemas["curated"]
        self.name = env.table(qualified).curated_name
        self.table, self.away = f"{curated}.{self.name}", f"{curated}.{self.name}_AWAY_TEST"
        self.session = session

    def sql(self, text: str) -> None:
        self.session.sql(text).collect()  # type: ignore[attr-defined]

    def __enter__(self) -> _TakenAway:
        self.sql(f"ALTER TABLE {self.table} RENAME TO {self.away}")
        return self

    def stand_in(self, rows: list[dict[str, object]]) -> None:
        self.sql(f"CREATE TABLE {self.table} AS SELECT * FROM {self.away} WHERE 1 = 0")
        for row in rows:
            values = ", ".join("NULL" if v is None else f"'{v}'" for v in row.values())
            self.sql(f"INSERT INTO {self.table} ({', '.join(row)}) VALUES ({values})")

    def __exit__(self, *exc: object) -> None:
        self.sql(f"DROP TABLE IF EXISTS {self.table}")
        self.sql(f"ALTER TABLE {self.away} RENAME TO {self.name}")


def _curated_tables(env: Environment) -> set[str]:
    schema = env.snowflake.schemas["curated"]
    return {r[0] for r in sf(env, f"SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = '{schema}'")}


def test_the_fx_api_rate_is_preferred_when_its_table_exists(local_env: Environment, session) -> None:
    fx = _TakenAway(local_env, session, "fxrates.daily_rates")
    with fx:
        alone = _build(session, "daily_revenue")  # the FX API is gone: the internal book alone
        assert alone["mode"] == "full" and alone["optional_upstreams"] == []
        assert {r[0] for r in sf(local_env, "SELECT DISTINCT FX_SOURCE FROM MARTS.DAILY_REVENUE")} <= {
            "identity",
            "fx.fx_rates",
        }
        rows = sf(local_env, "SELECT BUSINESS_DATE, CURRENCY FROM MARTS.DAILY_REVENUE WHERE CURRENCY <> 'USD' LIMIT 1")
        if not rows:
            pytest.skip("no non-USD revenue in CURATED yet")
        day, currency = rows[0]
        # the FX API's columns as the config names them (rate = units of `quote` per 1 `base`)
        fx.stand_in([{"rate_date": day, "base": "USD", "quote": currency, "rate": "1.23456789",
                      "published_at": f"{day} 16:00:00", "revision": 1}])  # fmt: skip
        out = _build(session, "daily_revenue")
        assert out["mode"] == "full" and out["optional_upstreams"] == [fx.name]
        picked = sf(local_env, f"SELECT DISTINCT FX_RATE, FX_SOURCE FROM MARTS.DAILY_REVENUE WHERE BUSINESS_DATE = "
                               f"'{day}' AND CURRENCY = '{currency}'")  # fmt: skip
        assert picked == [(Decimal("1.23456789"), "fxrates.daily_rates")]
        sources = {r[0] for r in sf(local_env, "SELECT DISTINCT FX_SOURCE FROM MARTS.DAILY_REVENUE")}
        assert "fx.fx_rates" in sources  # the other days still fall back to the internal book
    assert fx.name in _curated_tables(local_env) and fx.away.split(".")[1] not in _curated_tables(local_env)
    # the real table again (same variant as the stand-in's: a full refresh rebuilds the mart on the real rows)
    back = _build(session, "daily_revenue", full=True)
    assert back["mode"] == "full" and back["optional_upstreams"] == [fx.name]


def test_the_acquirer_side_switches_on_with_its_table(local_env: Environment, session) -> None:
    acquirer = _TakenAway(local_env, session, "adyen.settlement_details")
    with acquirer:
        alone = _build(session, "settlement_reconciliation")
        assert alone["mode"] == "full" and alone["optional_upstreams"] == []
        assert sf(local_env, "SELECT COUNT(*) FROM MARTS.SETTLEMENT_RECONCILIATION WHERE ACQUIRER_NET IS NOT NULL "
                             "OR ACQUIRER_LINES IS NOT NULL") == [(0,)]  # fmt: skip
        rows = sf(local_env, "SELECT SETTLEMENT_DATE, MERCHANT_ID, CURRENCY, INTERNAL_NET FROM "
                             "MARTS.SETTLEMENT_RECONCILIATION WHERE INTERNAL_NET <> 0 LIMIT 1")  # fmt: skip
        if not rows:
            pytest.skip("no settlement batch in CURATED yet")
        day, merchant, currency, net = rows[0]
        lines = [("Settled", net + 10, None), ("Refunded", None, Decimal("10.00")), ("MerchantPayout", None, 5)]
        # the report's columns as the config names them (the CSV header is their `path`)
        acquirer.stand_in([
            {"batch_number": 1, "psp_reference": f"PSP{n}", "record_type": kind, "report_name": "test.csv",
             "line_number": n, "merchant_reference": f"M{merchant}-INV-00000{n}" if kind != "MerchantPayout" else "",
             "creation_date": f"{day} 12:00:00", "net_currency": currency, "net_credit": credit, "net_debit": debit}
            for n, (kind, credit, debit) in enumerate(lines)
        ])  # fmt: skip
        out = _build(session, "settlement_reconciliation")
        assert out["mode"] == "full" and out["optional_upstreams"] == [acquirer.name]
        (row,) = sf(local_env, f"SELECT ACQUIRER_LINES, ACQUIRER_NET, ACQUIRER_DIFFERENCE FROM "
                               f"MARTS.SETTLEMENT_RECONCILIATION WHERE SETTLEMENT_DATE = '{day}' AND MERCHANT_ID = "
                               f"{merchant} AND CURRENCY = '{currency}'")  # fmt: skip
        assert row == (2, net, Decimal("0.00"))  # the payout line carries no merchant: left out
    assert acquirer.name in _curated_tables(local_env)
    back = _build(session, "settlement_reconciliation", full=True)
    assert back["mode"] == "full" and back["optional_upstreams"] == [acquirer.name]
