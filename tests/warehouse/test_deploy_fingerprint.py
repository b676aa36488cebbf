"""The hourly cycle deploys migrations only when the rendered scripts or the DAG changed (deploy_fingerprint)."""

from __future__ import annotations

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
    rendered = migrate.render_all(local_env)
    changed = {**rendered, "R__curated_tables.sql": rendered["R__curated_tables.sql"] + "\n-- changed\n"}
    monkeypatch.setattr(migrate, "render_all", lambda env: changed)
    result = deploy_fingerprint.deploy_if_changed(local_env)
    assert result is not None  # a changed rendering deploys (schemachange ran)
    assert deploy_fingerprint.deployed(local_env) == deploy_fingerprint.fingerprint(local_env)
    monkeypatch.undo()
    assert deploy_fingerprint.deployed(local_env) != deploy_fingerprint.fingerprint(local_env)  # next cycle deploys


def test_a_changed_dag_changes_the_fingerprint(local_env: Environment, monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks import dag

    before = deploy_fingerprint.fingerprint(local_env)
    rendered = dag.render_sql(local_env)
    monkeypatch.setattr(dag, "render_sql", lambda env: rendered + "\n-- one more task\n")
    assert deploy_fingerprint.fingerprint(local_env) != before
