"""The Snowflake stack: grants the CURATED tables' owner needs for Data Metric Functions, and the provider's preview
features derived from the resources the stack synthesizes. Terraform never runs here: the synthesized JSON is what
Terraform would apply, so each rule is checked on it, with the docs that state the rule."""

from __future__ import annotations

import json

import cdktn
import pytest
from cdktn_provider_snowflake.data_snowflake_current_account import DataSnowflakeCurrentAccount
from constructs import Construct
from finsight_infra import snowflake_preview, snowflake_stack
from finsight_infra.naming import Names
from finsight_infra.snowflake_account import Providers, SnowflakeAccount
from finsight_infra.snowflake_stack import SnowflakeStack
from finsight_infra.state import TARGET_VERSIONS

from finsight import snowflake_dmf
from finsight.config import load_environment
from tests.infra.conftest import Synth
from tests.infra.helpers import referenced_id


def test_table_owner_can_attach_data_metric_functions(stack: Synth) -> None:
    """Docs "Access control for data quality" (https://docs.snowflake.com/en/user-guide/data-quality-access-control)
    and the system DMF pages ("Access control requirements"): the table owner role needs the SNOWFLAKE database role
    DATA_METRIC_USER and EXECUTE DATA METRIC FUNCTION on the account; without them every ADD DATA METRIC FUNCTION of
    R__quality_metrics.sql fails. The pipeline role owns the CURATED tables (migrations run as it)."""
    roles = {cid: r["name"] for cid, r in stack.resources("snowflake", "snowflake_account_role").items()}
    pipeline = stack.env.snowflake.role

    def role_of(value: str) -> str:
        return roles[referenced_id(value, "snowflake_account_role")]

    db_roles = {
        g["database_role_name"].replace('"', ""): role_of(g["parent_role_name"])
        for g in stack.resources("snowflake", "snowflake_grant_database_role").values()
    }
    on_account = {
        privilege: role_of(g["account_role_name"])
        for g in stack.resources("snowflake", "snowflake_grant_privileges_to_account_role").values()
        if g.get("on_account")
        for privilege in g["privileges"]
    }
    assert snowflake_dmf.OWNER_ROLE_GRANTS
    for grant in snowflake_dmf.OWNER_ROLE_GRANTS:
        granted = db_roles if grant.kind == "database_role" else on_account
        assert granted.get(grant.name) == pipeline, grant.sql(pipeline)


def _used(stack: Synth) -> set[tuple[str, bool]]:
    tf = stack.snowflake
    return {(t, False) for t in tf.get("resource", {})} | {(t, True) for t in tf.get("data", {})}


def test_provider_enables_exactly_the_preview_features_the_stack_uses(stack: Synth) -> None:
    """Registry docs of the pinned provider (snowflakedb/snowflake 2.22.0, #preview_features_enabled): a preview
    resource or data source is refused unless its feature is listed; promoted features are enabled by default and
    "will be removed in the next major version" (so listing them would break that upgrade)."""
    preview, promoted = snowflake_preview.provider_features()
    required = snowflake_preview.required_features(_used(stack))
    assert "snowflake_notification_integration_resource" in required
    for provider in stack.snowflake["provider"]["snowflake"]:
        enabled = provider.get("preview_features_enabled", [])
        assert sorted(enabled) == required, provider["alias"]
        assert not set(enabled) & promoted and set(enabled) <= preview


def test_pinned_provider_classifies_the_account_resources_as_stable() -> None:
    """The issue named snowflake_current_account, snowflake_external_volume and snowflake_storage_integration_aws as
    preview; in the pinned 2.22.0 they are promoted (enabled by default), and the lists are read from its docs."""
    preview, promoted = snowflake_preview.provider_features()
    assert len(preview) > 50 and len(promoted) > 50 and not preview & promoted
    for t in ("snowflake_current_account", "snowflake_external_volume", "snowflake_storage_integration_aws"):
        assert snowflake_preview.feature_name(t, data_source=False) in promoted
    assert "snowflake_notification_integration_resource" in preview
    assert "snowflake_current_account_datasource" in preview  # the data source is still preview


def test_a_preview_data_source_added_to_the_stack_gets_its_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    """The list follows the stack: a preview type added tomorrow is enabled without anyone editing a list."""
    build = snowflake_stack.build_snowflake_account

    def build_with_preview_data_source(scope: Construct, names: Names, providers: Providers) -> SnowflakeAccount:
        DataSnowflakeCurrentAccount(scope, "current-account-data", provider=providers.accountadmin)
        return build(scope, names, providers)

    monkeypatch.setattr(snowflake_stack, "build_snowflake_account", build_with_preview_data_source)
    app = cdktn.Testing.app(context={"targetVersions": TARGET_VERSIONS})
    synthesized = json.loads(cdktn.Testing.synth(SnowflakeStack(app, Names(load_environment("dev")))))
    for provider in synthesized["provider"]["snowflake"]:
        assert "snowflake_current_account_datasource" in provider["preview_features_enabled"]
