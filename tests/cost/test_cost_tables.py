"""The price and volume tables: a broken file is refused with its path and the exact field, never half-loaded.

Each call reads the file given (no cache), so the messages below come from the loaders themselves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from finsight.config.loader import ConfigError
from finsight.cost.tables import PRICES_FILE, VOLUMES_FILE, load_prices, load_volumes


def test_the_shipped_tables_load_flat_and_typed() -> None:
    prices = load_prices(PRICES_FILE)
    assert prices.usd("snowflake.credit_usd") == 4.00  # `section.name` keys
    assert prices["s3.standard_gb_month"].value == 0.023
    volumes = load_volumes(VOLUMES_FILE)
    assert volumes.calendar.days_per_month == 30 and volumes.resource_monitor.margin == 0.20


def test_a_price_without_source_names_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("s3:\n  standard_gb_month: {unit: USD, value: 0.023, assumed: x}\n")
    with pytest.raises(ConfigError) as err:
        load_prices(bad)
    assert str(err.value) == f"{bad}: field 'prices.s3.standard_gb_month.source': Field required"


def test_volumes_with_a_wrong_type_name_every_field_one_per_line(tmp_path: Path) -> None:
    bad = tmp_path / "volumes.yaml"
    bad.write_text("calendar: {days_per_month: thirty}\n")
    with pytest.raises(ConfigError) as err:
        load_volumes(bad)
    lines = str(err.value).splitlines()
    assert lines[0] == (f"{bad}: field 'calendar.days_per_month': Input should be a valid integer, "
                        "unable to parse string as an integer")  # fmt: skip
    assert f"{bad}: field 'workload': Field required" in lines and len(lines) == 8  # + merge


@pytest.mark.parametrize("loader", [load_prices, load_volumes])
def test_a_list_or_a_missing_file_is_refused_with_its_path(tmp_path: Path, loader: object) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError) as err:
        loader(listed)  # type: ignore[operator]
    assert str(err.value) == f"{listed}: top level must be a mapping"
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as err:
        loader(missing)  # type: ignore[operator]
    assert str(err.value).startswith(f"{missing}: cannot read: [Errno 2] No such file")
