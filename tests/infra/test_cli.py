"""`finsight infra synth|scan` end to end through Typer (one environment, to keep the suite fast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from finsight.cli import infra_cmd
from finsight.config import repo_root


def _app() -> typer.Typer:
    app = typer.Typer()
    infra_cmd.register(app)
    return app


def test_scan_dev_reports_every_stack_clean(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["infra", "scan", "--env", "dev", "--outdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "finsight-dev-aws: " in result.output and "0 failed" in result.output
    assert "finsight-dev-snowflake: " in result.output
    assert (tmp_path / "stacks" / "finsight-dev-aws" / "cdk.tf.json").is_file()


def test_local_has_no_infrastructure() -> None:
    result = CliRunner().invoke(_app(), ["infra", "synth", "--env", "local"])
    assert result.exit_code == 2
    assert "no infrastructure" in result.output


def test_the_cli_never_imports_jsii() -> None:
    code = "import sys, finsight.cli.infra_cmd; sys.exit(any(m.split('.')[0] in BANNED for m in sys.modules))"
    banned = "BANNED = {'jsii', 'cdktn', 'cdktn_provider_aws', 'cdktn_provider_snowflake', 'finsight_infra'}; "
    proc = subprocess.run([sys.executable, "-c", banned + code], cwd=repo_root(), check=False)
    assert proc.returncode == 0, "importing the CLI module pulled in jsii / the CDK Terrain bindings"
