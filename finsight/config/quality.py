"""Data-quality checks, declared in the environment config (`quality:`), with defaults for every catalog table.

Every table of `Environment.warehouse_tables()` gets every check from `quality.defaults`; `quality.tables.<source>.
<table>` overrides any key for one table (deep-merged), so a threshold or a severity is tuned without code. The
checks themselves run as Snowpark procedures inside the Task DAG (snowpark/quality/).

Severities: `warn` is recorded and reported; `error` fails the table's check task, so the marts reading the table
are not published; `quarantine` holds the offending batch out of CURATED until an operator releases it (and fails
the check task while it is held: finance never publishes numbers missing a batch).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from finsight.config.merge import deep_merge


class Strict(BaseModel):
    """= finsight.config.models.Strict (defined again: models imports this module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Severity(StrEnum):
    WARN = "warn"
    ERROR = "error"
    QUARANTINE = "quarantine"


class FreshnessCheck(Strict):
    enabled: bool = True
    read_sla_minutes: float = Field(default=90, gt=0, description="newest successful read of the table's source")
    cursor_sla_minutes: float | None = Field(
        default=None, gt=0, description="newest cursor value in CURATED; only for tables that never go quiet"
    )
    severity: Severity = Severity.ERROR


class RowCountCheck(Strict):
    enabled: bool = True
    seasonality: Literal["hour_of_week", "none"] = Field(
        default="hour_of_week", description="baseline: runs in the same hour of the week, or the trailing runs"
    )
    lookback: int = Field(default=8, ge=1, description="weeks (hour_of_week) or runs (none) of baseline")
    min_history: int = Field(default=4, ge=1, description="fewer baseline samples: no verdict (new tables page nobody)")
    mad_threshold: float = Field(default=6.0, gt=0, description="|volume - median| > threshold * 1.4826 * MAD")
    min_deviation_rows: int = Field(default=50, ge=0, description="smaller absolute deviations are never anomalies")
    # with a few samples the MAD can be tiny (two similar hours): a relative floor keeps ordinary swings quiet
    min_deviation_ratio: float = Field(default=0.5, ge=0, description="deviations below this share of the median pass")
    never_quiet: bool = Field(default=False, description="a run without a single row for this table is an anomaly")
    severity: Severity = Severity.WARN


class NullSpikeCheck(Strict):
    enabled: bool = True
    max_increase: float = Field(default=0.3, gt=0, le=1, description="null rate now minus baseline rate")
    min_rows: int = Field(default=20, ge=1, description="fewer rows in the run: no verdict")
    severity: Severity = Severity.WARN
    column_severity: dict[str, Severity] = Field(default_factory=dict, description="per column, e.g. amount: error")


class ReferentialCheck(Strict):
    enabled: bool = True
    grace_minutes: float = Field(default=60, ge=0, description="children read this recently may wait for parents")
    severity: Severity = Severity.ERROR


class UniqueCheck(Strict):
    enabled: bool = True
    severity: Severity = Severity.ERROR


class RawDuplicatesCheck(Strict):
    """A primary key twice in one landed batch (under two row numbers): which version wins would be arbitrary."""

    enabled: bool = True
    severity: Severity = Severity.QUARANTINE


class AcceptedValuesCheck(Strict):
    enabled: bool = True
    column_pattern: str = Field(default=r"^(status|.*_status)$", description="which columns are status columns")
    values: dict[str, list[str]] = Field(
        default_factory=dict, description="column -> accepted values; undeclared columns accept what CURATED holds"
    )
    severity: Severity = Severity.WARN


class SchemaDriftCheck(Strict):
    enabled: bool = True
    severity: Severity = Severity.WARN


class TableQuality(Strict):
    freshness: FreshnessCheck = FreshnessCheck()
    row_count: RowCountCheck = RowCountCheck()
    null_spike: NullSpikeCheck = NullSpikeCheck()
    referential: ReferentialCheck = ReferentialCheck()
    unique: UniqueCheck = UniqueCheck()
    raw_duplicates: RawDuplicatesCheck = RawDuplicatesCheck()
    accepted_values: AcceptedValuesCheck = AcceptedValuesCheck()
    schema_drift: SchemaDriftCheck = SchemaDriftCheck()


class Quality(Strict):
    defaults: dict[str, Any] = Field(default_factory=dict, description="TableQuality keys applied to every table")
    tables: dict[str, dict[str, Any]] = Field(default_factory=dict, description="<source>.<table> -> overrides")

    def for_table(self, qualified: str) -> TableQuality:
        merged = deep_merge(self.defaults, self.tables.get(qualified, {}))
        try:
            return TableQuality.model_validate(merged)
        except ValidationError as exc:
            where = f"quality.tables.{qualified}" if qualified in self.tables else "quality.defaults"
            raise ValueError(f"{where}: {exc}") from None

    def check_tables(self, known: dict[str, set[str]]) -> None:
        """Overrides name catalog tables and their columns (`known`: table -> landed column names)."""
        try:
            TableQuality.model_validate(self.defaults)
        except ValidationError as exc:
            raise ValueError(f"quality.defaults: {exc}") from None
        for qualified in self.tables:
            if qualified not in known:
                raise ValueError(f"quality.tables.{qualified}: not a catalog table; known: {', '.join(sorted(known))}")
            tq = self.for_table(qualified)
            named = [*tq.null_spike.column_severity, *tq.accepted_values.values]
            missing = [c for c in named if c not in known[qualified]]
            if missing:
                raise ValueError(f"quality.tables.{qualified}: columns {missing} are not among the table's columns")
