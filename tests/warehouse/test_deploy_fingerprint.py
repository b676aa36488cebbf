"""The hourly cycle deploys migrations only when the rendered scripts or the DAG changed (deploy_fingerprint)."""

from __future__ import annotations

from typing import Any

import pytest

from finsight import deploy_fingerprint, migrate
from finsight.config import Environment
from finsight.local.stack import LocalStack

pytestmark = pytest.mark.stack


def test_unchanged_skips_a_changed_script_deploys(
    local_env: Environment, local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy_fingerprint.deploy_if_changed(local_env)  # whatever the shared stack held: now recorded
    assert deploy_fingerprint.deploy_if_changed(local_env) is None  # unchanged: skipped, no schemachange
    render = migrate.render_with

    def one_script_changed(variables: dict[str, Any], folder: str = migrate.MIGRATIONS_FOLDER) -> dict[str, str]:
        rendered = render(variables, folder)
        if folder != migrate.MIGRATIONS_FOLDER:  # migrations-governance/ unchanged
            return rendered
        return {**rendered, "R__curated_tables.sql": rendered["R__curated_tables.sql"] + "\n-- changed\n"}

    monkeypatch.setattr(migrate, "render_with", one_script_changed)
    result = deploy_fingerprint.deploy_if_changed(local_env)
    assert result is not None  # a changed rendering deploys (schemachange ran)
    assert deploy_fingerprint.deployed(local_env) == deploy_fingerprint.fingerprint(local_env)
    monkeypatch.undo()
    assert deploy_fingerprint.deployed(local_env) != deploy_fingerprint.fingerprint(local_env)  # next cycle deploys


def test_a_changed_dag_changes_the_fingerprint(
    local_env: Environment, local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks import dag

    before = deploy_fingerprint.fingerprint(local_env)
    rendered = dag.render_sql(local_env)
    monkeypatch.setattr(dag, "render_sql", lambda env: rendered + "\n-- one more task\n")
    assert deploy_fingerprint.fingerprint(local_env) != before


def test_a_column_evolution_added_to_an_archived_table_changes_the_fingerprint(
    local_env: Environment, local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HISTORY views are rendered from the live archive columns (migrate.live_migration_vars): a column the
    source grew must redeploy them, though the catalog's own rendering is unchanged."""
    live = migrate.live_migration_vars(local_env, dry_run=True)
    assert live.get("archive"), "local.yaml archives tables: the views' columns come from the warehouse"
    before = deploy_fingerprint.fingerprint(local_env)
    first = live["archive"]["tables"][0]
    column = {**first["columns"][-1], "name": "NEW_SOURCE_COLUMN"}
    grown = {**first, "columns": [*first["columns"], column]}
    evolved = {**live, "archive": {**live["archive"], "tables": [grown, *live["archive"]["tables"][1:]]}}
    monkeypatch.setattr(migrate, "live_migration_vars", lambda env, dry_run=False: evolved)
    assert deploy_fingerprint.fingerprint(local_env) != before
