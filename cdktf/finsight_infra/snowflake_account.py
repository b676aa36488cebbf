"""Account-level Snowflake objects of one environment: database, warehouses with resource monitors, roles and
grants, the storage and notification integrations, and the service user.

Schemas, tables, stages, pipes, tasks and schema-level grants (SELECT on MARTS, masking policies for the PII
reader) belong to migrations/ (schemachange), which runs as the pipeline role once this stack is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktn import TerraformProvider, TerraformVariable
from cdktn_provider_snowflake.account_role import AccountRole
from cdktn_provider_snowflake.database import Database
from cdktn_provider_snowflake.grant_account_role import GrantAccountRole
from cdktn_provider_snowflake.grant_privileges_to_account_role import (
    GrantPrivilegesToAccountRole,
    GrantPrivilegesToAccountRoleOnAccountObject,
)
from cdktn_provider_snowflake.notification_integration import NotificationIntegration
from cdktn_provider_snowflake.resource_monitor import ResourceMonitor
from cdktn_provider_snowflake.service_user import ServiceUser
from cdktn_provider_snowflake.storage_integration_aws import StorageIntegrationAws
from cdktn_provider_snowflake.warehouse import Warehouse
from constructs import Construct

from finsight.cost.model import resource_monitor_quotas
from finsight_infra.naming import Names

# Quotas come from the cost model: forecast monthly credits x (1 + margin from finsight/cost/volumes.yaml), rounded
# up. Notify well before the quota; suspend at it (the margin already absorbs normal variance).
NOTIFY_AT_PERCENT = [75, 90]
SUSPEND_AT_PERCENT = 100  # let running queries finish
SUSPEND_IMMEDIATELY_AT_PERCENT = 110
SYSADMIN = "SYSADMIN"


@dataclass(frozen=True)
class Providers:
    """Least privilege on the Snowflake side too: each object is created by the role Snowflake recommends."""

    sysadmin: TerraformProvider  # database, warehouses
    securityadmin: TerraformProvider  # roles, grants, users
    accountadmin: TerraformProvider  # integrations, resource monitors, account-level grants


@dataclass(frozen=True)
class SnowflakeAccount:
    storage_integration: StorageIntegrationAws
    notification_integration: NotificationIntegration
    warehouses: dict[str, Warehouse]
    resource_monitors: dict[str, ResourceMonitor]

    # What the AWS stack needs to trust Snowflake (cross-stack references).
    @property
    def storage_iam_user_arn(self) -> str:
        return self.storage_integration.describe_output.get(0).iam_user_arn

    @property
    def sns_iam_user_arn(self) -> str:
        return self.notification_integration.aws_sns_iam_user_arn

    @property
    def sns_external_id(self) -> str:
        return self.notification_integration.aws_sns_external_id


def _warehouses(
    scope: Construct, names: Names, p: Providers
) -> tuple[dict[str, Warehouse], dict[str, ResourceMonitor]]:
    quotas = resource_monitor_quotas(names.env)
    warehouses: dict[str, Warehouse] = {}
    monitors: dict[str, ResourceMonitor] = {}
    for logical, wh in names.env.snowflake.warehouses.items():
        # No frequency/start: Snowflake's default is a monthly reset from creation, matching the monthly forecast.
        monitors[logical] = ResourceMonitor(
            scope,
            f"rm-{logical}",
            provider=p.accountadmin,
            name=names.sf_resource_monitor(logical),
            credit_quota=max(1, quotas[logical]),  # Snowflake rejects a zero quota
            notify_triggers=NOTIFY_AT_PERCENT,
            suspend_trigger=SUSPEND_AT_PERCENT,
            suspend_immediate_trigger=SUSPEND_IMMEDIATELY_AT_PERCENT,
        )
        warehouses[logical] = Warehouse(
            scope,
            f"wh-{logical}",
            provider=p.sysadmin,
            name=names.sf_warehouse(logical),
            warehouse_size=wh.size,
            auto_suspend=wh.auto_suspend_seconds,
            auto_resume="true",
            initially_suspended=True,
            resource_monitor=monitors[logical].name,
            comment=f"{names.prefix} {logical}",
        )
    return warehouses, monitors


def _grant(
    scope: Construct, cid: str, p: Providers, role: str, privileges: list[str], object_type: str, object_name: str
) -> None:
    GrantPrivilegesToAccountRole(
        scope,
        cid,
        provider=p.securityadmin,
        account_role_name=role,
        privileges=privileges,
        on_account_object=GrantPrivilegesToAccountRoleOnAccountObject(object_type=object_type, object_name=object_name),
    )


def build_snowflake_account(scope: Construct, names: Names, p: Providers) -> SnowflakeAccount:
    public_key = TerraformVariable(
        scope,
        "snowflake_service_user_public_key",
        type="string",
        description="RSA public key (one line, no PEM header) of the service user; the private half is in "
        f"Secrets Manager as {names.env.secrets.snowflake_service_user}",
    )
    database = Database(scope, "database", provider=p.sysadmin, name=names.sf_database, comment=names.prefix)
    warehouses, monitors = _warehouses(scope, names, p)

    storage = StorageIntegrationAws(
        scope,
        "storage-integration",
        provider=p.accountadmin,
        name=names.sf_storage_integration,
        enabled=True,
        storage_provider="S3",
        storage_aws_role_arn=names.role_arn(names.snowflake_storage_role),
        storage_aws_external_id=names.sf_storage_external_id,
        storage_allowed_locations=[names.raw_location],
    )
    notification = NotificationIntegration(
        scope,
        "notification-integration",
        provider=p.accountadmin,
        name=names.sf_notification_integration,
        enabled=True,
        notification_provider="AWS_SNS",
        direction="OUTBOUND",  # pipe and task error notifications -> data-engineering alert topic
        aws_sns_topic_arn=names.sns_arn(names.alert_topics["data_engineering"]),
        aws_sns_role_arn=names.role_arn(names.snowflake_alerts_role),
    )

    roles = {
        "pipeline": names.sf_pipeline_role,
        "analyst": names.sf_analyst_role,
        "pii_reader": names.sf_pii_reader_role,
    }
    account_roles = {
        key: AccountRole(scope, f"role-{key}", provider=p.securityadmin, name=name, comment=f"{names.prefix} {key}")
        for key, name in roles.items()
    }
    # Every custom role rolls up to SYSADMIN (Snowflake's recommended hierarchy); PII readers see what analysts see.
    for key, role in account_roles.items():
        GrantAccountRole(
            scope, f"{key}-to-sysadmin", provider=p.securityadmin, role_name=role.name, parent_role_name=SYSADMIN
        )
    GrantAccountRole(
        scope,
        "analyst-to-pii-reader",
        provider=p.securityadmin,
        role_name=account_roles["analyst"].name,
        parent_role_name=account_roles["pii_reader"].name,
    )

    pipeline = account_roles["pipeline"].name
    _grant(scope, "pipeline-database", p, pipeline, ["USAGE", "MONITOR", "CREATE SCHEMA"], "DATABASE", database.name)
    for logical, wh in warehouses.items():
        _grant(scope, f"pipeline-wh-{logical}", p, pipeline, ["USAGE", "OPERATE", "MONITOR"], "WAREHOUSE", wh.name)
    for cid, integration in (("storage", storage.name), ("notification", notification.name)):
        _grant(scope, f"pipeline-{cid}-integration", p, pipeline, ["USAGE"], "INTEGRATION", integration)
    GrantPrivilegesToAccountRole(
        scope,
        "pipeline-tasks",
        provider=p.accountadmin,  # EXECUTE TASK is an account privilege only ACCOUNTADMIN can grant
        account_role_name=pipeline,
        privileges=["EXECUTE TASK", "EXECUTE MANAGED TASK"],
        on_account=True,
    )
    for key in ("analyst", "pii_reader"):
        _grant(scope, f"{key}-database", p, account_roles[key].name, ["USAGE"], "DATABASE", database.name)

    user = ServiceUser(
        scope,
        "service-user",
        provider=p.securityadmin,
        name=names.sf_user,
        comment=f"{names.prefix} pipeline service user (key-pair auth only)",
        default_role=pipeline,
        default_warehouse=warehouses["load"].name,
        default_secondary_roles_option="NONE",
        rsa_public_key=public_key.string_value,
    )
    GrantAccountRole(scope, "pipeline-to-user", provider=p.securityadmin, role_name=pipeline, user_name=user.name)
    return SnowflakeAccount(
        storage_integration=storage,
        notification_integration=notification,
        warehouses=warehouses,
        resource_monitors=monitors,
    )
