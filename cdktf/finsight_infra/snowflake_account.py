"""Account-level Snowflake objects of one environment: database, warehouses with resource monitors, an account
resource monitor, roles and account-level grants, network policies, account security parameters, the storage and
notification integrations, the Iceberg external volume, and the service user.

Roles (none of the data roles roll up to SYSADMIN except the pipeline role, which owns the objects):
  pipeline    owns RAW/CURATED/MARTS/OPS objects and runs the Task DAG; sees PII masked in CURATED; attaches Data
              Metric Functions to its tables (SNOWFLAKE.DATA_METRIC_USER, EXECUTE DATA METRIC FUNCTION)
  loader      reads/writes RAW (Snowpipe COPY); granted to the pipeline role
  analyst     reads MARTS and CURATED (PII masked)
  pii_reader  analyst + clear PII: the masking policies unmask for this role only (CURRENT_ROLE, no inheritance)
  governance  owns the GOVERNANCE schema's masking, row-access and password policies and applies them
              (APPLY ... POLICY on the account); rolls up to SECURITYADMIN, not SYSADMIN; granted to one user, the
              governance deploy user that runs migrations-governance/, never to the pipeline's service user
  archiver    owns OPS.ARCHIVE_CURATED (owner's rights): the masking policies unmask for it (INVOKER_ROLE), so the
              archive keeps clear PII; granted to no user and no role, so no session can act as it
  terraform_plan  what `terraform plan` of this stack runs as (every provider alias, from pull-request-free plan
              jobs): MONITOR / USAGE, no ownership, no CREATE, no MANAGE GRANTS; its own user and key, granted to no
              role, so the plan job never holds the admin roles the apply job uses
Schemas, tables, stages, pipes, tasks and schema-level grants belong to migrations/ (schemachange, the service
user); the policies to migrations-governance/ (schemachange, the governance deploy user). Both run once this stack
is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktn import TerraformProvider, TerraformVariable
from cdktn_provider_snowflake.account_authentication_policy_attachment import AccountAuthenticationPolicyAttachment
from cdktn_provider_snowflake.account_role import AccountRole
from cdktn_provider_snowflake.authentication_policy import AuthenticationPolicy
from cdktn_provider_snowflake.current_account import CurrentAccount
from cdktn_provider_snowflake.database import Database
from cdktn_provider_snowflake.external_volume import ExternalVolume, ExternalVolumeStorageLocation
from cdktn_provider_snowflake.grant_account_role import GrantAccountRole
from cdktn_provider_snowflake.grant_database_role import GrantDatabaseRole
from cdktn_provider_snowflake.grant_privileges_to_account_role import (
    GrantPrivilegesToAccountRole,
    GrantPrivilegesToAccountRoleOnAccountObject,
)
from cdktn_provider_snowflake.network_policy import NetworkPolicy
from cdktn_provider_snowflake.notification_integration import NotificationIntegration
from cdktn_provider_snowflake.resource_monitor import ResourceMonitor
from cdktn_provider_snowflake.schema import Schema
from cdktn_provider_snowflake.service_user import ServiceUser
from cdktn_provider_snowflake.storage_integration_aws import StorageIntegrationAws
from cdktn_provider_snowflake.warehouse import Warehouse
from constructs import Construct

from finsight import snowflake_dmf, tfvars, time_zone
from finsight.cost.model import account_credit_quota, resource_monitor_quotas
from finsight_infra.naming import Names

# Quotas come from the cost model: forecast monthly credits x (1 + margin from finsight/cost/volumes.yaml), rounded
# up. Notify well before the quota; suspend at it (the margin already absorbs normal variance).
NOTIFY_AT_PERCENT = [75, 90]
SUSPEND_AT_PERCENT = 100  # let running queries finish
SUSPEND_IMMEDIATELY_AT_PERCENT = 110
ACCOUNT_NOTIFY_AT_PERCENT = [50, 75, 90]
SYSADMIN = "SYSADMIN"
SECURITYADMIN = "SECURITYADMIN"
# Data roles: which admin role each rolls up to (None: to no system role, so no admin inherits what it sees).
ROLE_PARENTS = {
    "pipeline": SYSADMIN,
    "loader": None,
    "analyst": SYSADMIN,
    "pii_reader": None,
    "governance": SECURITYADMIN,
    "archiver": None,  # reads clear PII: neither SYSADMIN nor the pipeline role may inherit it
}


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
    account_monitor: ResourceMonitor


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


def _data_metric_grants(scope: Construct, p: Providers, table_owner: str) -> None:
    """What the owner of the CURATED tables needs before migrations/R__quality_metrics.sql can attach any Data Metric
    Function (finsight.snowflake_dmf.OWNER_ROLE_GRANTS; docs "Access control for data quality"), granted as
    ACCOUNTADMIN like the docs' example: the SNOWFLAKE database role and the account privilege."""
    for grant in snowflake_dmf.OWNER_ROLE_GRANTS:
        if grant.kind == "database_role":
            database, role = grant.name.split(".")
            GrantDatabaseRole(
                scope,
                f"pipeline-{role.lower().replace('_', '-')}",
                provider=p.accountadmin,
                database_role_name=f'"{database}"."{role}"',
                parent_role_name=table_owner,
            )
        else:
            GrantPrivilegesToAccountRole(
                scope,
                f"pipeline-{grant.name.lower().replace(' ', '-')}",
                provider=p.accountadmin,
                account_role_name=table_owner,
                privileges=[grant.name],
                on_account=True,
            )


def _account_security(scope: Construct, names: Names, p: Providers, monitor: ResourceMonitor) -> NetworkPolicy:
    """Network policies from the config allow-lists and the account parameters PCI DSS asks for."""
    gov = names.env.governance
    assert gov is not None
    # the deploy runners live in this environment's VPC: their egress is the NAT gateways' Elastic IPs
    runners = names.env.network.deploy_runner_cidrs
    account_policy = NetworkPolicy(
        scope,
        "account-network-policy",
        provider=p.securityadmin,
        name=names.sf_account_network_policy,
        allowed_ip_list=[*gov.account_allowed_cidrs, *runners],
        comment=f"{names.prefix}: corporate VPN egress and CI deploy runners only",
    )
    service_policy = NetworkPolicy(
        scope,
        "service-network-policy",
        provider=p.securityadmin,
        name=names.sf_service_network_policy,
        allowed_ip_list=[*runners, *gov.service_user_allowed_cidrs],
        comment=f"{names.prefix}: the service user connects from the CI deploy runners only",
    )
    CurrentAccount(
        scope,
        "account",
        provider=p.accountadmin,
        network_policy=account_policy.name,
        resource_monitor=monitor.name,  # the account-wide credit ceiling, on top of the per-warehouse monitors
        allow_client_mfa_caching=False,  # every human login into the CDE answers MFA (PCI DSS 8.4)
        periodic_data_rekeying=True,  # Business Critical: yearly re-encryption of data older than a year
        prevent_unload_to_inline_url=True,  # no COPY INTO 's3://...' with inline credentials: no exfiltration path
        require_storage_integration_for_stage_creation=True,
        require_storage_integration_for_stage_operation=True,
        # UTC, not Snowflake's America/Los_Angeles default: CURRENT_TIMESTAMP() into TIMESTAMP_NTZ columns must
        # agree with the UTC times the connectors land (finsight/time_zone.py); this resource owns the parameter
        timezone=time_zone.TIMEZONE,
    )
    return service_policy


def _human_mfa(scope: Construct, names: Names, p: Providers, database: Database) -> AuthenticationPolicy:
    """PCI DSS 8.4.2: every human login answers MFA. An authentication policy with MFA_ENROLLMENT = REQUIRED, set on
    the account for all person users (docs: "CREATE AUTHENTICATION POLICY"; "ALTER ACCOUNT SET AUTHENTICATION POLICY
    ... FOR ALL PERSON USERS"). Service users (TYPE = SERVICE, key pair) are not person users: it does not reach them.
    Humans sign in by password or SSO; key pair and tokens stay the services'."""
    schema = Schema(
        scope,
        "security-schema",
        provider=p.sysadmin,
        database=database.name,
        name=names.sf_security_schema,
        with_managed_access="true",
        comment=f"{names.prefix}: account security policies (cdktf)",
    )
    policy = AuthenticationPolicy(
        scope,
        "human-mfa-policy",
        provider=p.accountadmin,
        database=database.name,
        schema=schema.name,
        name=names.sf_human_mfa_policy,
        authentication_methods=["PASSWORD", "SAML"],
        mfa_enrollment="REQUIRED",
        comment=f"{names.prefix}: humans sign in with MFA (PCI DSS 8.4.2)",
    )
    AccountAuthenticationPolicyAttachment(
        scope,
        "human-mfa-on-account",
        provider=p.accountadmin,
        authentication_policy=policy.fully_qualified_name,
        for_all_person_users=True,
    )
    return policy


def _external_volume(scope: Construct, names: Names, p: Providers) -> ExternalVolume:
    """Where CURATED history older than curated_archive.hot_months lives, as Iceberg tables (AWS stack: bucket)."""
    return ExternalVolume(
        scope,
        "curated-archive-volume",
        provider=p.accountadmin,
        name=names.sf_archive_volume,
        allow_writes="true",
        storage_location=[
            ExternalVolumeStorageLocation(
                storage_location_name="primary",
                storage_provider="S3",
                storage_base_url=names.archive_location,
                storage_aws_role_arn=names.role_arn(names.snowflake_archive_role),
                storage_aws_external_id=names.sf_archive_external_id,
                encryption_type="AWS_SSE_KMS",
                encryption_kms_key_id=f"arn:aws:kms:{names.region}:{names.account_id}:{names.data_key_alias}",
            )
        ],
        comment=f"{names.prefix}: CURATED history as Iceberg (S3 lifecycle tiering)",
    )


def _key_pair_user(
    scope: Construct,
    names: Names,
    p: Providers,
    cid: str,
    name: str,
    role: str,
    warehouse: str,
    network_policy: str,
    key_variable: str,
    what: str,
) -> str:
    """A TYPE = SERVICE user (key pair only, one role per session) whose public key is a GitHub-sourced variable."""
    var = tfvars.variable(key_variable)
    key = TerraformVariable(scope, var.name, type="string", nullable=False, description=var.description)
    user = ServiceUser(
        scope,
        cid,
        provider=p.securityadmin,
        name=name,
        comment=f"{names.prefix} {what}",
        default_role=role,
        default_warehouse=warehouse,
        default_secondary_roles_option="NONE",
        rsa_public_key=key.string_value,
        network_policy=network_policy,
        timezone=time_zone.TIMEZONE,
    )
    return user.name


# What the read-only plan role may do: see objects, never own, create or grant (PCI DSS 7.2, issue 21 item 8).
PLAN_DATABASE_PRIVILEGES = ["USAGE", "MONITOR"]
PLAN_WAREHOUSE_PRIVILEGES = ["MONITOR"]
PLAN_ACCOUNT_PRIVILEGES = ["MONITOR"]


def _plan_identity(
    scope: Construct, names: Names, p: Providers, database: str, warehouses: dict[str, Warehouse], network_policy: str
) -> None:
    """The identity `terraform plan` runs as in plan jobs: every provider alias of this stack uses the profile the
    job writes (finsight.tfvars.snowflake_profiles), which names this role for a plan and the admin roles for an
    apply. Its key is a secret of the `<env>-plan` GitHub environments only; the deploy user's key is not there."""
    role = AccountRole(
        scope,
        "role-terraform-plan",
        provider=p.securityadmin,
        name=names.sf_plan_role,
        comment=f"{names.prefix} terraform plan: read-only",
    )
    _grant(scope, "plan-database", p, role.name, PLAN_DATABASE_PRIVILEGES, "DATABASE", database)
    for logical, wh in warehouses.items():
        _grant(scope, f"plan-wh-{logical}", p, role.name, PLAN_WAREHOUSE_PRIVILEGES, "WAREHOUSE", wh.name)
    GrantPrivilegesToAccountRole(
        scope,
        "plan-account-monitor",
        provider=p.accountadmin,
        account_role_name=role.name,
        privileges=PLAN_ACCOUNT_PRIVILEGES,
        on_account=True,
    )
    user = _key_pair_user(
        scope, names, p, "terraform-plan-user", names.sf_plan_user, role.name, warehouses["transform"].name,
        network_policy, "snowflake_plan_user_public_key", "terraform plan user (read-only; plan jobs only)",
    )  # fmt: skip
    GrantAccountRole(scope, "plan-role-to-plan-user", provider=p.securityadmin, role_name=role.name, user_name=user)


def build_snowflake_account(scope: Construct, names: Names, p: Providers) -> SnowflakeAccount:
    key_var = tfvars.variable("snowflake_service_user_public_key")
    public_key = TerraformVariable(
        scope,
        key_var.name,
        type="string",
        nullable=False,
        description=f"{key_var.description}; the private half is in Secrets Manager as "
        f"{names.env.secrets.snowflake_service_user}",
    )
    database = Database(scope, "database", provider=p.sysadmin, name=names.sf_database, comment=names.prefix)
    warehouses, monitors = _warehouses(scope, names, p)
    account_monitor = ResourceMonitor(
        scope,
        "rm-account",
        provider=p.accountadmin,
        name=names.sf_account_monitor,
        credit_quota=account_credit_quota(names.env),
        notify_triggers=ACCOUNT_NOTIFY_AT_PERCENT,
        suspend_trigger=SUSPEND_AT_PERCENT,
        suspend_immediate_trigger=SUSPEND_IMMEDIATELY_AT_PERCENT,
    )
    service_policy = _account_security(scope, names, p, account_monitor)
    _human_mfa(scope, names, p, database)

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
    volume = _external_volume(scope, names, p)

    roles = {
        "pipeline": names.sf_pipeline_role,
        "loader": names.sf_loader_role,
        "analyst": names.sf_analyst_role,
        "pii_reader": names.sf_pii_reader_role,
        "governance": names.sf_governance_role,
        "archiver": names.sf_archiver_role,
    }
    account_roles = {
        key: AccountRole(scope, f"role-{key}", provider=p.securityadmin, name=name, comment=f"{names.prefix} {key}")
        for key, name in roles.items()
    }
    for key, parent in ROLE_PARENTS.items():
        if parent is not None:
            GrantAccountRole(
                scope,
                f"{key}-to-{parent.lower()}",
                provider=p.securityadmin,
                role_name=account_roles[key].name,
                parent_role_name=parent,
            )
    # PII readers see what analysts see (and, through the masking policies, clear PII); the pipeline loads as loader.
    for child, parent in (("analyst", "pii_reader"), ("loader", "pipeline")):
        GrantAccountRole(
            scope,
            f"{child}-to-{parent.replace('_', '-')}",
            provider=p.securityadmin,
            role_name=account_roles[child].name,
            parent_role_name=account_roles[parent].name,
        )

    pipeline = account_roles["pipeline"].name
    _grant(scope, "pipeline-database", p, pipeline, ["USAGE", "MONITOR", "CREATE SCHEMA"], "DATABASE", database.name)
    for logical, wh in warehouses.items():
        _grant(scope, f"pipeline-wh-{logical}", p, pipeline, ["USAGE", "OPERATE", "MONITOR"], "WAREHOUSE", wh.name)
    for cid, integration in (("storage", storage.name), ("notification", notification.name)):
        _grant(scope, f"pipeline-{cid}-integration", p, pipeline, ["USAGE"], "INTEGRATION", integration)
    _grant(scope, "pipeline-archive-volume", p, pipeline, ["USAGE"], "EXTERNAL VOLUME", volume.name)
    GrantPrivilegesToAccountRole(
        scope,
        "pipeline-tasks",
        provider=p.accountadmin,  # EXECUTE TASK is an account privilege only ACCOUNTADMIN can grant
        account_role_name=pipeline,
        privileges=["EXECUTE TASK", "EXECUTE MANAGED TASK"],
        on_account=True,
    )
    _data_metric_grants(scope, p, pipeline)
    _grant(scope, "loader-wh-load", p, account_roles["loader"].name, ["USAGE"], "WAREHOUSE", warehouses["load"].name)
    for key in ("analyst", "pii_reader", "loader", "archiver"):
        _grant(scope, f"{key}-database", p, account_roles[key].name, ["USAGE"], "DATABASE", database.name)
    archiver = account_roles["archiver"].name
    # the retention graph's archive task runs on the transform warehouse, as the procedure's owner
    _grant(scope, "archiver-wh", p, archiver, ["USAGE"], "WAREHOUSE", warehouses["transform"].name)
    _grant(scope, "archiver-archive-volume", p, archiver, ["USAGE"], "EXTERNAL VOLUME", volume.name)

    governance = account_roles["governance"].name
    # The governance role creates its own GOVERNANCE schema (migrations-governance/) and applies its
    # policies to tables it does not own: that needs the account-level APPLY privileges, which nobody else holds.
    _grant(scope, "governance-database", p, governance, ["USAGE", "CREATE SCHEMA"], "DATABASE", database.name)
    _grant(scope, "governance-wh", p, governance, ["USAGE"], "WAREHOUSE", warehouses["transform"].name)
    GrantPrivilegesToAccountRole(
        scope,
        "governance-apply-policies",
        provider=p.accountadmin,
        account_role_name=governance,
        privileges=["APPLY MASKING POLICY", "APPLY ROW ACCESS POLICY", "APPLY PASSWORD POLICY"],
        on_account=True,
    )

    user = ServiceUser(
        scope,
        "service-user",
        provider=p.securityadmin,
        name=names.sf_user,
        comment=f"{names.prefix} pipeline service user (key-pair auth only)",
        default_role=pipeline,
        default_warehouse=warehouses["load"].name,
        default_secondary_roles_option="NONE",  # a session holds exactly one role: the one it USEs
        rsa_public_key=public_key.string_value,
        network_policy=service_policy.name,
        timezone=time_zone.TIMEZONE,  # user default, should the account's ever change (sessions set it too)
    )
    GrantAccountRole(scope, "pipeline-to-user", provider=p.securityadmin, role_name=pipeline, user_name=user.name)
    # The governance role goes to its own deploy user only (migrations-governance/, `finsight migrate`): the pipeline's
    # service user, its key and the tasks it owns can neither create, alter nor detach a policy.
    governance_user = _key_pair_user(
        scope, names, p, "governance-deploy-user", names.sf_governance_user, governance,
        warehouses["transform"].name, service_policy.name, "snowflake_governance_user_public_key",
        f"governance deploy user (migrations-governance/); key in Secrets Manager as "
        f"{names.env.secrets.snowflake_governance_user}",
    )  # fmt: skip
    GrantAccountRole(
        scope, "governance-to-deploy-user", provider=p.securityadmin, role_name=governance, user_name=governance_user
    )
    _plan_identity(scope, names, p, database.name, warehouses, service_policy.name)
    return SnowflakeAccount(
        storage_integration=storage,
        notification_integration=notification,
        warehouses=warehouses,
        resource_monitors=monitors,
        account_monitor=account_monitor,
    )
