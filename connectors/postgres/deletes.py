"""Hard-delete detection, landed as tombstones (`_op = 'D'`) or, for small tables, as a full primary-key snapshot.

`range_hash` scales to billion-row tables: the source's keys are split into buckets (integer key ranges, or hash
buckets for other keys); each check computes (count, sum of key hashes) per bucket on the server, inside the batch's
snapshot, and fetches keys only for buckets whose fingerprint changed since the last check. Deleted keys = the
bucket's keys at the last check minus its keys now. With monotonic ids the hour's inserts touch only the top range,
so the keys moved per check follow the change, not the table size. Cadence: `connectors.delete_check_every_minutes`,
overridden per table by `delete_check_every_minutes`.

Each check's key files are written under the batch id and only become "the last check" when the watermark state is
saved after the manifest: a run that fails half-way leaves the previous check in force.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.landing.writer import LandingWriter
from connectors.postgres.bulk import quote_ident
from finsight import catalog
from finsight.aws import client, data_key_arn
from finsight.config import Environment, Table
from finsight.config.models import DeleteDetection

ReadArrow = Callable[[str], pa.Table]  # runs a query inside the batch's snapshot, returns Arrow

HASH_SEED = 7  # hashtextextended seed of the fingerprint (any constant: source-side only)


def _key_text(table: Table) -> str:
    return "concat_ws('|', " + ", ".join(f"{quote_ident(k)}::text" for k in table.primary_key) + ")"


def _integer_key(table: Table) -> bool:
    return len(table.primary_key) == 1 and table.columns[table.primary_key[0]].type in ("int", "bigint")


def _bucket_expr(table: Table, layout: dict[str, int]) -> str:
    if "step" in layout:
        pk = quote_ident(table.primary_key[0])
        return f"floor(({pk} - {int(layout['base'])})::numeric / {int(layout['step'])})::bigint"
    return f"abs(hashtextextended({_key_text(table)}, 0) % {int(layout['buckets'])})"


def _layout(conn: psycopg.Connection, env: Environment, table: Table) -> dict[str, int]:
    buckets = env.connectors.delete_check_ranges
    if not _integer_key(table):
        return {"buckets": buckets}
    pk = quote_ident(table.primary_key[0])
    low, high = conn.execute(f"SELECT min({pk}), max({pk}) FROM {quote_ident(table.name)}").fetchone()  # type: ignore[misc]
    if low is None:
        return {"buckets": buckets}
    return {"base": int(low), "step": max(1, -(-(int(high) - int(low) + 1) // buckets))}


def fingerprints(conn: psycopg.Connection, table: Table, layout: dict[str, int]) -> dict[str, list[str]]:
    """{bucket: [row count, sum of key hashes]} computed by the source (no key leaves the database)."""
    query = (
        f"SELECT b, count(*), sum(h) FROM (SELECT {_bucket_expr(table, layout)} AS b, "
        f"hashtextextended({_key_text(table)}, {HASH_SEED}) AS h FROM {quote_ident(table.name)}) s GROUP BY b"
    )
    return {str(b): [str(n), str(h)] for b, n, h in conn.execute(query).fetchall()}


def _fetch_keys(read_arrow: ReadArrow, table: Table, layout: dict[str, int], buckets: list[str]) -> pa.Table:
    """Current keys of the changed buckets, as Arrow, from the bulk reader (same snapshot)."""
    cols = ", ".join(quote_ident(k) for k in table.primary_key)
    wanted = ", ".join(str(int(b)) for b in buckets)
    return read_arrow(
        f"SELECT {_bucket_expr(table, layout)} AS _bucket, {cols} FROM {quote_ident(table.name)} "
        f"WHERE {_bucket_expr(table, layout)} IN ({wanted})"
    )


def _keys_key(table: Table, batch_id: str, bucket: str) -> str:
    return f"{catalog.STATE_PREFIX}/{table.source}/{table.name}/delete_check/{batch_id}/bucket={bucket}.parquet"


def _read_keys(env: Environment, key: str) -> pa.Table:
    body = client(env, "s3").get_object(Bucket=env.aws.s3.bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def _write_keys(env: Environment, key: str, keys: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(keys, buf, compression="zstd")
    client(env, "s3").put_object(
        Bucket=env.aws.s3.bucket,
        Key=key,
        Body=buf.getvalue(),
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=data_key_arn(env),
    )


def _range_hash(
    conn: psycopg.Connection,
    env: Environment,
    table: Table,
    writer: LandingWriter,
    prior: dict[str, Any] | None,
    read_arrow: ReadArrow,
) -> dict[str, Any]:
    layout = prior["layout"] if prior else _layout(conn, env, table)
    now = fingerprints(conn, table, layout)
    before: dict[str, list[str]] = prior["fingerprints"] if prior else {}
    files: dict[str, str] = dict(prior["files"]) if prior else {}
    changed = sorted(b for b in set(now) | set(before) if now.get(b) != before.get(b))
    current = _fetch_keys(read_arrow, table, layout, [b for b in changed if b in now]) if changed else pa.table({})
    pk = list(table.primary_key)
    gone: list[pa.Table] = []
    for bucket in changed:
        keys = (
            current.filter(pc.equal(current["_bucket"], int(bucket))).select(pk)
            if bucket in now and current.num_rows
            else None
        )
        if bucket in files:
            previous = _read_keys(env, files[bucket])
            if keys is None:
                gone.append(previous)
            else:
                gone.append(previous.join(keys.cast(previous.schema), keys=pk, join_type="left anti"))
        if keys is None:
            files.pop(bucket, None)
        else:
            files[bucket] = _keys_key(table, writer.batch_id, bucket)
            _write_keys(env, files[bucket], keys)
    if gone:
        tombstones = pa.concat_tables(gone)
        writer.write_tombstones(tombstones)
    return {"layout": layout, "fingerprints": now, "files": files, "changed_buckets": len(changed)}


def _pk_snapshot(table: Table, writer: LandingWriter, read_arrow: ReadArrow) -> None:
    cols = ", ".join(quote_ident(k) for k in table.primary_key)
    writer.write_pk_snapshot(read_arrow(f"SELECT {cols} FROM {quote_ident(table.name)}"))


def detect(
    conn: psycopg.Connection,
    env: Environment,
    table: Table,
    writer: LandingWriter,
    prior: dict[str, Any] | None,
    read_at: datetime,
    read_arrow: ReadArrow,
) -> dict[str, Any] | None:
    """Run the table's delete detection inside the batch's snapshot; returns the state to keep (None: none kept)."""
    if table.deletes is DeleteDetection.PK_SNAPSHOT:
        _pk_snapshot(table, writer, read_arrow)
        return None
    if table.deletes is not DeleteDetection.RANGE_HASH:
        return None
    every = table.delete_check_every_minutes
    cadence = timedelta(minutes=env.connectors.delete_check_every_minutes if every is None else every)
    if prior and read_at < datetime.fromisoformat(prior["checked_at"]) + cadence:
        return prior  # not due yet: the last check stays in force
    state = _range_hash(conn, env, table, writer, prior, read_arrow)
    state["checked_at"] = read_at.isoformat()
    return state
