"""Every resource name, ARN and per-source fact the stacks use, derived once from the environment config.

Modules never format a name themselves: they ask `Names`. Names that the config spells out (bucket, KMS alias,
database, role, user, secrets, alert topics) are taken verbatim; the rest follow `<project>-<env>-<purpose>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from finsight import catalog, iam_policy
from finsight.config import Environment
from finsight.config.models import CuratedArchive, Release, SnowflakeIdentities
from finsight.iam_policy import PROJECT

# PCI DSS 10.5.1 keeps audit trails for at least 12 months; every log group in these stacks follows it.
LOG_RETENTION_DAYS = 365
# Stack kinds synthesized per environment (directory names under cdktf.out/stacks/).
STACK_KINDS = ("aws", "snowflake")

SourceKind = Literal["postgres", "api"]


@dataclass(frozen=True)
class Source:
    """One extraction unit: one ECS task definition, task role, log group and pair of schedules."""

    name: str
    kind: SourceKind
    secret: str  # Secrets Manager secret *name* from config
    needs_pan_key: bool  # tokenizes card numbers in the connector, so it reads the HMAC key
    enabled: bool = True  # False: its connector is not in the image yet, so its schedules are created DISABLED


@dataclass(frozen=True)
class Names:
    env: Environment

    # -- basics ---------------------------------------------------------------------------
    @property
    def env_name(self) -> str:
        return self.env.name

    @property
    def prefix(self) -> str:
        return iam_policy.resource_prefix(self.env)

    @property
    def region(self) -> str:
        return self.env.aws.region

    @property
    def account_id(self) -> str:
        return self.env.aws.account_id

    def stack_id(self, kind: str) -> str:
        return f"{self.prefix}-{kind}"

    @property
    def tags(self) -> dict[str, str]:
        return {"project": PROJECT, "environment": self.env.name, "managed-by": "cdktn"}

    # -- sources ----------------------------------------------------------------------------
    @cached_property
    def sources(self) -> tuple[Source, ...]:
        out: list[Source] = []
        for name, pg in self.env.postgres_sources.items():
            assert pg.connection is not None  # the model validator guarantees it
            out.append(Source(name, "postgres", pg.connection.secret, iam_policy.needs_pan_key(self.env, name)))
        for name, api in self.env.api_sources.items():
            out.append(Source(name, "api", api.secret, iam_policy.needs_pan_key(self.env, name), api.enabled))
        clashes = set(self.env.postgres_sources) & set(self.env.api_sources)
        if clashes:  # one name = one S3 prefix, task role, secret and schedule: they must not collide
            raise ValueError(f"source names used by both postgres_sources and api_sources: {sorted(clashes)}")
        return tuple(out)

    # -- remote state -------------------------------------------------------------------------
    @property
    def state_bucket(self) -> str:
        # account id keeps the name globally unique; created once per account by the bootstrap (see state.py)
        return f"{self.prefix}-tfstate-{self.account_id}"

    def state_key(self, kind: str) -> str:
        return f"{self.env.name}/{kind}.tfstate"

    # -- S3 / KMS -----------------------------------------------------------------------------
    @property
    def raw_bucket(self) -> str:
        return self.env.aws.s3.bucket

    @property
    def raw_prefix(self) -> str:
        return self.env.aws.s3.raw_prefix

    @property
    def archive(self) -> CuratedArchive:
        assert self.env.curated_archive is not None
        return self.env.curated_archive

    @property
    def archive_location(self) -> str:
        return f"s3://{self.archive.bucket}/{self.archive.prefix}/"

    @property
    def access_log_bucket(self) -> str:
        return f"{self.raw_bucket}-access-logs"

    def source_prefix(self, source: str) -> str:
        """Everything one connector lands (data, PK snapshots, manifests): finsight.catalog's layout."""
        return iam_policy.source_prefix(self.env, source)

    def source_state_prefix(self, source: str) -> str:
        """Where one connector keeps its watermarks (read + write)."""
        return iam_policy.source_state_prefix(source)

    @property
    def data_key_alias(self) -> str:
        return self.env.aws.s3.kms_key_alias

    @property
    def secrets_key_alias(self) -> str:
        return f"alias/{self.prefix}-secrets"

    @property
    def ops_key_alias(self) -> str:
        return f"alias/{self.prefix}-ops"

    # -- events and alerts ----------------------------------------------------------------------
    @property
    def raw_events_topic(self) -> str:
        return catalog.raw_events_topic(self.env)  # the pipes in migrations/ subscribe to it by this name

    @property
    def pipeline_events_queue(self) -> str:
        return f"{self.prefix}-raw-landed-events"

    @property
    def pipeline_events_dlq(self) -> str:
        return f"{self.pipeline_events_queue}-dlq"

    @property
    def scheduler_dlq(self) -> str:
        return f"{self.prefix}-scheduler-dlq"

    @property
    def alert_topics(self) -> dict[str, str]:
        return dict(self.env.aws.alert_topics)

    def sns_arn(self, topic: str) -> str:
        return f"arn:aws:sns:{self.region}:{self.account_id}:{topic}"

    def alarm(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    # -- quarantine of files Snowpipe could not load (finsight/quarantine.py as a Lambda) ------------------
    @property
    def quarantine_function(self) -> str:
        return f"{self.prefix}-quarantine"

    @property
    def quarantine_role(self) -> str:
        return iam_policy.quarantine_role_name(self.env)

    @property
    def quarantine_dlq(self) -> str:
        return f"{self.prefix}-quarantine-dlq"

    @property
    def quarantine_log_group(self) -> str:
        return f"/aws/lambda/{self.quarantine_function}"  # where Lambda writes a function's logs

    @property
    def quarantine_prefix(self) -> str:
        return catalog.QUARANTINE_PREFIX  # s3://<raw bucket>/quarantine/<original key>

    @property
    def load_errors_records_prefix(self) -> str:
        return catalog.load_errors_records_prefix(self.env)  # what the LOAD_ERRORS pipe copies (migrations/)

    # -- network --------------------------------------------------------------------------------
    def net(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    # -- compute --------------------------------------------------------------------------------
    @property
    def cluster(self) -> str:
        return f"{self.prefix}-connectors"

    @property
    def release(self) -> Release:
        assert self.env.release is not None  # cloud environments require it (config validation)
        return self.env.release

    @property
    def release_repository_arn(self) -> str:
        """The shared ECR repository the build job pushes to; every environment pulls the same digest from it."""
        return self.release.repository_arn()

    def task_family(self, source: str) -> str:
        return f"{self.prefix}-connector-{source}"

    @property
    def container_name(self) -> str:
        return "connector"

    def log_group(self, source: str) -> str:
        return f"/{PROJECT}/{self.env.name}/connectors/{source}"

    def platform_log_group(self, what: str) -> str:
        return f"/{PROJECT}/{self.env.name}/{what}"

    @property
    def schedule_group(self) -> str:
        return f"{self.prefix}-connectors"

    def schedule(self, source: str, mode: str) -> str:
        return f"{self.prefix}-{source}-{mode}"

    # -- IAM --------------------------------------------------------------------------------------
    def task_role(self, source: str) -> str:
        return iam_policy.task_role_name(self.env, source)

    def execution_role(self, source: str) -> str:
        return f"{self.prefix}-exec-{source}"

    @property
    def scheduler_role(self) -> str:
        return f"{self.prefix}-scheduler"

    @property
    def flow_logs_role(self) -> str:
        return f"{self.prefix}-vpc-flow-logs"

    @property
    def snowflake_storage_role(self) -> str:
        return iam_policy.snowflake_storage_role_name(self.env)

    @property
    def snowflake_alerts_role(self) -> str:
        return iam_policy.alert_publisher_role_name(self.env)

    @property
    def snowflake_archive_role(self) -> str:
        return f"{self.prefix}-snowflake-archive"

    @property
    def pan_key_rotator_role(self) -> str:
        return f"{self.prefix}-pan-key-rotator"

    def role_arn(self, role_name: str) -> str:
        return iam_policy.role_arn(self.env, role_name)

    def secret_arn_pattern(self, secret_name: str) -> str:
        return iam_policy.secret_arn_pattern(self.env, secret_name)

    # -- Snowflake ----------------------------------------------------------------------------------
    def _sf(self, *parts: str) -> str:
        # same convention as Snowflake.warehouse_name and the catalog: <DATABASE>_<PURPOSE>
        return "_".join([self.env.snowflake.database, *parts]).upper()

    @property
    def sf_database(self) -> str:
        return self.env.snowflake.database

    @property
    def sf_pipeline_role(self) -> str:
        return self.env.snowflake.role

    @property
    def sf_analyst_role(self) -> str:
        return self._sf("analyst")

    @property
    def sf_pii_reader_role(self) -> str:
        return self._sf("pii", "reader")

    @property
    def sf_loader_role(self) -> str:
        return self._sf("loader")

    @property
    def sf_governance_role(self) -> str:
        return self._sf("governance")

    @property
    def sf_archiver_role(self) -> str:
        return self._sf("archiver")

    # account security objects that live in a schema (authentication policies), apart from the data schemas
    sf_security_schema = "SECURITY"
    sf_human_mfa_policy = "HUMAN_MFA"

    @property
    def sf_account_monitor(self) -> str:
        return self._sf("account", "rm")

    @property
    def sf_account_network_policy(self) -> str:
        return self._sf("account", "np")

    @property
    def sf_service_network_policy(self) -> str:
        return self._sf("service", "np")

    @property
    def sf_archive_volume(self) -> str:
        # the archive migration and the ARCHIVE_CURATED task name the same volume: one derivation, in the catalog
        return catalog.archive_volume(self.env)

    @property
    def sf_archive_external_id(self) -> str:
        return f"{self.prefix}-snowflake-archive"

    @property
    def sf_identities(self) -> SnowflakeIdentities | None:
        """Snowflake's IAM user + SNS external id once recorded in config; None on a fresh account."""
        assert self.env.governance is not None
        return self.env.governance.identities

    @property
    def sf_user(self) -> str:
        return self.env.snowflake.user

    @property
    def sf_governance_user(self) -> str:
        # the one user holding the governance role: `finsight migrate` runs migrations-governance/ as it
        return catalog.governance_deploy_user(self.env)

    @property
    def sf_plan_user(self) -> str:
        return catalog.terraform_plan_identity(self.env)

    @property
    def sf_plan_role(self) -> str:
        return catalog.terraform_plan_identity(self.env)

    def sf_warehouse(self, logical: str) -> str:
        return self.env.snowflake.warehouse_name(logical)  # the same name connectors and tasks connect with

    def sf_resource_monitor(self, logical: str) -> str:
        return self._sf(logical, "rm")

    @property
    def sf_storage_integration(self) -> str:
        # the name migrations/ reference in CREATE STAGE ... STORAGE_INTEGRATION (rendered from finsight.catalog)
        return catalog.storage_integration(self.env)

    @property
    def sf_notification_integration(self) -> str:
        return catalog.error_integration(self.env)  # migrations/ and the Task DAG name it as ERROR_INTEGRATION

    @property
    def sf_storage_external_id(self) -> str:
        # we choose the external id (not a secret: it only prevents confused-deputy use of the role)
        return f"{self.prefix}-snowflake-storage"

    @property
    def raw_location(self) -> str:
        return f"s3://{self.raw_bucket}/{self.raw_prefix}/"
