"""Write one extraction batch of one table: Parquet parts, an optional primary-key snapshot, then the manifest.

Layout below s3://<bucket>/<raw_prefix>/ (see finsight.catalog):
  <source>/<table>/dt=YYYY-MM-DD/hr=HH/<batch_id>-<part>.parquet   data (PAN columns already tokenized)
  <source>/_pks/<table>/dt=.../<batch_id>-0000.parquet             primary-key snapshot (delete detection)
  <source>/_manifests/dt=.../<batch_id>.parquet                    manifest, written last = batch complete
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.landing.arrow_schema import landed_schema, pk_schema, schema_hash
from connectors.pci import PanTokenizer
from finsight import catalog
from finsight.aws import client, kms_key_id
from finsight.config import Environment, PciClass, Table


@dataclass
class BatchResult:
    table: str
    batch_id: str
    rows: int = 0
    files: list[str] = field(default_factory=list)
    pk_rows: int | None = None
    cursor_min: str | None = None
    cursor_max: str | None = None
    manifest_key: str | None = None


class LandingWriter:
    def __init__(
        self, env: Environment, table: Table, batch_id: str, extracted_at: datetime, tokenizer: PanTokenizer, mode: str
    ) -> None:
        self.env = env
        self.table = table
        self.batch_id = batch_id
        self.extracted_at = extracted_at
        self.tokenizer = tokenizer
        self.mode = mode
        self.schema = landed_schema(table)
        self._s3 = client(env, "s3")
        self._kms_key = kms_key_id(env)
        self._partition = f"dt={extracted_at:%Y-%m-%d}/hr={extracted_at:%H}"
        self.result = BatchResult(table=table.qualified, batch_id=batch_id)
        self._pan_columns = [n for n, c in table.columns.items() if c.pci is PciClass.PAN]

    # -- S3 -------------------------------------------------------------------------------------
    def _put(self, relative: str, data: bytes) -> str:
        key = catalog.s3_key(self.env, relative)
        self._s3.put_object(
            Bucket=self.env.aws.s3.bucket, Key=key, Body=data, ServerSideEncryption="aws:kms", SSEKMSKeyId=self._kms_key
        )
        return key

    @staticmethod
    def _parquet(table: pa.Table) -> bytes:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        return buf.getvalue()

    # -- data -----------------------------------------------------------------------------------
    def _protect(self, row: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for col in self._pan_columns:
            pan = out.pop(col)
            out[f"{col}_token"] = self.tokenizer.token(pan)
            out[f"{col}_last4"] = self.tokenizer.last4(pan)
        return out

    def write_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Stream rows into Parquet parts of `rows_per_file`; PAN columns are replaced before they are buffered."""
        names = [n.lower() for n in self.table.landed_columns()]
        per_file = self.env.connectors.rows_per_file
        buffer: dict[str, list[Any]] = {n: [] for n in names}
        cursor = self.table.cursor
        for row in rows:
            safe = self._protect(row)
            for n in names:
                buffer[n].append(safe[n])
            value = safe[cursor]
            if value is not None:
                text = value.isoformat() if hasattr(value, "isoformat") else str(value)
                if self.result.cursor_min is None or text < self.result.cursor_min:
                    self.result.cursor_min = text
                if self.result.cursor_max is None or text > self.result.cursor_max:
                    self.result.cursor_max = text
            if len(buffer[names[0]]) >= per_file:
                self._flush(buffer)
        self._flush(buffer)

    def _flush(self, buffer: dict[str, list[Any]]) -> None:
        count = len(next(iter(buffer.values())))
        if count == 0:
            return
        start = self.result.rows
        columns = [pa.array(buffer[f.name.lower()], type=f.type) for f in self.schema if f.name.lower() in buffer]
        columns += [
            pa.array([self.batch_id] * count, pa.string()),
            pa.array([self.extracted_at] * count, pa.timestamp("us")),
            pa.array(range(start + 1, start + count + 1), pa.int64()),
            pa.array([catalog.OP_UPSERT] * count, pa.string()),
        ]
        part = len(self.result.files)
        relative = f"{catalog.table_folder(self.table)}{self._partition}/{self.batch_id}-{part:04d}.parquet"
        self.result.files.append(self._put(relative, self._parquet(pa.Table.from_arrays(columns, schema=self.schema))))
        self.result.rows += count
        for values in buffer.values():
            values.clear()

    def write_pk_snapshot(self, keys: Iterable[tuple[Any, ...]]) -> None:
        schema = pk_schema(self.table)
        key_fields = list(schema)[: len(self.table.primary_key)]
        folder = f"{catalog.pk_folder(self.table)}{self._partition}"
        rows = list(keys)
        columns = [pa.array([r[i] for r in rows], type=f.type) for i, f in enumerate(key_fields)]
        columns += [
            pa.array([self.batch_id] * len(rows), pa.string()),
            pa.array([self.extracted_at] * len(rows), pa.timestamp("us")),
            pa.array(range(1, len(rows) + 1), pa.int64()),
            pa.array([catalog.OP_UPSERT] * len(rows), pa.string()),
        ]
        self._put(f"{folder}/{self.batch_id}-0000.parquet", self._parquet(pa.Table.from_arrays(columns, schema=schema)))
        self.result.pk_rows = len(rows)

    def write_manifest(self) -> None:
        r = self.result
        manifest = pa.table(
            {
                "BATCH_ID": [self.batch_id],
                "SOURCE_TABLE": [self.table.qualified],
                "RAW_TABLE": [self.table.raw_name],
                "MODE": [self.mode],
                "ROW_COUNT": pa.array([r.rows], pa.int64()),
                "FILE_COUNT": pa.array([len(r.files)], pa.int64()),
                "PK_SNAPSHOT_ROWS": pa.array([r.pk_rows], pa.int64()),
                "CURSOR_MIN": [r.cursor_min],
                "CURSOR_MAX": [r.cursor_max],
                "SCHEMA_HASH": [schema_hash(self.schema)],
                "EXTRACTED_AT": pa.array([self.extracted_at], pa.timestamp("us")),
            }
        )
        relative = f"{catalog.manifest_folder(self.table.source)}{self._partition}/{self.batch_id}.parquet"
        r.manifest_key = self._put(relative, self._parquet(manifest))
