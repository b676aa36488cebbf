"""The marts catalog: one folder per mart under snowpark/marts/<mart>/ (query.sql + metadata.yaml).

In the spirit of mozilla/bigquery-etl: the metadata file (owner, grain, keys, upstream tables, freshness SLA,
columns, checks) is the one definition the MARTS table DDL, the DAG's transform tasks, the docs and the validation
checks are generated from. A new mart is one new folder.

query.sql is Jinja only for optional upstreams (`{% if present.<source>__<table> %}`): an upstream another team is
still shipping (the FX API, the acquirer report) switches on by itself once its CURATED table exists.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import jinja2
import yaml
from pydantic import Field, ValidationError

from finsight import catalog, quality
from finsight.config import ConfigError, Environment, repo_root
from finsight.config.models import IDENT, Strict


class Upstream(Strict):
    """A CURATED table the mart reads, and which of its columns decide the mart's business date."""

    table: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$", description="<source>.<table>")
    date_columns: list[str] = Field(default_factory=list, description="a change of this date rebuilds that date")
    optional: bool = Field(default=False, description="switched on when its CURATED table exists")

    @property
    def raw_name(self) -> str:
        source, _, name = self.table.partition(".")
        return f"{source}__{name}".upper()


class MartColumn(Strict):
    name: str = Field(pattern=IDENT)
    type: str
    description: str = ""


class Check(Strict):
    """A check generated into the VALIDATE task; `fail` fails the run, `warn` is recorded and alerted only."""

    name: str = Field(pattern=IDENT)
    kind: Literal["unique_keys", "not_null_keys", "freshness", "zero_rows"]
    severity: Literal["fail", "warn"] = "fail"
    sql: str | None = Field(default=None, description="zero_rows: a query whose rows are violations")


class MartMetadata(Strict):
    friendly_name: str
    description: str
    owner: str
    grain: str = Field(description="one row per ... (human words)")
    keys: list[str] = Field(min_length=1)
    partition_column: str = Field(description="the business date column the mart is rebuilt by")
    partition_grain: Literal["day", "month"] = "day"
    neighbour_days: int = Field(default=0, ge=0, description="a change on day d also rebuilds d-n .. d+n")
    freshness_sla_minutes: int = Field(gt=0)
    upstreams: list[Upstream] = Field(min_length=1)
    columns: list[MartColumn] = Field(min_length=1)
    checks: list[Check] = Field(default_factory=list)

    # filled in by the loader
    name: str = ""
    folder: str = ""

    @property
    def table_name(self) -> str:
        return self.name.upper()

    def column_names(self) -> list[str]:
        return [c.name.upper() for c in self.columns]


def marts_dir() -> Path:
    return repo_root() / "snowpark" / "marts"


@cache
def _load(folder: Path) -> tuple[MartMetadata, ...]:
    out = []
    for meta_path in sorted(folder.glob("*/metadata.yaml")):
        name = meta_path.parent.name
        try:
            raw = yaml.safe_load(meta_path.read_text()) or {}
            mart = MartMetadata.model_validate(raw)
        except (yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(f"{meta_path}: {exc}") from None
        if not (meta_path.parent / "query.sql").is_file():
            raise ConfigError(f"{meta_path.parent}: query.sql is missing")
        missing = [k for k in [*mart.keys, mart.partition_column] if k.upper() not in mart.column_names()]
        if missing:
            raise ConfigError(f"{meta_path}: keys/partition_column {missing} are not among `columns`")
        object.__setattr__(mart, "name", name)
        object.__setattr__(mart, "folder", str(meta_path.parent))
        out.append(mart)
    return tuple(out)


def marts() -> tuple[MartMetadata, ...]:
    return _load(marts_dir())


def check_upstreams(env: Environment) -> None:
    """Every required upstream names a catalog table (optional ones may belong to a source still being built)."""
    known = {t.qualified for t in env.warehouse_tables()}
    for mart in marts():
        for up in mart.upstreams:
            if not up.optional and up.table not in known:
                where = f"snowpark/marts/{mart.name}/metadata.yaml"
                raise ConfigError(f"{where}: upstream {up.table!r} is not in the catalog")


def render_query(mart: MartMetadata, env: Environment, present: frozenset[str] = frozenset()) -> str:
    """query.sql with schema names from the config and `present.<raw name lower>` for optional upstreams."""
    # SQL, not HTML: nothing to escape (autoescape would mangle quotes)
    jinja = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)  # noqa: S701
    template = jinja.from_string((Path(mart.folder) / "query.sql").read_text())
    flags = {up.raw_name.lower(): up.raw_name in present for up in mart.upstreams if up.optional}
    declared = {up.table: up for up in mart.upstreams}
    in_catalog = {t.qualified: t for t in env.warehouse_tables()}

    def curated(table: str) -> str:
        # a query may only read what its metadata declares: the DAG and the rebuild-by-date logic rely on it
        if table not in declared:
            raise ConfigError(f"{mart.folder}/query.sql reads {table!r}, which metadata.yaml does not list as upstream")
        # with the Iceberg archive, CURATED holds only hot_months: a refund of an archived payment, or an account not
        # changed for months, is found through HISTORY (hot + archive), so old and new dates build alike
        if table in in_catalog:
            return catalog.curated_reader(env, in_catalog[table])
        return f"{env.snowflake.schemas['curated']}.{declared[table].raw_name}"  # an optional source not built yet

    text = template.render(present=flags, curated=curated, meta=mart, schemas=env.snowflake.schemas)
    return text.strip().rstrip(";")


def variants(mart: MartMetadata, env: Environment) -> dict[str, str]:
    """The query for every combination of optional upstreams present: key = sorted raw names joined by ','."""
    optional = [up.raw_name for up in mart.upstreams if up.optional]
    combos: list[frozenset[str]] = [frozenset()]
    for name in optional:
        combos += [c | {name} for c in combos]
    return {",".join(sorted(c)): render_query(mart, env, c) for c in combos}


def mart_spec(mart: MartMetadata, env: Environment) -> dict:
    """What the BUILD_MART procedure needs (stored in OPS.PIPELINE_CATALOG by deploy / the local runner)."""
    return {
        "mart": mart.name,
        "table": f"{env.snowflake.schemas['marts']}.{mart.table_name}",
        "columns": mart.column_names(),
        "keys": [k.upper() for k in mart.keys],
        "partition_column": mart.partition_column.upper(),
        "partition_grain": mart.partition_grain,
        "neighbour_days": mart.neighbour_days,
        "upstreams": [
            {"raw": up.raw_name, "date_columns": [c.upper() for c in up.date_columns], "optional": up.optional}
            for up in mart.upstreams
        ],
        "curated_schema": env.snowflake.schemas["curated"],
        "variants": variants(mart, env),
        "checks": [c.model_dump() for c in mart.checks],
        "freshness_sla_minutes": mart.freshness_sla_minutes,
    }


def date_columns(env: Environment) -> dict[str, list[str]]:
    """RAW/CURATED table name -> the date columns any mart partitions by (MERGE records their changed dates)."""
    out: dict[str, set[str]] = {}
    for mart in marts():
        for up in mart.upstreams:
            out.setdefault(up.raw_name, set()).update(c.upper() for c in up.date_columns)
    return {k: sorted(v) for k, v in out.items()}


def merge_spec(env: Environment, table: object) -> dict:
    """MERGE_TABLE's argument: the catalog's table spec, the date columns marts partition by, and the merge-time
    quarantine gate's check (`raw_duplicates`), so the merge does not read the quality spec back every hour."""
    spec = catalog.table_spec(table)  # type: ignore[arg-type]
    spec["date_columns"] = date_columns(env).get(spec["raw"], [])
    spec["gate"] = quality.table_quality_spec(env, table)["checks"]["raw_duplicates"]  # type: ignore[arg-type]
    return spec


def pipeline_catalog(env: Environment) -> list[tuple[str, str, str]]:
    """(kind, name, spec JSON) rows of OPS.PIPELINE_CATALOG: what BACKFILL, BUILD_MART and retention read."""
    import json

    rows = [
        ("table", t.qualified, json.dumps(merge_spec(env, t), separators=(",", ":"))) for t in env.warehouse_tables()
    ]
    rows += [("mart", m.name, json.dumps(mart_spec(m, env), separators=(",", ":"))) for m in marts()]
    rows += [("quality", name, json.dumps(s, separators=(",", ":"))) for name, s in quality.specs(env).items()]
    return rows


def render_docs(env: Environment) -> str:
    """docs/marts.md, generated from the metadata (a test keeps the committed file equal to this)."""
    lines = [
        "# Marts",
        "",
        "Generated from `snowpark/marts/<mart>/metadata.yaml` by `finsight marts docs --write`: do not edit by hand.",
        "Each mart is rebuilt by its `MART_<NAME>` task for the business dates its upstream tables changed, then",
        "checked by `VALIDATE_<NAME>` (see docs/warehouse.md).",
        "",
        "| mart | grain | owner | freshness SLA | upstreams |",
        "|---|---|---|---|---|",
    ]
    for m in marts():
        ups = ", ".join(f"`{u.table}`" + (" (optional)" if u.optional else "") for u in m.upstreams)
        lines.append(f"| [{m.name}](#{m.name}) | {m.grain} | `{m.owner}` | {m.freshness_sla_minutes} min | {ups} |")
    for m in marts():
        lines += [
            "",
            f"## {m.name}",
            "",
            f"**{m.friendly_name}** - table `{env.snowflake.schemas['marts']}.{m.table_name}`, "
            f"task `MART_{m.table_name}`, owner `{m.owner}`.",
            "",
            m.description,
            "",
            f"- Grain: {m.grain}; keys: {', '.join(f'`{k}`' for k in m.keys)}.",
            f"- Rebuilt by `{m.partition_column}` ({m.partition_grain})"
            + (f", with {m.neighbour_days} neighbour days either side" if m.neighbour_days else "")
            + "; changes come from: "
            + "; ".join(
                f"`{u.table}`." + (", ".join(f"`{c}`" for c in u.date_columns) or "(no date: read only)")
                for u in m.upstreams
            )
            + ".",
            "- Checks: " + ", ".join(f"`{c.name}` ({c.kind}, {c.severity})" for c in m.checks) + ".",
            "",
            "| column | type | description |",
            "|---|---|---|",
        ]
        lines += [f"| `{c.name}` | {c.type} | {c.description} |" for c in m.columns]
    return "\n".join(lines) + "\n"
