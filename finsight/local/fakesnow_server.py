"""Run fakesnow (DuckDB) as the local Snowflake, with our compat fixes and S3 (moto) reachable via httpfs.

`python -m finsight.local.fakesnow_server --port P --db-dir D --s3-endpoint 127.0.0.1:M --region R`
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
from pathlib import Path

import duckdb_extension_httpfs
import fakesnow.cursor
import uvicorn
from fakesnow import info_schema
from fakesnow.instance import GLOBAL_DATABASE_NAME, FakeSnow
from fakesnow.transforms import show

from finsight.conformance import rules
from finsight.local import fakesnow_compat, parse_handoff, snowflake_strict

# `fakesnow.server` is both a function (package attribute) and a module; importlib gets the module
fakesnow_server = importlib.import_module("fakesnow.server")
log = logging.getLogger("finsight.fakesnow")


def httpfs_extension_path() -> Path:
    """The httpfs build shipped in the pinned wheel: DuckDB cannot download extensions offline."""
    root = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    found = sorted(root.glob("*/httpfs.duckdb_extension"))
    if not found:
        raise RuntimeError(f"httpfs extension not found under {root}")
    return found[-1]


def s3_secret_sql(s3_endpoint: str, region: str, credentials_file: Path | None) -> str:
    """DuckDB's S3 secret for httpfs: the Snowflake storage role's session when moto enforces IAM.

    The values are read from a 0600 file and go only into DuckDB; they are never logged.
    """
    if credentials_file is None:  # moto without IAM accepts any key pair: these are not secrets
        key_id, secret, token = "local", "local", ""
    else:
        data = json.loads(credentials_file.read_text())
        key_id, secret, token = data["key_id"], data["secret"], data.get("session_token") or ""
    session = f", SESSION_TOKEN '{token}'" if token else ""
    return (
        f"CREATE OR REPLACE SECRET moto_s3 (TYPE S3, KEY_ID '{key_id}', SECRET '{secret}'{session}, "
        f"ENDPOINT '{s3_endpoint}', REGION '{region}', URL_STYLE 'path', USE_SSL false)"
    )


def build_instance(db_dir: Path, s3_endpoint: str, region: str, credentials_file: Path | None = None) -> FakeSnow:
    fakesnow_compat.apply()
    db_dir.mkdir(parents=True, exist_ok=True)
    fs = FakeSnow(db_path=db_dir, nop_regexes=fakesnow_compat.NOP_REGEXES)
    duck = fs.duck_conn
    # fakesnow keeps stages and users in an in-memory "global" database; keep it in a file so a restart of the
    # local stack does not lose the stages that schemachange created (its change history says they exist)
    duck.execute(f"DETACH {GLOBAL_DATABASE_NAME}")
    duck.execute(f"ATTACH '{db_dir / GLOBAL_DATABASE_NAME}.db' AS {GLOBAL_DATABASE_NAME}")
    duck.execute(info_schema.fs_global_creation_sql())
    duck.execute(show.fs_global_creation_sql())
    duck.execute(f"LOAD '{httpfs_extension_path()}'")
    # the real Snowflake reads S3 through its storage integration, i.e. as the storage role
    duck.execute(s3_secret_sql(s3_endpoint, region, credentials_file))
    return fs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db-dir", type=Path, required=True)
    parser.add_argument("--s3-endpoint", required=True, help="host:port of the moto server")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="accept what Snowflake refuses (still logged): for debugging only",
    )
    parser.add_argument("--owner-role", help="the role owning the platform's objects (grants are checked for it)")
    parser.add_argument("--statement-log", type=Path, help="append every statement here (JSON lines)")
    parser.add_argument("--s3-credentials-file", type=Path, help="0600 JSON with the storage role's S3 session")
    args = parser.parse_args()
    fs = build_instance(args.db_dir, args.s3_endpoint, args.region, args.s3_credentials_file)
    layer = snowflake_strict.StrictLayer(
        args.db_dir, args.owner_role, args.statement_log, fs.duck_conn, enforce=not args.lenient
    )
    snowflake_strict.install(layer)
    # one parse per statement: the server's, read by the strict layer and taken by the cursor
    fakesnow_server.parse_one = parse_handoff.HANDOFF.parse
    fakesnow.cursor.parse_one = parse_handoff.HANDOFF.take
    rules.parse_statement = parse_handoff.HANDOFF.peek
    fakesnow_server.shared_fs = fs
    uvicorn.run(
        snowflake_strict.with_login_role(fakesnow_server.app), host="127.0.0.1", port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
