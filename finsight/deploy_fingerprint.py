"""Deploy-time migrations: the hourly cycle redeploys only when what would be deployed changed.

The fingerprint is a hash of every rendered migration script and of the rendered Task DAG; `finsight migrate`
records it after a successful deploy, and the cycle compares it with one lookup instead of running schemachange
(seconds) every hour. `finsight migrate` run explicitly always deploys.
"""

from __future__ import annotations

import hashlib
import json

from finsight import migrate, warehouse
from finsight.config import Environment


def fingerprint(env: Environment) -> str:
    """sha256 over the scripts as deploy renders them (name + text) and the rendered DAG: any change to either
    changes it. Rendered with the live variables, not the catalog's alone: a column schema evolution added to an
    archived table changes the HISTORY views, so it must redeploy them."""
    from tasks import dag

    variables = migrate.live_migration_vars(env, dry_run=True)
    scripts = {
        f"{who.folder}/{name}": sql
        for who in migrate.identities(env)
        for name, sql in migrate.render_with(variables, who.folder).items()
    }
    payload = json.dumps({"migrations": scripts, "dag": dag.render_sql(env)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _table(env: Environment) -> str:
    # beside schemachange's change history: deploy bookkeeping, not a platform object
    return f"{env.snowflake.database}.{env.snowflake.change_history_schema}.DEPLOY_FINGERPRINT"


def deployed(env: Environment) -> str | None:
    """The fingerprint of the last recorded deploy, None when none was recorded (a fresh warehouse)."""
    from snowflake.connector.errors import ProgrammingError

    try:
        with warehouse.connect(env) as conn:
            row = conn.cursor().execute(f"SELECT FINGERPRINT FROM {_table(env)} ORDER BY DEPLOYED_AT DESC LIMIT 1")
            found = row.fetchone() if row is not None else None
    except ProgrammingError:  # no table yet (a fresh warehouse): nothing recorded, so deploy; a lost connection raises
        return None
    return str(found[0]) if found else None


def record(env: Environment, value: str) -> None:
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE IF NOT EXISTS {_table(env)} (FINGERPRINT VARCHAR, DEPLOYED_AT TIMESTAMP_NTZ)")
        cur.execute(f"DELETE FROM {_table(env)}")
        cur.execute(f"INSERT INTO {_table(env)} (FINGERPRINT, DEPLOYED_AT) VALUES ('{value}', CURRENT_TIMESTAMP())")


def deploy_if_changed(env: Environment) -> migrate.MigrationResult | None:
    """Deploy (and record the fingerprint) when it differs from the recorded one; None when it was skipped."""
    current = fingerprint(env)
    if deployed(env) == current:
        return None
    result = migrate.deploy(env)
    record(env, current)
    return result
