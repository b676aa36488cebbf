"""The ops dashboard is deployable as Streamlit in Snowflake: the bundle stands alone (no module from the
repository), runs on the Snowpark session Snowflake hands the app (here one on the local Snowflake) and renders every
section; the deploy statements stage every bundled file and create the app over the stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finsight import warehouse
from finsight.config import Environment, load_environment
from finsight.local.stack import LocalStack
from finsight.ops import dashboard_deploy
from tests.ops.test_dashboard import SECTIONS

# As Streamlit in Snowflake runs it: the app's folder first on the path, a Snowpark session already active.
RUN_AS_SIS = """
import json, sys
sys.path.insert(0, ".")
from snowflake.snowpark import Session
Session.builder.configs(json.loads(sys.stdin.read())).create()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("streamlit_app.py", default_timeout=240).run()
modules = sorted({m.__file__ for n, m in list(sys.modules.items())
                  if n.split(".")[0] == "finsight" and getattr(m, "__file__", None)})
print(json.dumps({"exceptions": [str(e.value) for e in at.exception], "headers": [h.value for h in at.header],
                  "title": at.title[0].value if at.title else None, "modules": modules}))
"""


def test_deploy_statements_stage_every_file_and_create_the_app(tmp_path: Path) -> None:
    env = load_environment("prod")
    files = dashboard_deploy.build_bundle(env, tmp_path)
    assert {dashboard_deploy.MAIN_FILE, "environment.yml", "environments/prod.yaml"} <= set(files)
    statements = dashboard_deploy.deploy_statements(env, tmp_path, files)
    staged = set()
    for sql in statements:
        if sql.startswith("PUT "):
            folder = Path(sql.split("'file://")[1].split("/*'")[0])
            target = sql.split(" @")[1].split(" ")[0]
            relative = folder.relative_to(tmp_path).as_posix()
            assert target == dashboard_deploy.stage(env) + ("" if relative == "." else f"/{relative}")
            staged |= {p.relative_to(tmp_path).as_posix() for p in folder.iterdir() if p.is_file()}
    assert staged == set(files)  # every file of the bundle reaches the stage, in its folder
    create = statements[-1]
    assert create.startswith("CREATE OR REPLACE STREAMLIT FINSIGHT_PROD.OPS.FINSIGHT_OPS_DASHBOARD FROM "
                             "'@FINSIGHT_PROD.OPS.DASHBOARD' MAIN_FILE = 'streamlit_app.py' "
                             "QUERY_WAREHOUSE = FINSIGHT_PROD_TRANSFORM_WH")  # fmt: skip
    assert json.loads((tmp_path / dashboard_deploy.DEPLOYED_MARKER).read_text()) == {"env": "prod"}


@pytest.mark.stack
def test_bundle_renders_every_section_on_a_snowpark_session(
    local_env: Environment, local_stack: LocalStack, tmp_path: Path
) -> None:
    dashboard_deploy.build_bundle(local_env, tmp_path)
    params = warehouse.connection_parameters(local_env) | {"schema": local_env.snowflake.schemas["ops"]}
    environ = {k: v for k, v in os.environ.items() if k != "FINSIGHT_ROOT"}
    out = subprocess.run([sys.executable, "-c", RUN_AS_SIS], cwd=tmp_path, input=json.dumps(params), text=True,
                         capture_output=True, timeout=400, env=environ)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["exceptions"] == []
    assert result["headers"] == list(SECTIONS) and result["title"] == f"FinSight ops: {local_env.name}"
    outside = [m for m in result["modules"] if not Path(m).resolve().is_relative_to(tmp_path.resolve())]
    assert result["modules"] and not outside, outside  # nothing imported from the repository
