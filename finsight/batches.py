"""Where every batch is: landed (manifest in S3), loaded (all rows in RAW), merged (in CURATED), or waiting and why.

Reads S3 (manifests the pipes have not loaded yet) and the OPS tables; works on any environment the caller can
reach (locally: moto + fakesnow).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from finsight import catalog, warehouse
from finsight.aws import client
from finsight.config import Environment


@dataclass
class BatchStatus:
    batch_id: str
    table: str
    state: str  # landed | loaded | merged | waiting
    why: str = ""
    mode: str | None = None
    rows: int | None = None
    rows_in_raw: int | None = None
    extracted_at: Any = None
    merged_at: Any = None
    merge_run_id: str | None = None
    files: list[str] = field(default_factory=list)
    load_errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if v is not None and k.endswith("_at") else v) for k, v in asdict(self).items()}


def _s3_manifests(env: Environment) -> dict[str, str]:
    """batch id -> manifest key, for every manifest in the landing zone."""
    s3, out = client(env, "s3"), {}
    for source in env.postgres_sources:
        prefix = catalog.s3_key(env, catalog.manifest_folder(source))
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env.aws.s3.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"].rsplit("/", 1)[-1].removesuffix(".parquet")] = obj["Key"]
    return out


def statuses(env: Environment, limit: int | None = None, batch_id: str | None = None) -> list[BatchStatus]:
    ops = env.snowflake.schemas["ops"]
    where = "" if batch_id is None else f" WHERE m.BATCH_ID = '{batch_id.replace(chr(39), '')}'"
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT m.BATCH_ID, m.SOURCE_TABLE, m.RAW_TABLE, m.MODE, m.ROW_COUNT, m.PK_SNAPSHOT_ROWS, m.EXTRACTED_AT, "
            "mb.MERGED_AT, mb.RUN_ID "
            f"FROM {ops}.{catalog.MANIFEST_TABLE} AS m LEFT JOIN {ops}.{catalog.MERGED_TABLE} AS mb "
            f"ON m.BATCH_ID = mb.BATCH_ID AND m.RAW_TABLE = mb.RAW_TABLE{where} "
            "ORDER BY m.EXTRACTED_AT DESC, m.BATCH_ID"
        )
        rows = cur.fetchall()
        cur.execute(
            f"SELECT PIPE_NAME, FILE_KEY, ERROR, QUARANTINE_KEY, FAILED_AT FROM {ops}.{catalog.LOAD_ERRORS_TABLE} "
            "WHERE RELEASED_AT IS NULL"
        )
        errors = cur.fetchall()
        out, seen = [], set()
        for bid, table, raw, mode, count, _pk_rows, extracted, merged_at, run_id in rows:
            if bid in seen:
                continue
            seen.add(bid)
            status = BatchStatus(bid, table, "merged", mode=mode, rows=int(count), extracted_at=extracted,
                                 merged_at=merged_at, merge_run_id=run_id)  # fmt: skip
            status.load_errors = [
                {"pipe": e[0], "key": e[1], "error": e[2], "quarantine_key": e[3], "failed_at": str(e[4])}
                for e in errors
                if bid in e[1]
            ]
            if merged_at is None:
                cur.execute(f"SELECT COUNT(DISTINCT _ROW_NUMBER) FROM {env.snowflake.schemas['raw']}.{raw} "
                            f"WHERE _BATCH_ID = '{bid}'")  # fmt: skip
                status.rows_in_raw = int(cur.fetchone()[0])
                if status.rows_in_raw == status.rows:
                    status.state, status.why = "loaded", "complete in RAW: merged by the next graph run"
                else:
                    status.state = "waiting"
                    status.why = f"{status.rows_in_raw} of {status.rows} rows in RAW"
                    if status.load_errors:
                        status.why += "; quarantined: " + ", ".join(e["key"] for e in status.load_errors)
                    else:
                        status.why += "; files not loaded yet (Snowpipe pending)"
            out.append(status)
    if batch_id is None or not out:
        for bid, key in sorted(_s3_manifests(env).items(), reverse=True):
            if bid not in seen and (batch_id is None or bid == batch_id):
                errs = [{"key": e[1], "error": e[2]} for e in errors if e[1] == key]
                why = (
                    "manifest quarantined: " + errs[0]["error"]
                    if errs
                    else "manifest in S3, not loaded by its pipe yet"
                )
                out.insert(0, BatchStatus(bid, key.split("/")[1], "landed", why, files=[key], load_errors=errs))
    if batch_id is not None:
        for status in out:
            status.files = status.files or _data_files(env, status)
    return out[:limit] if limit else out


def _data_files(env: Environment, status: BatchStatus) -> list[str]:
    source, _, name = status.table.partition(".")
    s3 = client(env, "s3")
    prefixes = [catalog.s3_key(env, f"{source}/{name}/"), catalog.s3_key(env, f"{source}/{catalog.PK_FOLDER}/{name}/")]
    keys = []
    for prefix in prefixes:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env.aws.s3.bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if status.batch_id in o["Key"]]
    return keys
