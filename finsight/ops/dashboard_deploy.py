"""The ops dashboard as Streamlit in Snowflake: a self-contained bundle, staged and created as a STREAMLIT object.

The bundle is the app (`streamlit_app.py`), the part of the `finsight` package it reads with (config, catalog, ops),
the environment files (names and owners only: no secret values live there), `environment.yml` (the Snowflake
Anaconda packages it needs) and a marker naming the environment, which switches the app to the Snowpark session
Snowflake gives it. `finsight dashboard --deploy --env E` uploads it to @OPS.DASHBOARD and (re)creates the app.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from finsight.config import Environment, repo_root
from finsight.ops.ownership import GITHUB_TEAMS

DEPLOYED_MARKER = "finsight_dashboard.json"  # beside the app: it runs in Snowflake, for this environment
APP_NAME = "FINSIGHT_OPS_DASHBOARD"
STAGE_NAME = "DASHBOARD"  # in the OPS schema
MAIN_FILE = "streamlit_app.py"
# what the app imports: config + catalog + ops (no CLI, no local stack, no connectors)
# (catalog imports the quarantine key rule, quality the DMF table: both stdlib-only leaves)
PACKAGE_PARTS = ("finsight/__init__.py", "finsight/catalog.py", "finsight/quarantine.py", "finsight/quality.py",
                 "finsight/snowflake_dmf.py", "finsight/config", "finsight/ops")  # fmt: skip
CONDA_PACKAGES = ("pandas", "pydantic", "pyyaml", "snowflake-snowpark-python")


def stage(env: Environment) -> str:
    return f"{env.snowflake.database}.{env.snowflake.schemas['ops']}.{STAGE_NAME}"


def app_name(env: Environment) -> str:
    return f"{env.snowflake.database}.{env.snowflake.schemas['ops']}.{APP_NAME}"


def build_bundle(env: Environment, target: Path) -> list[str]:
    """Write the app's files under `target`; returns their paths relative to it (what the stage will hold)."""
    root = repo_root()
    shutil.copyfile(root / "finsight" / "ops" / "dashboard.py", target / MAIN_FILE)
    for part in PACKAGE_PARTS:
        src = root / part
        files = sorted(src.rglob("*.py")) if src.is_dir() else [src]
        for f in files:
            dest = target / f.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
    (target / "environments").mkdir(exist_ok=True)
    for f in sorted((root / "environments").glob("*.yaml")):
        shutil.copyfile(f, target / "environments" / f.name)
    (target / DEPLOYED_MARKER).write_text(json.dumps({"env": env.name}) + "\n")
    deps = "\n".join(f"  - {p}" for p in CONDA_PACKAGES)
    conda = f"name: finsight_ops_dashboard\nchannels:\n  - snowflake\ndependencies:\n{deps}\n"
    (target / "environment.yml").write_text(conda)
    return sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())


def deploy_statements(env: Environment, bundle: Path, files: list[str]) -> list[str]:
    """Stage the bundle (one PUT per folder, keeping the package layout) and (re)create the app over it."""
    folders = sorted({str(Path(f).parent) for f in files})
    puts = [
        f"PUT 'file://{(bundle / folder).as_posix()}/*' @{stage(env)}{'' if folder == '.' else '/' + folder} "
        "AUTO_COMPRESS = FALSE OVERWRITE = TRUE"
        for folder in folders
    ]
    owners = f"{GITHUB_TEAMS['devops']} and {GITHUB_TEAMS['data_engineering']}"
    return [
        f"CREATE STAGE IF NOT EXISTS {stage(env)} DIRECTORY = (ENABLE = TRUE)",
        *puts,
        f"CREATE OR REPLACE STREAMLIT {app_name(env)} FROM '@{stage(env)}' MAIN_FILE = '{MAIN_FILE}' "
        f"QUERY_WAREHOUSE = {env.snowflake.warehouse_name('transform')} TITLE = 'FinSight ops ({env.name})' "
        f"COMMENT = 'ops dashboard, owners: {owners} (finsight/ops/dashboard.py)'",
    ]
