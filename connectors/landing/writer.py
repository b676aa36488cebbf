"""Write one extraction batch of one table: Parquet parts streamed to S3, then the manifest (last).

Layout below s3://<bucket>/<raw_prefix>/ (see finsight.catalog):
  <source>/<table>/dt=YYYY-MM-DD/hr=HH/<batch_id>-<chunk><part>.parquet   data (PAN columns already tokenized)
  <source>/_pks/<table>/dt=.../<batch_id>-0000.parquet                    primary-key snapshot (delete detection)
  <source>/_manifests/dt=.../<batch_id>.parquet                           manifest, written last = batch complete

Data arrives as Arrow record batches named like the source columns; nothing here touches a Python object per row.
Each part is one Parquet file streamed by multipart upload and closed at `max_file_mb`, so memory stays bounded.
Parallel chunks of one batch each write through their own `PartWriter`; row numbers never collide across chunks.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.landing.arrow_schema import MANIFEST_SCHEMA, landed_schema, pk_schema, schema_hash
from connectors.landing.s3_sink import S3MultipartSink
from connectors.pci import PanTokenizer
from finsight import catalog
from finsight.aws import client, data_key_arn
from finsight.config import Environment, PciClass, Table

CHUNK_ROW_SPAN = 10**12  # _ROW_NUMBER = chunk * span + position: unique across the chunks of a batch


class LandingError(RuntimeError):
    """A batch could not be shaped into its landed schema; the message names table, column and batch."""


@dataclass
class BatchResult:
    table: str
    batch_id: str
    rows: int = 0
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    pk_rows: int | None = None
    tombstones: int = 0
    cursor_min: str | None = None
    cursor_max: str | None = None
    manifest_key: str | None = None
    schema_changes: list[str] = field(default_factory=list)


def _storage(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Extension columns (ADBC hands NUMERIC over as an opaque string extension) as their storage type."""
    if isinstance(array.type, pa.ExtensionType):
        if isinstance(array, pa.ChunkedArray):
            return pa.chunked_array([c.storage for c in array.chunks], array.type.storage_type)
        return array.storage
    return array


class PartWriter:
    """The Parquet parts of one chunk of a batch (one thread)."""

    def __init__(self, batch: LandingWriter, chunk: int) -> None:
        self.batch, self.chunk = batch, chunk
        self._sink: S3MultipartSink | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._parts = 0
        self._rows = 0  # rows of this chunk so far (row numbers)
        self._cursor_min: object = None
        self._cursor_max: object = None

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        if data.num_rows == 0:
            return
        shaped = self.batch.shape(data, self.chunk * CHUNK_ROW_SPAN + self._rows + 1, catalog.OP_UPSERT)
        self._rows += data.num_rows
        cursor = shaped.column(self.batch.table.cursor.upper())
        bounds = pc.min_max(cursor)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is not None:
            self._cursor_min = low if self._cursor_min is None else min(low, self._cursor_min)  # type: ignore[type-var]
            self._cursor_max = high if self._cursor_max is None else max(high, self._cursor_max)  # type: ignore[type-var]
        self._write_shaped(shaped)

    def _write_shaped(self, shaped: pa.Table) -> None:
        if self._parquet is None:
            relative = (
                f"{catalog.table_folder(self.batch.table)}{self.batch.partition}/"
                f"{self.batch.batch_id}-{self.chunk:02d}{self._parts:04d}.parquet"
            )
            self._sink = self.batch.open_sink(relative)
            self._parquet = pq.ParquetWriter(
                self._sink,
                shaped.schema,
                compression="zstd",
                use_dictionary=self.batch.dictionary_columns,
                write_statistics=self.batch.statistics_columns,
            )
        self._parquet.write_table(shaped)
        assert self._sink is not None
        if self._sink.bytes_written >= self.batch.max_file_bytes:
            self._close_part()

    def _close_part(self) -> None:
        if self._parquet is None or self._sink is None:
            return
        self._parquet.close()
        self._sink.close()
        self.batch.record_part(self._sink.key, self._sink.bytes_written)
        self._parts += 1
        self._parquet = self._sink = None

    def close(self) -> None:
        self._close_part()
        self.batch.record_rows(self._rows, self._cursor_min, self._cursor_max)

    def abort(self) -> None:
        if self._sink is not None:
            self._sink.abort()
        self._parquet = self._sink = None


class LandingWriter:
    """One batch of one table. `write()` / `write_tombstones()` / `finish()`, or `part_writer(chunk)` per thread."""

    def __init__(
        self,
        env: Environment,
        table: Table,
        batch_id: str,
        read_at: datetime,
        tokenizer: PanTokenizer,
        mode: str,
    ) -> None:
        self.env = env
        self.table = table
        self.batch_id = batch_id
        self.read_at = read_at  # the source snapshot time: lands as _EXTRACTED_AT, decides which version wins
        self.tokenizer = tokenizer
        self.mode = mode
        self.schema = landed_schema(table)
        self.max_file_bytes = env.connectors.max_file_mb * 1024 * 1024
        self.partition = f"dt={read_at:%Y-%m-%d}/hr={read_at:%H}"
        self.result = BatchResult(table=table.qualified, batch_id=batch_id)
        self._s3 = client(env, "s3")
        self._kms_key = data_key_arn(env)
        self._lock = threading.Lock()
        self._default: PartWriter | None = None
        self._tombstone_part: PartWriter | None = None
        self._pan_columns = [n for n, c in table.columns.items() if c.pci is PciClass.PAN]
        # dictionary pages pay off on repetitive text (status, currency, batch id), not on ids, times or tokens
        self.dictionary_columns = [
            f.name for f in self.schema if pa.types.is_string(f.type) and not f.name.endswith("_TOKEN")
        ]
        # min/max of random tokens prune nothing, and comparing 67-byte strings is a third of a token column's cost
        self.statistics_columns = [f.name for f in self.schema if not f.name.endswith("_TOKEN")]

    # -- S3 -------------------------------------------------------------------------------------
    def open_sink(self, relative: str) -> S3MultipartSink:
        return S3MultipartSink(self._s3, self.env.aws.s3.bucket, catalog.s3_key(self.env, relative), self._kms_key)

    def _put(self, relative: str, table: pa.Table) -> str:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        key = catalog.s3_key(self.env, relative)
        self._s3.put_object(
            Bucket=self.env.aws.s3.bucket,
            Key=key,
            Body=buf.getvalue(),
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=self._kms_key,
        )
        return key

    def record_part(self, key: str, size: int) -> None:
        with self._lock:
            self.result.files.append(key)
            self.result.bytes += size

    def record_rows(self, rows: int, low: object, high: object) -> None:
        with self._lock:
            r = self.result
            r.rows += rows
            if low is not None:
                lo, hi = _text(low), _text(high)
                r.cursor_min = lo if r.cursor_min is None else min(lo, r.cursor_min)
                r.cursor_max = hi if r.cursor_max is None else max(hi, r.cursor_max)

    # -- shaping --------------------------------------------------------------------------------
    def shape(
        self, data: pa.RecordBatch | pa.Table, first_row: int, op: str, schema: pa.Schema | None = None
    ) -> pa.Table:
        """Source-named columns -> the landed schema: PAN tokenized, types conformed, meta columns added."""
        schema = schema or self.schema
        by_name = {name.lower(): data.column(i) for i, name in enumerate(data.schema.names)}
        for col in self._pan_columns:
            if col in by_name:
                by_name[f"{col}_token"], by_name[f"{col}_last4"] = self.tokenizer.tokenize(by_name.pop(col))
        count = data.num_rows
        meta = {
            catalog.BATCH_ID.upper(): pa.repeat(pa.scalar(self.batch_id, pa.string()), count),
            catalog.EXTRACTED_AT.upper(): pa.repeat(pa.scalar(self.read_at, pa.timestamp("us")), count),
            catalog.ROW_NUMBER.upper(): pa.array(np.arange(first_row, first_row + count, dtype=np.int64)),
            catalog.OP.upper(): pa.repeat(pa.scalar(op, pa.string()), count),
        }
        columns = []
        for f in schema:
            if f.name in meta:
                columns.append(meta[f.name])
                continue
            source = by_name.get(f.name.lower())
            if source is None:
                columns.append(pa.nulls(count, f.type))  # a column gone at the source lands as NULL
                continue
            try:
                columns.append(pc.cast(_storage(source), f.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise LandingError(
                    f"{self.table.qualified}: column {f.name.lower()!r} does not fit {f.type} in batch "
                    f"{self.batch_id}: {str(exc).splitlines()[0]}"
                ) from None
        return pa.Table.from_arrays(columns, schema=schema)

    # -- data -----------------------------------------------------------------------------------
    def part_writer(self, chunk: int) -> PartWriter:
        return PartWriter(self, chunk)

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        if self._default is None:
            self._default = self.part_writer(0)
        self._default.write(data)

    def write_tombstones(self, keys: pa.Table) -> None:
        """Keys deleted at the source: rows with only the primary key set and _OP = 'D' (MERGE deletes them)."""
        if keys.num_rows == 0:
            return
        # one tombstone chunk per batch: a second call gets the next part name and the next row numbers
        writer = self._tombstone_part = self._tombstone_part or self.part_writer(99)
        shaped = self.shape(keys, 99 * CHUNK_ROW_SPAN + writer._rows + 1, catalog.OP_DELETE)
        writer._rows += keys.num_rows
        writer._write_shaped(shaped)
        writer._close_part()
        with self._lock:
            self.result.rows += keys.num_rows
            self.result.tombstones += keys.num_rows

    def write_pk_snapshot(self, keys: pa.Table) -> None:
        schema = pk_schema(self.table)
        shaped = self.shape(keys, 1, catalog.OP_UPSERT, schema)
        folder = f"{catalog.pk_folder(self.table)}{self.partition}"
        self._put(f"{folder}/{self.batch_id}-0000.parquet", shaped)
        self.result.pk_rows = keys.num_rows

    def abort(self) -> None:
        if self._default is not None:
            self._default.abort()

    def finish(self) -> BatchResult:
        """Close the open part and write the manifest last (only when something landed)."""
        if self._default is not None:
            self._default.close()
        if self.result.rows or self.result.pk_rows is not None:
            self.write_manifest()
        return self.result

    def write_manifest(self) -> None:
        r = self.result
        manifest = pa.table(
            {
                "BATCH_ID": [self.batch_id],
                "SOURCE_TABLE": [self.table.qualified],
                "RAW_TABLE": [self.table.raw_name],
                "MODE": [self.mode],
                "ROW_COUNT": [r.rows],
                "FILE_COUNT": [len(r.files)],
                "PK_SNAPSHOT_ROWS": [r.pk_rows],
                "CURSOR_MIN": [r.cursor_min],
                "CURSOR_MAX": [r.cursor_max],
                "SCHEMA_HASH": [schema_hash(self.schema)],
                "SCHEMA_JSON": [json.dumps({f.name: str(f.type) for f in self.schema})],
                "SCHEMA_CHANGES": [json.dumps(r.schema_changes) if r.schema_changes else None],
                "EXTRACTED_AT": [self.read_at],
            },
            schema=MANIFEST_SCHEMA,
        )
        relative = f"{catalog.manifest_folder(self.table.source)}{self.partition}/{self.batch_id}.parquet"
        r.manifest_key = self._put(relative, manifest)


def _text(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
