"""`finsight --help` stays fast: the root imports no command module and no heavy dependency (lazy imports).

Not a timed test: it checks what gets imported, which is what makes start-up slow. (`snowflake` alone is the empty
namespace package a .pth file creates at interpreter start.)
"""

from __future__ import annotations

import json
import subprocess
import sys

from finsight.cli.main import COMMANDS

HEAVY = ("snowflake.", "boto3", "botocore", "pyarrow", "psycopg", "fakesnow", "duckdb", "airbyte_cdk", "connectors",
         "snowpark", "tasks", "streamlit", "pandas", "finsight.cli.")  # fmt: skip

PROBE = """
import json, sys
from finsight.cli.main import app
sys.argv = ["finsight", "--help"]
try:
    app()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def test_help_imports_no_heavy_module() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    modules = json.loads(out.strip().splitlines()[-1])
    heavy = [m for m in modules if m.startswith(HEAVY) and m not in ("finsight.cli.main", "finsight.cli.errors")]
    assert not heavy, f"`finsight --help` imports {heavy[:10]}"
    for name in COMMANDS:
        assert name in out, f"`finsight --help` does not list {name}"


def test_every_listed_command_loads() -> None:
    from typer.testing import CliRunner

    from finsight.cli.main import app

    for name in COMMANDS:
        result = CliRunner().invoke(app, [name, "--help"])
        assert result.exit_code == 0, f"finsight {name} --help: {result.output[-400:]}"
