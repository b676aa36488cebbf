"""`finsight sql check`: the Snowflake rules over every rendered file and a DAG redeploy, and over a statement log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finsight.cli.sql_cmd import MIGRATIONS_FOLDER, conformance_findings, deploy_order
from finsight.config import load_environment
from finsight.conformance.check import check_script, statements
from finsight.conformance.model import Model
from tests.sql.test_cli import finsight


@pytest.mark.parametrize("env", ["local", "dev", "staging", "prod"])
def test_everything_rendered_for_an_environment_conforms(env: str) -> None:
    findings = conformance_findings(load_environment(env))
    assert [str(f) for f in findings] == []


def test_the_cli_reports_zero_violations_for_prod() -> None:
    out = finsight("sql", "check", "--env", "prod")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "prod: rendered SQL and the DAG deploy: 0 Snowflake conformance violations" in out.stdout


def test_files_are_checked_in_schemachange_order() -> None:
    m = MIGRATIONS_FOLDER
    files = {
        f"{m}/R__b.sql": "",
        f"{m}/V1.10.0__x.sql": "",
        f"{m}/V1.2.0__y.sql": "",
        "tasks.sql": "",
        f"{m}/R__a.sql": "",
    }
    assert [n for n, _ in deploy_order(files)] == [
        f"{m}/V1.2.0__y.sql", f"{m}/V1.10.0__x.sql", f"{m}/R__a.sql", f"{m}/R__b.sql", "tasks.sql",
    ]  # fmt: skip


def test_a_finding_names_file_line_statement_rule_and_docs() -> None:
    script = (
        "-- header comment\nCREATE TABLE IF NOT EXISTS T (A NUMBER);\n\n"
        "EXECUTE IMMEDIATE $$\nBEGIN\n  SELECT 1;\nEND;\n$$;\n"
        "SELECT t.A FROM T AS t\nWHERE t.A = 1 OR EXISTS (SELECT 1 FROM U AS u WHERE u.A = t.A);\n"
    )
    assert len(list(statements(script))) == 3
    (finding,) = check_script("migrations/R__x.sql", script, Model())
    text = str(finding)
    assert text.startswith("migrations/R__x.sql:9: statement 3: correlated-subquery: SQL compilation error")
    assert "[https://docs.snowflake.com/en/user-guide/querying-subqueries]" in text


def test_a_statement_log_is_checked_in_order_and_learns_only_from_successes(tmp_path: Path) -> None:
    log = tmp_path / "statements.jsonl"
    lines = [
        {"sql": "CREATE TABLE T (A NUMBER(10,2))", "ok": True},
        {"sql": "ALTER TABLE T ALTER COLUMN A SET DATA TYPE NUMBER(20, 2)", "ok": False},  # did not run
        {"sql": "ALTER TABLE T ALTER COLUMN A SET DATA TYPE NUMBER(12, 4)", "ok": False},
    ]
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = finsight("sql", "check", "--env", "local", "--log", str(log))
    assert out.returncode == 1
    assert "statements.jsonl: statement 3: column-type-change" in out.stdout
    assert "from type NUMBER(10,2) to NUMBER(12,4)" in out.stdout  # the failed widening was not learned
    assert "1 Snowflake conformance violation(s) in the statement log" in out.stdout + out.stderr


def test_a_broken_log_names_the_line(tmp_path: Path) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_text('{"sql": "SELECT 1"}\nnot json\n')
    out = finsight("sql", "check", "--env", "local", "--log", str(log))
    assert out.returncode != 0 and f"{log}:2: not a statement log entry" in out.stdout + out.stderr
