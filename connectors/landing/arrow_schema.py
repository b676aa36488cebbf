"""Arrow schema of a landed table, derived from the config (the same columns RAW is created with)."""

from __future__ import annotations

import pyarrow as pa

from finsight import catalog
from finsight.config import Table

_ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),  # naive UTC: RAW columns are TIMESTAMP_NTZ in UTC
    "date": pa.date32(),
    "json": pa.string(),
}


def arrow_type(logical: str) -> pa.DataType:
    if logical.startswith("decimal("):
        precision, scale = (int(x) for x in logical[len("decimal(") : -1].split(","))
        return pa.decimal128(precision, scale)
    return _ARROW_TYPES[logical]


def landed_schema(table: Table) -> pa.Schema:
    fields = [pa.field(name.upper(), arrow_type(col.type)) for name, col in table.landed_columns().items()]
    fields += [
        pa.field(catalog.BATCH_ID.upper(), pa.string()),
        pa.field(catalog.EXTRACTED_AT.upper(), pa.timestamp("us")),
        pa.field(catalog.ROW_NUMBER.upper(), pa.int64()),
        pa.field(catalog.OP.upper(), pa.string()),
    ]
    return pa.schema(fields)


def pk_schema(table: Table) -> pa.Schema:
    full = landed_schema(table)
    names = [c.upper() for c in table.primary_key] + [
        catalog.BATCH_ID.upper(),
        catalog.EXTRACTED_AT.upper(),
        catalog.ROW_NUMBER.upper(),
        catalog.OP.upper(),
    ]
    return pa.schema([full.field(n) for n in names])


# One row per batch, written last (its presence says the batch is whole); loaded into OPS.LANDED_BATCHES. Typed
# here, not per value: a column that is NULL in a batch (no key snapshot, no schema change) keeps its type.
MANIFEST_SCHEMA = pa.schema(
    [("BATCH_ID", pa.string()), ("SOURCE_TABLE", pa.string()), ("RAW_TABLE", pa.string()), ("MODE", pa.string()),
     ("ROW_COUNT", pa.int64()), ("FILE_COUNT", pa.int64()), ("PK_SNAPSHOT_ROWS", pa.int64()),
     ("CURSOR_MIN", pa.string()), ("CURSOR_MAX", pa.string()), ("SCHEMA_HASH", pa.string()),
     ("SCHEMA_JSON", pa.string()), ("SCHEMA_CHANGES", pa.string()), ("EXTRACTED_AT", pa.timestamp("us"))]
)  # fmt: skip


def schema_hash(schema: pa.Schema) -> str:
    """Short fingerprint recorded in the manifest: a schema change is visible per batch."""
    import hashlib

    text = ",".join(f"{f.name}:{f.type}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
