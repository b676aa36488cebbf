"""The SQL we ship, rendered from the config: sqlfluff-clean, deterministic, and covering every configured table."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

from finsight.cli.sql_cmd import MIGRATIONS_FOLDER, lint_files, rendered_files
from finsight.config import Environment, load_environment

ENVS = ["dev", "prod"]


def _migrations(files: dict[str, str]) -> str:
    return "\n".join(text for name, text in files.items() if name.startswith(f"{MIGRATIONS_FOLDER}/"))


@pytest.mark.parametrize("env", ENVS)
def test_rendered_sql_is_sqlfluff_clean(env: str) -> None:
    violations = lint_files(rendered_files(load_environment(env)))
    assert not violations, "\n".join(map(str, violations))


def test_lint_reports_file_line_and_rule() -> None:
    # the gate is not vacuous: a lower-case keyword and an over-long line are caught, with where they are
    bad = "select 1 AS A;\nSELECT '" + "x" * 150 + "' AS B;\n"
    found = {(v.file, v.line, v.code) for v in lint_files({"bad.sql": bad})}
    assert ("bad.sql", 1, "CP01") in found
    assert ("bad.sql", 2, "LT05") in found


_RENDER = (
    "import hashlib, json, sys; from finsight.cli.sql_cmd import rendered_files; from finsight.config import "
    "load_environment; print(hashlib.sha256(json.dumps(rendered_files(load_environment(sys.argv[1])), "
    "sort_keys=True).encode()).hexdigest())"
)


@pytest.mark.parametrize("env", ENVS)
def test_rendering_is_deterministic_across_processes(env: str) -> None:
    """Two processes with different string-hash seeds render the same text: no set or dict-of-set order, no clock,
    no process state leaks into the SQL (inside one process such an order would repeat, so compare processes)."""
    digests = {
        subprocess.run(
            [sys.executable, "-c", _RENDER, env],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1, digests
    in_process = hashlib.sha256(json.dumps(rendered_files(load_environment(env)), sort_keys=True).encode())
    assert digests == {in_process.hexdigest()}


def test_expected_files_are_rendered() -> None:
    names = set(rendered_files(load_environment("dev")))
    assert {"tasks.sql", "procedures.sql", f"{MIGRATIONS_FOLDER}/V1.0.0__schemas_and_ops.sql"} <= names
    assert all(text.endswith("\n") for text in rendered_files(load_environment("dev")).values())


def _check_every_table(cfg: Environment) -> None:
    files = rendered_files(cfg)
    sql, tasks = _migrations(files), files["tasks.sql"]
    db, s = cfg.snowflake.database, cfg.snowflake.schemas
    for t in cfg.warehouse_tables():
        raw, curated = f"{db}.{s['raw']}.{t.raw_name}", f"{db}.{s['curated']}.{t.curated_name}"
        # RAW is transient (no fail-safe: it is replayable from S3 and pruned after merge)
        assert f"CREATE TRANSIENT TABLE IF NOT EXISTS {raw} (" in sql, t.qualified
        assert f"CREATE TABLE IF NOT EXISTS {db}.{s['ops']}.{t.raw_name}__TOMBSTONES (" in sql, t.qualified
        assert f"CREATE TABLE IF NOT EXISTS {curated} (" in sql, t.qualified
        pipe = re.search(rf"CREATE PIPE IF NOT EXISTS {db}\.{s['raw']}\.{t.raw_name}_PIPE\b.*?;", sql, re.S)
        assert pipe and f"COPY INTO {s['raw']}.{t.raw_name}\n" in pipe.group(0), t.qualified
        for column in t.landed_columns():
            assert f"ALTER TABLE {raw} ADD COLUMN IF NOT EXISTS {column.upper()} " in sql, (t.qualified, column)
            assert f"ALTER TABLE {curated} ADD COLUMN IF NOT EXISTS {column.upper()} " in sql, (t.qualified, column)
        if t.deletes.value == "pk_snapshot":
            assert f"CREATE TRANSIENT TABLE IF NOT EXISTS {raw}__PKS (" in sql, t.qualified
            assert f"CREATE PIPE IF NOT EXISTS {raw}__PKS_PIPE" in sql, t.qualified
        assert f"CREATE OR REPLACE TASK {s['ops']}.MERGE_{t.raw_name}\n" in tasks, t.qualified


@pytest.mark.parametrize("env", ENVS)
def test_every_table_is_in_raw_curated_pipes_and_dag(env: str) -> None:
    _check_every_table(load_environment(env))
