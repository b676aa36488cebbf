"""`finsight sql|migrate|dag|replay` through the installed entry point, as CI and engineers call them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from finsight import migrate
from finsight.cli.common import platform_errors, require_local_stack
from finsight.cli.sql_cmd import MIGRATIONS_FOLDER, rendered_files
from finsight.config import Environment, load_environment, repo_root
from finsight.local.process import port_open
from finsight.secrets import SecretNotFound
from snowpark import procedures
from tasks import dag

FINSIGHT = Path(sys.executable).with_name("finsight")


def _offline_env() -> dict[str, str]:
    """No AWS credentials anywhere and no way out: a command that tries to connect fails fast and visibly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNOWFLAKE_"))}
    return env | {
        "AWS_EC2_METADATA_DISABLED": "true",  # no IMDS probe (slow, and a credential source)
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "HTTPS_PROXY": "http://127.0.0.1:9",  # nothing listens there
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
    }


def finsight(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FINSIGHT), *args], cwd=repo_root(), env=_offline_env(), capture_output=True, text=True, timeout=300
    )


def test_sql_render_writes_every_file(tmp_path: Path) -> None:
    out = finsight("sql", "render", "--env", "prod", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    expected = rendered_files(load_environment("prod"))
    written = {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*.sql")}
    assert written == expected
    assert f"{MIGRATIONS_FOLDER}/R__raw_tables_and_pipes.sql" in written and "tasks.sql" in written


def test_sql_render_prints_without_out() -> None:
    out = finsight("sql", "render", "--env", "dev")
    assert out.returncode == 0, out.stderr
    assert "-- ==== tasks.sql ====" in out.stdout and "CREATE OR REPLACE PROCEDURE OPS.MERGE_TABLE" in out.stdout


def test_sql_lint_local_is_clean() -> None:  # the PR gate's command
    out = finsight("sql", "lint", "--env", "local")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "sqlfluff clean" in out.stdout


def test_dag_deploy_dry_run_prints_everything_without_connecting() -> None:
    # no credentials and a dead proxy: reading the Snowflake key or connecting would fail the command
    out = finsight("dag", "deploy", "--env", "prod", "--dry-run")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for p in procedures.ALL:
        assert f"CREATE OR REPLACE PROCEDURE {p.name}(" in text
    assert f"PUT 'file://<build-dir>/snowpark.zip' @{procedures.CODE_STAGE}" in text
    prod = load_environment("prod")
    tasks = [n for n in dag.build_dag(prod) if not n.is_stage] + dag.build_retention_dag(prod)
    assert text.count("CREATE OR REPLACE TASK") == len(tasks)
    # the graph is suspended before it changes, procedures exist before the tasks that call them
    assert text.index("CREATE OR REPLACE PROCEDURE") < text.index("SUSPEND") < text.index("CREATE OR REPLACE TASK")


def test_dag_deploy_local_only_explains() -> None:
    out = finsight("dag", "deploy", "--env", "local")
    assert out.returncode == 0, out.stderr
    assert "finsight dag run --env local" in out.stdout and "CREATE OR REPLACE TASK" in out.stdout


def test_dag_render_matches_render_sql() -> None:
    out = finsight("dag", "render", "--env", "dev")
    assert out.returncode == 0, out.stderr
    assert out.stdout == dag.render_sql(load_environment("dev"))


def test_migrate_without_aws_credentials_fails_clearly() -> None:
    out = finsight("migrate", "--env", "prod", "--dry-run")
    assert out.returncode == 1
    assert "no AWS credentials for prod" in out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_replay_unknown_table_lists_known_tables() -> None:
    out = finsight("replay", "--env", "local", "--table", "payments.nope", "--batch", "b1")
    assert out.returncode == 2
    assert "unknown table 'payments.nope'" in out.stderr and "payments.payments" in out.stderr


def test_dag_run_is_local_only_and_checks_task_names() -> None:
    assert finsight("dag", "run", "--env", "prod").returncode == 2
    out = finsight("dag", "run", "--env", "local", "--task", "MERGE_NOPE")
    assert out.returncode == 2 and "MERGE_PAYMENTS__PAYMENTS" in out.stderr


def _unused_port() -> int:
    return next(p for p in range(59900, 59999) if not port_open(p))


def test_local_commands_ask_for_local_up_instead_of_starting_it(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_environment("local")
    assert cfg.local is not None
    port = _unused_port()
    down = cfg.model_copy(update={"local": cfg.local.model_copy(update={"moto_port": port, "fakesnow_port": port})})
    with pytest.raises(typer.Exit) as exc:
        require_local_stack(down)
    assert exc.value.exit_code == 1
    assert "run `finsight local up` first" in capsys.readouterr().err.lower()


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (migrate.MigrationError("schemachange deploy failed for dev (exit 1):\nboom"), "migration failed"),
        (SecretNotFound("secret 'x' not found in Secrets Manager (dev)"), "secret 'x' not found"),
    ],
)
def test_platform_errors_exit_1_with_the_message(
    error: Exception, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg: Environment = load_environment("dev")
    with pytest.raises(typer.Exit) as exc, platform_errors(cfg):
        raise error
    assert exc.value.exit_code == 1
    assert message in capsys.readouterr().err


@pytest.mark.stack
def test_migrate_local_is_idempotent(local_stack: object) -> None:
    first = finsight_local("migrate", "--env", "local")
    assert first.returncode == 0, first.stderr
    again = finsight_local("migrate", "--env", "local")
    assert again.returncode == 0, again.stderr
    # nothing re-applied but the governance folder's always script, which re-attaches the policies every deploy
    # (idempotent: ALTER ... SET MASKING POLICY ... FORCE on what the pipeline's scripts may have re-created)
    assert "local: applied 1 script(s)" in again.stdout, again.stdout
    assert [s.strip() for s in again.stdout.strip().splitlines()[1:]] == [
        "migrations-governance/A__attach_policies.sql"
    ]


@pytest.mark.stack
def test_dag_run_and_history_local(local_stack: object) -> None:
    # whatever data the stack holds (a stale stack fails the table's freshness check): this test owns none of it, so
    # it asserts the subgraph and that the exit code tells the run's state, not which state that is
    run = finsight_local("dag", "run", "--env", "local", "--task", "payments.payments")
    state = re.match(r"run \S+ \(attempt \d+\): (\w+)\n", run.stdout)
    assert state and state.group(1) in ("SUCCEEDED", "FAILED"), run.stdout + run.stderr
    assert run.returncode == (0 if state.group(1) == "SUCCEEDED" else 1), run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    ran = re.findall(r"^  (\w+) ", run.stdout, re.M)
    assert ran[0] == "FINSIGHT_HOURLY" and ran[-1] == "FINSIGHT_HOURLY_FINALIZE"
    assert "MERGE_PAYMENTS__PAYMENTS" in ran and not any(t.startswith("MERGE_") and t != "MERGE_PAYMENTS__PAYMENTS"
                                                         for t in ran)  # fmt: skip
    history = finsight_local("dag", "history", "--env", "local", "--limit", "5")
    assert history.returncode == 0, history.stderr
    run_id = run.stdout.split()[1]
    assert run_id in history.stdout  # newest first: this run's rows lead the log


@pytest.mark.stack
def test_replay_of_a_missing_batch_fails_clearly(local_stack: object) -> None:
    out = finsight_local("replay", "--env", "local", "--table", "payments.payments", "--batch", "no-such-batch")
    assert out.returncode == 1
    assert "no complete manifest+data in RAW" in out.stderr and "Traceback" not in out.stderr


def finsight_local(*args: str) -> subprocess.CompletedProcess[str]:
    """Against the local stack (loopback only; proxies would get in the way of moto and fakesnow)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    return subprocess.run([str(FINSIGHT), *args], cwd=repo_root(), env=env, capture_output=True, text=True, timeout=300)
