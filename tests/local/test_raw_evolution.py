"""The rules of a widened NUMBER, without a stack: what a load may do to RAW (add, never widen), which values a
wider file may load (Snowflake casts by value), what the deploy may ALTER (precision only), and what the connector
lands when a source widens a column (RAW's type).

Snowflake rules, which the local stack cannot check against an account:
- "Table schema evolution" (https://docs.snowflake.com/en/user-guide/data-load-schema-evolution): a load adds
  columns and drops NOT NULL; it never widens a type.
- "Numeric data types" (https://docs.snowflake.com/en/sql-reference/data-types-numeric): a value whose integer
  digits exceed precision - scale cannot be loaded into the column.
- "ALTER TABLE ... ALTER COLUMN" (https://docs.snowflake.com/en/sql-reference/sql/alter-table-column): a NUMBER's
  precision may grow; its scale cannot change.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.postgres.schema import LiveColumn, evolve
from finsight.config import load_environment
from finsight.local.raw_evolution import out_of_range
from snowpark.schema_evolution import ScaleChangeError, precision_widenings


@pytest.mark.parametrize(
    ("values", "column", "bad"),
    [
        ([Decimal("99999999.99"), None], "NUMBER(10, 2)", None),  # 8 integer digits fit
        ([Decimal("1.2345")], "NUMBER(10, 2)", None),  # extra scale is rounded by the cast, not refused
        ([Decimal("99999999.995")], "NUMBER(10, 2)", Decimal("99999999.995")),  # rounds up to 9 integer digits
        ([Decimal("-123456789.5")], "NUMBER(10, 2)", Decimal("-123456789.5")),
        ([2**40], "NUMBER(10, 0)", 2**40),
        ([Decimal("5")], "VARCHAR", None),  # not a NUMBER: nothing to check
    ],
)
def test_a_value_is_out_of_range_when_its_integer_digits_do_not_fit(values: list, column: str, bad: object) -> None:
    assert out_of_range(values, column) == bad


def test_the_deploy_widens_precision_only_and_refuses_a_grown_scale_naming_every_column() -> None:
    current = {"A": "NUMBER(10, 2)", "B": "NUMBER(18, 2)", "C": "NUMBER(18, 2)", "D": "VARCHAR"}
    assert precision_widenings("RAW.T", current, {"A": "NUMBER(14, 2)", "B": "NUMBER(12, 2)", "E": "NUMBER(9, 0)"}) == [
        ("A", "widened NUMBER(10, 2) -> NUMBER(14, 2)", "ALTER TABLE RAW.T ALTER COLUMN A SET DATA TYPE NUMBER(14, 2)")
    ]  # B already holds NUMBER(12, 2); E is not in the table (the migrations add it)
    # a smaller declared scale with more integer digits: the table's scale stays
    assert (
        precision_widenings("RAW.T", current, {"B": "NUMBER(20, 0)"})[0][1] == "widened NUMBER(18, 2) -> NUMBER(22, 2)"
    )
    with pytest.raises(ScaleChangeError, match=r"RAW\.T\.B is NUMBER\(18, 2\), declared NUMBER\(20, 4\); "
                       r"RAW\.T\.C is NUMBER\(18, 2\), declared NUMBER\(19, 3\).*rebuild"):  # fmt: skip
        precision_widenings("RAW.T", current, {"A": "NUMBER(14, 2)", "B": "NUMBER(20, 4)", "C": "NUMBER(19, 3)"})


def test_a_widened_source_column_lands_as_raws_type() -> None:
    env = load_environment("local")
    table = next(t for t in env.warehouse_tables() if any(c.type.startswith("decimal(18,") for c in t.columns.values()))
    name = next(n for n, c in table.columns.items() if c.type.startswith("decimal(18,"))
    declared = table.columns[name].type
    live = {n: _live(c.type) for n, c in table.columns.items()}  # every other column as the catalog has it
    live[name] = LiveColumn("numeric", 30, 6)
    landed, drift = evolve(None, table, live, {})  # type: ignore[arg-type]  # no added string column: no PAN probe
    assert landed.columns[name].type == declared  # RAW's type: Snowpipe will not widen it
    assert drift.widened[name] == (declared, "decimal(30,6)")
    # an added column keeps the type it first landed with (RAW gained that one)
    live["later"] = LiveColumn("numeric", 20, 4)
    landed, drift = evolve(None, table, live, {"later": {"type": "decimal(10,2)", "pci": "none"}})  # type: ignore[arg-type]
    assert landed.columns["later"].type == "decimal(10,2)" and drift.widened["later"] == (
        "decimal(10,2)",
        "decimal(20,4)",
    )
    assert "later" not in drift.added


def _live(logical: str) -> LiveColumn:
    if logical.startswith("decimal("):
        p, s = logical[len("decimal(") : -1].split(",")
        return LiveColumn("numeric", int(p), int(s))
    pg = {"string": "text", "int": "integer", "bigint": "bigint", "bool": "boolean", "timestamp": "timestamp",
          "date": "date", "json": "jsonb"}  # fmt: skip
    return LiveColumn(pg[logical])
