"""Cursor windows and the chunk query, property-based (hypothesis), without a database server.

Oracle: the rows a window promises (`lower <= cursor <= upper`, or `< upper` for [start, end) backfills, plus the
key range `[low, high)`) computed in Python, against the rows the generated SELECT really returns when DuckDB runs
it over the same values. The watermark arithmetic is checked against the configured lookback.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.postgres.bulk import (
    ChunkQuery,
    Snapshot,
    Window,
    quote_ident,
    scaled_numeric,
    select_expression,
    select_sql,
)
from connectors.postgres.schema import LiveColumn
from connectors.postgres.source import TableStream
from finsight.config import Environment, load_environment

BASE = datetime(2026, 11, 27, 12, 0, 0)
moments = st.integers(min_value=-3 * 86_400_000_000, max_value=3 * 86_400_000_000).map(
    lambda us: BASE + timedelta(microseconds=us)
)
PG_TIMESTAMP = {"timestamp": "timestamp without time zone", "timestamptz": "timestamp with time zone"}


@pytest.fixture(scope="module")
def env() -> Environment:
    return load_environment("local")


def _live(table, cursor_type: str) -> dict[str, LiveColumn]:
    live = {name: LiveColumn("text") for name in table.columns}
    live[table.primary_key[0]] = LiveColumn("bigint")
    live[table.cursor] = LiveColumn(PG_TIMESTAMP[cursor_type])
    return live


def _selected(table, cursor_type: str, rows: list[tuple[int, datetime]], query: str) -> set[int]:
    """Run the generated query in DuckDB over a table holding `rows` (key, cursor as naive UTC)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    pk, cursor = quote_ident(table.primary_key[0]), quote_ident(table.cursor)
    others = [quote_ident(c) for c in table.columns if c not in (table.primary_key[0], table.cursor)]
    sql_type = "TIMESTAMPTZ" if cursor_type == "timestamptz" else "TIMESTAMP"
    cols = [f"{pk} BIGINT", f"{cursor} {sql_type}", *(f"{c} VARCHAR" for c in others)]
    con.execute(f"CREATE TABLE {quote_ident(table.name)} ({', '.join(cols)})")
    for key, at in rows:
        value = f"TIMESTAMPTZ '{at.isoformat(sep=' ')}+00'" if cursor_type == "timestamptz" else f"TIMESTAMP '{at}'"
        con.execute(f"INSERT INTO {quote_ident(table.name)} ({pk}, {cursor}) VALUES ({key}, {value})")
    # DuckDB reads the PostgreSQL casts the chunk query uses for json/uuid columns as plain text
    return {r[0] for r in con.execute(f"SELECT {pk} FROM ({query.replace('::text', '')})").fetchall()}


@settings(max_examples=40, deadline=None)
@given(
    cursors=st.lists(moments, min_size=1, max_size=12),
    lower=st.none() | moments,
    upper=moments,
    inclusive=st.booleans(),
    key_range=st.none() | st.tuples(st.integers(0, 12), st.integers(0, 12)),
    cursor_type=st.sampled_from(["timestamp", "timestamptz"]),
    boundary=st.booleans(),
)
def test_the_query_returns_exactly_the_window(
    env: Environment, cursors, lower, upper, inclusive, key_range, cursor_type, boundary
) -> None:
    table = env.table("payments.payments")
    if boundary:  # rows exactly on the bounds are where < / <= and > / >= differ
        cursors = [*cursors, upper, *([lower] if lower else [])]
    rows = list(enumerate(cursors))
    window = Window(lower, upper, inclusive)
    query = select_sql(table, _live(table, cursor_type), window, key_range).sql
    assert "ORDER BY" not in query  # a window needs no sort (1.5x slower at the source)
    expected = {
        key
        for key, at in rows
        if (lower is None or at >= lower)
        and (at <= upper if inclusive else at < upper)
        and (key_range is None or key_range[0] <= key < key_range[1])
    }
    assert _selected(table, cursor_type, rows, query) == expected


def test_timestamptz_cursors_are_compared_and_landed_as_utc(env: Environment) -> None:
    table = env.table("payments.payments")
    query = select_sql(table, _live(table, "timestamptz"), Window(None, BASE), None).sql
    assert f"(TIMESTAMP '{BASE.isoformat(sep=' ')}' AT TIME ZONE 'UTC')" in query
    assert '("updated_at" AT TIME ZONE \'UTC\') AS "updated_at"' in query  # naive UTC on the wire
    plain = select_sql(table, _live(table, "timestamp"), Window(None, BASE), None).sql
    assert f"\"updated_at\" <= TIMESTAMP '{BASE.isoformat(sep=' ')}'" in plain


def test_only_live_columns_the_catalog_knows_are_selected(env: Environment) -> None:
    table = env.table("payments.payments")
    live = _live(table, "timestamp") | {"not_in_catalog": LiveColumn("text"), "meta": LiveColumn("jsonb")}
    del live["card_brand"]  # dropped at the source: not selected (lands as NULL)
    query = select_sql(table, live, Window(None, BASE), None).sql
    selected = query.removeprefix("SELECT ").split(" FROM ")[0]
    assert '"not_in_catalog"' not in selected and '"card_brand"' not in selected
    assert selected.split(", ")[0] == '"payment_id"'
    assert quote_ident('we"ird') == '"we""ird"'


@settings(max_examples=60, deadline=None)
@given(watermark=moments, upper=moments, lookback=st.integers(0, 24 * 60))
def test_incremental_window_starts_lookback_before_the_watermark(
    env: Environment, watermark: datetime, upper: datetime, lookback: int
) -> None:
    tuned = env.model_copy(
        update={"connectors": env.connectors.model_copy(update={"cursor_lookback_minutes": lookback})}
    )
    stream = TableStream(tuned, tuned.table("payments.payments"))
    assert stream.window(upper) == Window(None, upper, True)  # first run: everything up to the horizon
    stream.state = {"cursor": watermark.isoformat()}
    assert stream.window(upper) == Window(watermark - timedelta(minutes=lookback), upper, True)


@settings(max_examples=30, deadline=None)
@given(lower=moments, upper=moments, watermark=moments)
def test_an_explicit_lower_bound_ignores_the_watermark(
    env: Environment, lower: datetime, upper: datetime, watermark: datetime
) -> None:
    stream = TableStream(env, env.table("payments.payments"), lower_bound=lower)
    stream.state = {"cursor": watermark.isoformat()}
    assert stream.window(upper) == Window(lower, upper, True)


@settings(deadline=None)
@given(read_at=moments, horizon=st.none() | moments)
def test_snapshot_upper_never_passes_an_open_transaction(read_at: datetime, horizon: datetime | None) -> None:
    upper = Snapshot("snap", read_at, horizon).upper
    assert upper == (read_at if horizon is None else min(read_at, horizon))


@pytest.mark.parametrize("cursor_type", ["timestamp", "timestamptz"])
def test_a_key_range_chunk_reads_its_half_open_range(env: Environment, cursor_type: str) -> None:
    table = env.table("payments.payments")
    rows = [(key, BASE) for key in range(10)]
    query = select_sql(table, _live(table, cursor_type), Window(None, BASE), (3, 7)).sql
    assert _selected(table, cursor_type, rows, query) == {3, 4, 5, 6}


@settings(max_examples=40, deadline=None)
@given(scale=st.integers(0, 6), data=st.data())
def test_a_numeric_read_as_a_scaled_integer_decodes_to_the_exact_decimal(scale: int, data: st.DataObject) -> None:
    """NUMERIC(18, s) travels as value * 10^s in an int8; decoding must give back the very decimal, sign and all."""
    bound = Decimal(10) ** (18 - scale) - Decimal(10) ** -scale  # the largest NUMERIC(18, s) magnitude
    values = data.draw(
        st.lists(
            st.none() | st.decimals(-bound, bound, places=scale, allow_nan=False, allow_infinity=False), max_size=20
        )
    )
    live = LiveColumn("numeric", 18, scale)
    con = duckdb.connect()
    # DECIMAL(38, s): DuckDB's decimal product overflows at 18 digits, PostgreSQL's NUMERIC product does not
    con.execute(f"CREATE TABLE t (amount DECIMAL(38, {scale}))")
    for v in values:
        con.execute("INSERT INTO t VALUES (?)", [v])
    arrow = con.execute(f"SELECT {select_expression('amount', live)} FROM t").to_arrow_table()
    assert arrow.schema.field("amount").type == pa.int64()  # what travels is an integer, not text
    query = ChunkQuery("", {"amount": scaled_numeric(live)})  # type: ignore[dict-item]
    decoded = [v for b in arrow.to_batches() for v in query.decode(b).column("amount").to_pylist()]
    assert decoded == values


def test_wide_or_unconstrained_numerics_are_read_as_they_are() -> None:
    assert scaled_numeric(LiveColumn("numeric", 19, 2)) is None  # 19 digits may not fit an int8 once scaled
    assert scaled_numeric(LiveColumn("numeric")) is None  # unconstrained: any scale
    assert scaled_numeric(LiveColumn("bigint", 64, 0)) is None
    assert select_expression("amount", LiveColumn("numeric", 38, 9)) == '"amount"'
    assert select_expression("amount", LiveColumn("numeric", 12, 3)) == '("amount" * 1000)::int8 AS "amount"'
    # scale 0: multiplied by 1 (an 18-digit integer times 10 would overflow int8)
    assert select_expression("n", LiveColumn("numeric", 18, 0)) == '("n" * 1)::int8 AS "n"'


def test_the_chunk_query_scales_short_numerics_and_casts_what_adbc_reads_opaquely(env: Environment) -> None:
    table = env.table("payments.payments")
    live = _live(table, "timestamp") | {"amount": LiveColumn("numeric", 18, 2), "currency": LiveColumn("uuid")}
    query = select_sql(table, live, Window(None, BASE), None)
    assert query.scaled == {"amount": 2}  # only the short NUMERIC: decode() turns exactly these back into decimals
    selected = query.sql.removeprefix("SELECT ").split(" FROM ")[0].split(", ")
    assert '("amount" * 100)::int8 AS "amount"' in selected and '"currency"::text AS "currency"' in selected
    for pg_type in ("json", "jsonb", "uuid"):  # ADBC hands these over as opaque extension types
        assert select_expression("x", LiveColumn(pg_type)) == '"x"::text AS "x"'
    assert select_expression("x", LiveColumn("text")) == '"x"'
