"""Schema evolution at the source: compare the live table (information_schema) with the catalog on every run.

- added column     -> landed (RAW/CURATED gain it), recorded as drift; a new column holding card numbers is tokenized
- widened type     -> recorded as drift, but landed with the type RAW holds (the catalog's, or the one an added
                      column first landed with): Snowpipe never widens a column (docs/runbooks/source-schema-change.md).
                      A value that does not fit it exactly (integer digits, or fractional digits it would round)
                      fails the table in the writer (watermark kept, nothing landed or lost) until the catalog
                      declares the wider type and `finsight migrate` has widened RAW
- dropped/renamed  -> the table keeps loading (the missing column lands as NULL), recorded as drift (alert)
- incompatible     -> recorded; the batch fails with a message naming table and column if values do not cast
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg

from connectors.pci import luhn_valid
from finsight.config import Column, PciClass, Table

_LIVE_SQL = """
SELECT column_name, data_type, numeric_precision, numeric_scale, is_nullable = 'YES'
FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = %s
ORDER BY ordinal_position
"""
_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")
_STRINGS = ("text", "character varying", "character", "uuid")
MAX_PRECISION = 38  # Snowflake NUMBER
PAN_SAMPLE_ROWS = 1000


@dataclass(frozen=True)
class LiveColumn:
    pg_type: str
    precision: int | None = None
    scale: int | None = None
    nullable: bool = True

    @property
    def logical(self) -> str:
        t = self.pg_type
        if t in _STRINGS or t.startswith("character"):
            return "string"
        if t in ("smallint", "integer"):
            return "int"
        if t == "bigint":
            return "bigint"
        if t == "boolean":
            return "bool"
        if t.startswith("timestamp"):
            return "timestamp"
        if t == "date":
            return "date"
        if t in ("json", "jsonb"):
            return "json"
        if t == "numeric":
            if self.precision is None:  # unconstrained numeric: the widest NUMBER that keeps 9 decimals
                return f"decimal({MAX_PRECISION},9)"
            return f"decimal({self.precision},{self.scale or 0})"
        return "string"  # anything exotic lands as its text form rather than being dropped


def live_columns(conn: psycopg.Connection, table_name: str) -> dict[str, LiveColumn]:
    rows = conn.execute(_LIVE_SQL, (table_name,)).fetchall()
    return {r[0]: LiveColumn(r[1], r[2], r[3], r[4]) for r in rows}


@dataclass
class SchemaDrift:
    added: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    widened: dict[str, tuple[str, str]] = field(default_factory=dict)
    incompatible: dict[str, tuple[str, str]] = field(default_factory=dict)
    pan_like: list[str] = field(default_factory=list)

    def changes(self) -> list[str]:
        out = [f"added {n} {t}" for n, t in self.added.items()]
        out += [f"dropped {n} (lands as NULL)" for n in self.dropped]
        out += [f"widened {n} {a} -> {b} (lands as {a}, RAW's type)" for n, (a, b) in self.widened.items()]
        out += [f"incompatible {n} {a} -> {b}" for n, (a, b) in self.incompatible.items()]
        out += [f"PAN-like values in new column {n}: tokenized" for n in self.pan_like]
        return out


def widen(catalog_type: str, live_type: str) -> str | None:
    """The type that holds both, when the live type is a widening of the catalog's; None when it is not wider."""
    if catalog_type == live_type:
        return None
    if catalog_type == "int" and live_type == "bigint":
        return "bigint"
    a, b = _DECIMAL.match(catalog_type), _DECIMAL.match(live_type)
    if a and b:
        (p1, s1), (p2, s2) = (int(a[1]), int(a[2])), (int(b[1]), int(b[2]))
        if s2 <= s1 and p2 - s2 <= p1 - s1:
            return None  # narrower at the source: the catalog type still holds every value
        scale = max(s1, s2)
        return f"decimal({min(MAX_PRECISION, max(p1 - s1, p2 - s2) + scale)},{scale})"
    if catalog_type in ("int", "bigint") and b:
        return None if int(b[2]) == 0 and int(b[1]) <= 18 else live_type
    return None


def _pan_like(conn: psycopg.Connection, table: str, column: str) -> bool:
    """Sample the column's digit-shaped values (13-19 digits) and Luhn-check them."""
    ident = psycopg.sql.Identifier(column)
    query = psycopg.sql.SQL("SELECT DISTINCT {}::text FROM {} WHERE {}::text ~ '^[0-9 -]{{13,23}}$' LIMIT {}").format(
        ident, psycopg.sql.Identifier(table), ident, psycopg.sql.Literal(PAN_SAMPLE_ROWS)
    )
    return any(luhn_valid(re.sub(r"\D", "", v)) for (v,) in conn.execute(query).fetchall())


def evolve(
    conn: psycopg.Connection, table: Table, live: dict[str, LiveColumn], known: dict[str, dict[str, str]]
) -> tuple[Table, SchemaDrift]:
    """The table as it lands this run (catalog + live changes) and the drift against the catalog.

    `known` is the landed schema remembered in the watermark state: a column once found PAN-like stays tokenized.
    """
    drift = SchemaDrift()
    columns: dict[str, Column] = {}
    for name, col in table.columns.items():
        if name not in live:
            drift.dropped.append(name)
            columns[name] = col
            continue
        wider = widen(col.type, live[name].logical)
        if wider is not None:  # keeps RAW's type: the writer's exact cast holds the table back if a value needs more
            drift.widened[name] = (col.type, wider)
        elif col.pci is not PciClass.PAN and _kind(col.type) != _kind(live[name].logical):
            drift.incompatible[name] = (col.type, live[name].logical)
        columns[name] = col
    for name, lc in live.items():
        if name in table.columns or not re.match(r"^[a-z][a-z0-9_]*$", name):
            continue
        landed_before = known.get(name, {}).get("type")
        wider = widen(landed_before, lc.logical) if landed_before else None
        if wider is not None:  # added earlier, RAW gained it with the type it first landed with: keep that type
            drift.widened[name] = (landed_before, wider)
        else:
            drift.added[name] = lc.logical
        pci = PciClass(known.get(name, {}).get("pci", "none"))
        if pci is PciClass.NONE and lc.logical == "string" and _pan_like(conn, table.name, name):
            pci = PciClass.PAN
        if pci is PciClass.PAN:
            drift.pan_like.append(name)
        columns[name] = Column(type=landed_before if wider else lc.logical, pci=pci, nullable=True)
    if drift.changes():
        table = table.model_copy(update={"columns": columns})
    return table, drift


def remembered(table: Table) -> dict[str, dict[str, str]]:
    """What the watermark state keeps of the landed schema."""
    return {n: {"type": c.type, "pci": c.pci.value} for n, c in table.columns.items()}


def _kind(logical: str) -> str:
    if logical.startswith("decimal") or logical in ("int", "bigint"):
        return "number"
    return logical
