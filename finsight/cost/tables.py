"""Load the editable price table (prices.yaml) and workload assumptions (volumes.yaml) into typed objects.

Typos fail loudly (unknown keys are errors) and every price must cite its public source.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finsight.config import ConfigError

HERE = Path(__file__).resolve().parent
PRICES_FILE = HERE / "prices.yaml"
VOLUMES_FILE = HERE / "volumes.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    unit: str
    value: float | dict[str, float]
    source: str = Field(pattern=r"^https://")
    assumed: str = Field(min_length=1)

    @property
    def scalar(self) -> float:
        if isinstance(self.value, dict):
            raise TypeError(f"price is a table ({self.unit}); index it by key")
        return self.value


class PriceTable(_Strict):
    """`section.name` -> Price, e.g. `snowflake.credit_usd`."""

    prices: dict[str, Price]

    def __getitem__(self, key: str) -> Price:
        try:
            return self.prices[key]
        except KeyError:
            raise KeyError(
                f"{PRICES_FILE.name} has no price {key!r}; known: {', '.join(sorted(self.prices))}"
            ) from None

    def usd(self, key: str) -> float:
        return self[key].scalar


PerEnv = dict[str, float]


class Calendar(_Strict):
    days_per_month: int = Field(gt=0)
    always_on_hours_per_month: float = Field(gt=0)


class Workload(_Strict):
    raw_gb_per_day: PerEnv
    rows_per_day: PerEnv
    api_gb_per_day: PerEnv
    backfill_fraction_of_daily: float = Field(ge=0)


class StorageAssumptions(_Strict):
    parquet_ratio: float = Field(gt=0, le=1)
    snowflake_vs_parquet: float = Field(gt=0)
    curated_growth_fraction: float = Field(ge=0, le=1)
    curated_churn_days: int = Field(ge=0)
    marts_fraction_of_curated: float = Field(ge=0)
    multipart_part_mb: float = Field(gt=0)
    gets_per_file: float = Field(ge=0)
    iceberg_vs_snowflake: float = Field(gt=0)
    raw_noncurrent_days: int = Field(ge=0)
    archive_files_per_tb: float = Field(ge=0)


class Runtime(_Strict):
    log_gb_per_connector_run: float = Field(ge=0)
    log_retention_days: int = Field(ge=0)
    log_storage_ratio: float = Field(ge=0, le=1)
    fixed_alarms: int = Field(ge=0)
    alarms_per_source: int = Field(ge=0)
    secret_calls_per_run: int = Field(ge=0)
    kms_requests_per_file: float = Field(ge=0)
    extra_kms_keys: int = Field(ge=0)
    ecr_image_gb: float = Field(ge=0)
    ecr_images_kept: int = Field(ge=0)
    sns_publishes: int = Field(ge=0)
    endpoint_other_gb: PerEnv
    flow_log_gb_per_month: PerEnv
    task_overhead_minutes: float = Field(ge=0)


class Archive(_Strict):
    move_minutes_per_month: PerEnv
    read_back_months: PerEnv


class MergeCalibration(_Strict):
    bench_row_bytes: float = Field(gt=0)
    xsmall_vs_bench_machine: float = Field(gt=0)


class ResourceMonitor(_Strict):
    margin: float = Field(ge=0)


class Volumes(_Strict):
    calendar: Calendar
    workload: Workload
    storage: StorageAssumptions
    runtime: Runtime
    archive: Archive
    merge: MergeCalibration
    resource_monitor: ResourceMonitor


def per_env(values: PerEnv, env_name: str, what: str) -> float:
    try:
        return values[env_name]
    except KeyError:
        raise ConfigError(f"{VOLUMES_FILE}: '{what}' has no value for environment {env_name!r}") from None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def _errors(path: Path, exc: ValidationError) -> ConfigError:
    return ConfigError("\n".join(f"{path}: field '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors()))


def load_prices(path: Path = PRICES_FILE) -> PriceTable:
    flat = {f"{section}.{name}": entry for section, items in _read(path).items() for name, entry in items.items()}
    try:
        return PriceTable(prices=flat)
    except ValidationError as exc:
        raise _errors(path, exc) from None


def load_volumes(path: Path = VOLUMES_FILE) -> Volumes:
    try:
        return Volumes.model_validate(_read(path))
    except ValidationError as exc:
        raise _errors(path, exc) from None


@cache
def default_prices() -> PriceTable:
    return load_prices()


@cache
def default_volumes() -> Volumes:
    return load_volumes()
