"""The one configuration model every layer reads: connectors, SQL, DAG, IaC and cost.

Table and object names are *derived* here (``Table.raw_name`` ...) so nobody types them twice.
"""

from __future__ import annotations

import re
from enum import StrEnum
from ipaddress import IPv4Address
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finsight.config.quality import Quality

IDENT = r"^[a-z][a-z0-9_]*$"
Identifier = Annotated[str, Field(pattern=IDENT)]


class Strict(BaseModel):
    """Unknown keys are errors: a typo in YAML must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PciClass(StrEnum):
    """How a column is protected before it leaves the connector."""

    NONE = "none"
    PII = "pii"  # lands as-is, masked in Snowflake for non-privileged roles
    PAN = "pan"  # card number: tokenized (HMAC) in the connector, only last4 lands in clear


LOGICAL_TYPES = re.compile(r"^(string|int|bigint|bool|timestamp|date|json|decimal\(\d{1,2},\d{1,2}\))$")


class Column(Strict):
    type: str
    pci: PciClass = PciClass.NONE
    nullable: bool = True
    references: str | None = Field(
        default=None, description="<source>.<table>.<column> this column points to (referential integrity)"
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        v = v.replace(" ", "")
        if not LOGICAL_TYPES.match(v):
            raise ValueError(
                f"unknown column type {v!r}; use string, int, bigint, bool, timestamp, date, json or decimal(p,s)"
            )
        return v

    @field_validator("references")
    @classmethod
    def _three_parts(cls, v: str | None) -> str | None:
        if v is not None and len(v.split(".")) != 3:
            raise ValueError(f"references must be <source>.<table>.<column>, got {v!r}")
        return v


class DeleteDetection(StrEnum):
    NONE = "none"  # append-only or soft-deleted tables
    PK_SNAPSHOT = "pk_snapshot"  # hard deletes found by diffing all source primary keys (small tables)
    RANGE_HASH = "range_hash"  # per-key-range fingerprints; keys fetched only where a range changed (any size)


class Table(Strict):
    primary_key: list[Identifier] = Field(min_length=1)
    cursor: Identifier = Field(description="monotonic column used for incremental extraction")
    deletes: DeleteDetection = DeleteDetection.NONE
    delete_check_every_minutes: int | None = Field(
        default=None, ge=0, le=10080, description="cadence of range_hash delete checks (default: connectors')"
    )
    columns: dict[Identifier, Column] = Field(min_length=1)

    # filled in by the parent source so a table knows its own fully qualified names
    name: str = ""
    source: str = ""

    @field_validator("columns", mode="before")
    @classmethod
    def _shorthand(cls, v: object) -> object:
        # `amount: decimal(18,2)` is shorthand for `amount: {type: decimal(18,2)}`
        if isinstance(v, dict):
            return {k: {"type": c} if isinstance(c, str) else c for k, c in v.items()}
        return v

    @model_validator(mode="after")
    def _keys_exist(self) -> Table:
        for col in [*self.primary_key, self.cursor]:
            if col not in self.columns:
                raise ValueError(f"key column {col!r} is not among the table's columns")
        return self

    @property
    def qualified(self) -> str:
        return f"{self.source}.{self.name}"

    @property
    def raw_name(self) -> str:
        """Name of the RAW landing table and of the S3 prefix folder (one table, one name)."""
        return f"{self.source}__{self.name}".upper()

    @property
    def curated_name(self) -> str:
        return self.raw_name

    def landed_columns(self) -> dict[str, Column]:
        """Columns as they land in S3/RAW: PAN columns become a token plus last4, never the clear value."""
        out: dict[str, Column] = {}
        for col_name, col in self.columns.items():
            if col.pci is PciClass.PAN:
                out[f"{col_name}_token"] = Column(type="string", pci=PciClass.NONE, nullable=col.nullable)
                out[f"{col_name}_last4"] = Column(type="string", pci=PciClass.NONE, nullable=col.nullable)
            else:
                out[col_name] = col
        return out


class Connection(Strict):
    host: str
    port: int = Field(ge=1, le=65535)
    database: str
    secret: str = Field(description="Secrets Manager secret name holding {username, password}")
    sslmode: Literal["disable", "require", "verify-full"] = "verify-full"
    sslrootcert: str | None = Field(
        default=None,
        description="CA bundle the server certificate must chain to (verify-full): the RDS global bundle in the "
        "connector image; locally the CA `finsight local up` creates, relative to the repository like state_dir",
    )

    def ca_file(self, root: Path) -> Path | None:
        """`sslrootcert` as a file: a relative path (the local CA) is under the repository `root` (repo_root())."""
        if not self.sslrootcert:
            return None
        path = Path(self.sslrootcert)
        return path if path.is_absolute() else root / path


class PostgresSource(Strict):
    description: str
    owner: str = "@finsight/data-engineering"
    tables: dict[Identifier, Table] = Field(min_length=1)
    connection: Connection | None = None  # filled from `postgres_defaults` when absent


RAW_PAYLOAD = "_raw"  # every API stream lands its whole record (PANs tokenized) in this VARIANT column


class ApiColumn(Column):
    path: str | None = Field(
        default=None, description="dotted path of the field in the API record (default: the column's own name)"
    )


class ApiStream(Table):
    """An API stream is a table like any other (RAW, CURATED, pipe, MERGE task), keyed by flattened fields.

    `columns` are the configured key fields flattened out of the record and typed; the whole record lands beside
    them in `_raw` (VARIANT), so nothing the API sends is lost when the provider adds fields.
    """

    path: str = Field(description="endpoint path relative to the source's base_url")
    columns: dict[Identifier, ApiColumn] = Field(min_length=1)  # type: ignore[assignment]

    def path_of(self, column: str) -> str:
        return self.columns[column].path or column

    def landed_columns(self) -> dict[str, Column]:
        return {**super().landed_columns(), RAW_PAYLOAD: Column(type="json")}


class ApiSource(Strict):
    kind: Literal["stripe", "paypal", "adyen", "fx"]
    description: str
    owner: str = "@finsight/data-engineering"
    base_url: str
    secret: str
    rate_limit_per_second: float = Field(gt=0)
    streams: dict[Identifier, ApiStream] = Field(min_length=1)
    enabled: bool = Field(
        default=False, description="the image ships this API connector: schedules run (created DISABLED until then)"
    )
    lookback_minutes: int = Field(
        default=0, ge=0, description="re-read this much before the watermark: records the provider updates late"
    )
    initial_days: int = Field(default=30, gt=0, description="how far back the first run (no watermark yet) reads")
    hosts: list[str] = Field(
        default_factory=list, description="extra egress hosts the connector needs (OAuth, report downloads)"
    )

    @property
    def credential_fields(self) -> tuple[str, ...]:
        """The keys of this provider's secret: PayPal authenticates with an OAuth client, the others with one key."""
        return ("client_id", "client_secret") if self.kind == "paypal" else ("api_key",)

    @field_validator("base_url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("base_url must be https:// (plain http is allowed only for the local stack)")
        return v


class Warehouse(Strict):
    size: Literal["XSMALL", "SMALL", "MEDIUM", "LARGE", "XLARGE", "XXLARGE"]
    auto_suspend_seconds: int = Field(ge=60, le=3600)
    minutes_per_hourly_run: float = Field(ge=0, description="expected busy minutes per hourly cycle (cost model)")
    minutes_per_daily_backfill: float = Field(default=0, ge=0)


class Snowflake(Strict):
    account: str
    database: str
    role: str
    user: str
    warehouses: dict[Literal["load", "transform"], Warehouse]
    schemas: dict[Literal["raw", "curated", "marts", "ops"], str] = {
        "raw": "RAW",
        "curated": "CURATED",
        "marts": "MARTS",
        "ops": "OPS",
    }
    change_history_schema: str = "SCHEMACHANGE"

    def warehouse_name(self, logical: str) -> str:
        """Physical warehouse name for a logical one ("load", "transform"), e.g. FINSIGHT_PROD_LOAD_WH."""
        return f"{self.database}_{logical.upper()}_WH"

    def qualified(self, layer: str, table: str) -> str:
        """DATABASE.SCHEMA.TABLE for a layer (raw, curated, marts, ops)."""
        return f"{self.database}.{self.schemas[layer]}.{table}"  # type: ignore[index]


class S3(Strict):
    bucket: str
    raw_prefix: str = "raw"
    kms_key_alias: str

    @field_validator("raw_prefix")
    @classmethod
    def _no_slashes(cls, v: str) -> str:
        if v.startswith("/") or v.endswith("/"):
            raise ValueError("raw_prefix takes no leading or trailing '/'")
        return v


class Aws(Strict):
    region: str
    account_id: str = Field(pattern=r"^\d{12}$")
    endpoint_url: str | None = Field(default=None, description="local stack only: moto server")
    s3: S3
    alert_topics: dict[Literal["data_engineering", "devops"], str]


class Schedule(Strict):
    hourly_cron: str
    timezone: str = "UTC"
    sla_minutes: int = Field(gt=0, le=60)
    backfill_cron: str
    backfill_chunk_days: int = Field(gt=0)
    retention_cron: str = Field(
        default="0 3 * * ? *", description="daily retention graph: RAW pruning, 7-year CURATED/MARTS retention"
    )


class Retention(Strict):
    raw_days: int = Field(gt=0)
    raw_infrequent_access_after_days: int = Field(gt=0)
    curated_years: int = Field(gt=0)
    raw_table_days: int = Field(
        default=14, gt=0, description="RAW (transient) rows are pruned this many days after their batch merged"
    )


class ConnectorRuntime(Strict):
    cpu: Literal[256, 512, 1024, 2048, 4096, 8192, 16384]
    memory_mb: int = Field(ge=512)
    parallel_tables: int = Field(ge=1, le=64)
    rows_per_file: int = Field(ge=1000)
    cursor_lookback_minutes: int = Field(
        default=10, ge=0, description="re-read this much before the watermark: late-committing transactions"
    )
    minutes_per_hourly_run: float = Field(ge=0, description="expected task runtime per source per hour (cost)")
    max_file_mb: int = Field(
        default=128, ge=1, le=1024, description="a landed Parquet part is closed at this size (Snowpipe: 100-250 MB)"
    )
    chunks_per_table: int = Field(
        default=1, ge=1, le=64, description="parallel key-range reads of one large table (one snapshot)"
    )
    chunk_min_rows: int = Field(
        default=2_000_000, ge=1, description="tables estimated smaller than this are read in one chunk"
    )
    delete_check_every_minutes: int = Field(
        default=60, ge=0, le=10080, description="default cadence of range_hash delete checks (0: every run)"
    )
    delete_check_ranges: int = Field(
        default=64, ge=1, description="key ranges compared by count+hash between source and CURATED per delete check"
    )
    # HTTP policy of the API connectors: retries (5xx, timeouts, non-JSON bodies) back off exponentially with jitter
    api_read_timeout_seconds: float = Field(default=30, gt=0)
    api_max_retries: int = Field(default=5, ge=0, le=10)
    api_backoff_factor: float = Field(default=1.0, gt=0, description="seconds; wait factor * 2**attempt + jitter")
    api_backoff_jitter_seconds: float = Field(default=0.5, ge=0)


class Local(Strict):
    """Ports and paths of the embedded local stack (only the `local` environment has this)."""

    postgres_port: int
    moto_port: int
    fakesnow_port: int
    mock_api_port: int
    state_dir: str = ".local"
    scale: float = Field(default=1.0, gt=0, description="synthetic data scale factor")
    seed: int = 42
    strict_snowflake: bool = Field(
        default=True, description="the local Snowflake refuses what Snowflake refuses (finsight.conformance.rules)"
    )
    strict_iam: bool = Field(
        default=True,
        description="moto enforces IAM: each connector acts as its source's task role, the local Snowflake's S3 "
        "reads as the storage role (finsight.iam_policy, the statements cdktf deploys)",
    )


class Secrets(Strict):
    """Secrets Manager secret *names*: values are never in config, code, logs or errors."""

    snowflake_service_user: str
    # the governance deploy user's key (migrations-governance/): the pipeline's service user never holds that role
    snowflake_governance_user: str
    pan_tokenization_key: str


class Budget(Strict):
    monthly_usd: float = Field(gt=0, description="this environment's allocation of the platform cap")
    required_headroom: float = Field(
        ge=0, lt=1, description="kept free under platform_monthly_usd by the sum of the allocations"
    )
    platform_monthly_usd: float = Field(
        default=18000, gt=0, description="the cap for dev + staging + prod together (`finsight cost --env all`)"
    )
    aws_monthly_usd: float | None = Field(
        default=None,
        gt=0,
        description="AWS Budgets limit: the AWS share of the allocation (Snowflake bills apart: resource monitors)",
    )
    aws_forecast_alert_percents: list[float] = Field(default=[100], description="of aws_monthly_usd, forecasted")
    aws_actual_alert_percents: list[float] = Field(default=[80, 100], description="of aws_monthly_usd, actual")

    @model_validator(mode="after")
    def _aws_within_allocation(self) -> Budget:
        if self.aws_monthly_usd is not None and self.aws_monthly_usd > self.monthly_usd:
            raise ValueError(f"aws_monthly_usd {self.aws_monthly_usd:g} exceeds the allocation {self.monthly_usd:g}")
        for p in (*self.aws_forecast_alert_percents, *self.aws_actual_alert_percents):
            if not 0 < p <= 1000:
                raise ValueError(f"alert threshold {p:g} % must be in (0, 1000]")
        return self


class Release(Strict):
    """The one connector image: built once into a shared ECR repository, promoted by digest to every environment."""

    ecr_account_id: str = Field(pattern=r"^\d{12}$", description="AWS account holding the shared repository")
    ecr_region: str
    ecr_repository: str = Field(pattern=r"^[a-z0-9][a-z0-9._/-]*$")

    def registry(self) -> str:
        return f"{self.ecr_account_id}.dkr.ecr.{self.ecr_region}.amazonaws.com"

    def repository_arn(self) -> str:
        return f"arn:aws:ecr:{self.ecr_region}:{self.ecr_account_id}:repository/{self.ecr_repository}"


class SourceNetwork(Strict):
    """How the connectors reach the PostgreSQL sources (private routing) and what it costs per GB."""

    postgres_cidr: str = Field(description="CIDR of the private network holding the PostgreSQL sources")
    transit: Literal["transit_gateway", "vpc_peering_same_az", "vpc_peering_cross_az"] = "transit_gateway"
    rotation_lambda_arn: str = Field(
        pattern=r"^arn:aws:lambda:", description="Secrets Manager rotation Lambda for PostgreSQL credentials"
    )

    @field_validator("postgres_cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        import ipaddress

        try:
            ipaddress.ip_network(v)
        except ValueError as exc:
            raise ValueError(f"{v!r} is not a CIDR block: {exc}") from None
        return v


class PasswordPolicy(Strict):
    """PCI DSS 8.3 for human Snowflake users (service users authenticate by key pair and have no password)."""

    min_length: int = Field(default=14, ge=12)
    max_age_days: int = Field(default=90, ge=1, le=90)
    max_retries: int = Field(default=6, ge=1, le=10)
    lockout_time_mins: int = Field(default=30, ge=30)
    history: int = Field(default=4, ge=4)


class SnowflakeIdentities(Strict):
    """Identities Snowflake generates for the account's integrations (`DESC INTEGRATION`), recorded after the first
    apply of the Snowflake stack. Until they are here, the AWS stack creates no role that trusts Snowflake, so both
    stacks plan and apply independently on a fresh account (no cross-stack state)."""

    aws_iam_user_arn: str = Field(pattern=r"^arn:aws:iam::\d{12}:user/", description="STORAGE_AWS_IAM_USER_ARN")
    sns_external_id: str = Field(min_length=1, description="SF_AWS_EXTERNAL_ID of the notification integration")


class Governance(Strict):
    """Snowflake access control: who may connect from where, who sees PII, and the password rules for humans."""

    account_allowed_cidrs: list[str] = Field(
        min_length=1, description="account network policy: corporate VPN egress (the deploy runners are added)"
    )
    service_user_allowed_cidrs: list[str] = Field(
        default_factory=list, description="extra ranges for the service user beyond the deploy runners (none)"
    )
    # Snowflake-reaching jobs (plan, apply) run on self-hosted runners inside this environment's VPC, so their
    # egress is the NAT gateways' Elastic IPs (network.nat_egress_ips), which the network policies allow.
    deploy_runner_labels: list[str] = Field(
        min_length=1, description="runs-on labels of the self-hosted deploy runners in this environment's VPC"
    )
    row_access_column: Identifier | None = Field(
        default=None, description="CURATED tables with this column get the entitlement row-access policy"
    )
    password_policy: PasswordPolicy = PasswordPolicy()
    identities: SnowflakeIdentities | None = None
    pan_key_rotators: list[Annotated[str, Field(pattern=r"^arn:aws:iam::\d{12}:role/")]] = Field(
        min_length=1, description="IAM roles (the security team's) that may assume the PAN-key rotator role, with MFA"
    )

    @field_validator("account_allowed_cidrs", "service_user_allowed_cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        import ipaddress

        for cidr in v:
            net = ipaddress.ip_network(cidr, strict=True)
            if net.prefixlen == 0:
                raise ValueError(f"{cidr!r} allows the whole internet; list the egress ranges")
        return v


class CuratedArchive(Strict):
    """CURATED history older than `hot_months` lives as Apache Iceberg tables on S3 (Snowflake external volume),
    tiered by S3 lifecycle; recent months stay in native Snowflake storage."""

    hot_months: int = Field(ge=1, description="months of CURATED kept in native Snowflake storage")
    bucket: str
    prefix: str = "curated-archive"
    infrequent_access_after_days: int = Field(default=30, ge=30)
    glacier_ir_after_days: int = Field(default=90, ge=90)

    @model_validator(mode="after")
    def _tiers(self) -> CuratedArchive:
        if self.glacier_ir_after_days <= self.infrequent_access_after_days:
            raise ValueError("glacier_ir_after_days must come after infrequent_access_after_days")
        return self


class NetworkLayout(Strict):
    """The connectors' VPC: what the IaC builds and the cost model counts (tests keep the two equal)."""

    vpc_cidr: str = "10.64.0.0/16"  # environments live in separate AWS accounts, so they share one address plan
    availability_zones: int = Field(default=2, ge=1, le=3)
    # One NAT gateway: only the payment-API connectors use it, for an hourly batch a missed run is picked up by the
    # next cursor window, so a single-AZ egress is an accepted risk (the private subnets still span every AZ).
    nat_gateways: int = Field(default=1, ge=1, le=3)
    # AWS APIs the tasks call, reached privately (S3 has a free gateway endpoint besides these).
    interface_endpoints: list[str] = ["secretsmanager", "ecr.api", "ecr.dkr", "logs"]
    # The NAT gateways' Elastic IPs as the AWS stack's output `nat_egress_ips` reports them after its first apply
    # (docs/promotion.md, fresh accounts): the deploy runners' egress, allowed by the Snowflake network policies.
    nat_egress_ips: list[IPv4Address] = []

    @model_validator(mode="after")
    def _nats_fit(self) -> NetworkLayout:
        if self.nat_gateways > self.availability_zones:
            raise ValueError("nat_gateways: at most one per availability zone")
        if self.nat_egress_ips and len(self.nat_egress_ips) != self.nat_gateways:
            raise ValueError(
                f"nat_egress_ips: {len(self.nat_egress_ips)} addresses for {self.nat_gateways} NAT gateways; "
                "record every address of the AWS stack output nat_egress_ips"
            )
        return self

    @property
    def deploy_runner_cidrs(self) -> list[str]:
        """The deploy runners' egress as /32 network-policy entries (they leave the VPC through the NATs)."""
        return [f"{ip}/32" for ip in self.nat_egress_ips]


class Environment(Strict):
    name: Literal["local", "dev", "staging", "prod"]
    schedule: Schedule
    retention: Retention
    snowflake: Snowflake
    aws: Aws
    connectors: ConnectorRuntime
    budget: Budget
    postgres_sources: dict[Identifier, PostgresSource] = Field(min_length=1)
    api_sources: dict[Identifier, ApiSource] = Field(min_length=1)
    secrets: Secrets
    local: Local | None = None
    release: Release | None = None
    source_network: SourceNetwork | None = None
    governance: Governance | None = None
    curated_archive: CuratedArchive | None = None
    network: NetworkLayout = NetworkLayout()
    quality: Quality = Quality()  # data-quality checks: defaults for every table, per-table overrides

    @model_validator(mode="after")
    def _check(self) -> Environment:
        for src_name, src in self.postgres_sources.items():
            if src.connection is None:
                raise ValueError(f"postgres_sources.{src_name}: no connection and no postgres_defaults")
            if src.connection.sslmode == "verify-full" and not src.connection.sslrootcert:
                # without a CA file libpq falls back to ~/.postgresql/root.crt: a per-machine accident, never config
                raise ValueError(
                    f"{self.name}: postgres_sources.{src_name}.connection.sslrootcert (or postgres_defaults."
                    "sslrootcert) is required: verify-full needs the CA bundle the server certificate chains to"
                )
            for tname, table in src.tables.items():
                object.__setattr__(table, "name", tname)
                object.__setattr__(table, "source", src_name)
        for src_name, api in self.api_sources.items():
            if src_name in self.postgres_sources:
                raise ValueError(f"api_sources.{src_name}: the name is already a PostgreSQL source (RAW names clash)")
            for sname, stream in api.streams.items():
                object.__setattr__(stream, "name", sname)
                object.__setattr__(stream, "source", src_name)
            if self.name != "local" and not api.base_url.startswith("https://"):
                raise ValueError(f"api_sources.{src_name}.base_url must be https:// outside local")
        self._check_references()
        self.quality.check_tables({t.qualified: set(t.landed_columns()) for t in self.warehouse_tables()})
        if self.name == "local":
            if self.local is None:
                raise ValueError("the local environment needs a `local:` section (ports of the local stack)")
            if self.aws.endpoint_url is None:
                # the moto port is written once, in `local:`
                object.__setattr__(self.aws, "endpoint_url", f"http://127.0.0.1:{self.local.moto_port}")
            self._check_local_ca(self.local)
        if self.name != "local":
            for section in ("release", "source_network", "governance", "curated_archive"):
                if getattr(self, section) is None:
                    raise ValueError(f"`{section}:` is required outside the local environment")
            assert self.curated_archive is not None
            if self.curated_archive.hot_months >= self.retention.curated_years * 12:
                raise ValueError("curated_archive.hot_months must be shorter than retention.curated_years")
            if self.local is not None:
                raise ValueError("`local:` is only allowed in the local environment")
            if self.aws.endpoint_url is not None:
                raise ValueError("aws.endpoint_url is only allowed in the local environment")
            if not self.network.nat_egress_ips:
                # without them the service user's network policy is empty and the deploy runners are locked out
                raise ValueError(
                    "network.nat_egress_ips is required outside local: the deploy runners' egress for the "
                    "Snowflake network policies (AWS stack output nat_egress_ips; docs/promotion.md)"
                )
            for src_name, src in self.postgres_sources.items():
                if src.connection and src.connection.sslmode != "verify-full":
                    raise ValueError(
                        f"{self.name}: postgres_sources.{src_name}.connection.sslmode must be verify-full outside local"
                    )
                if src.connection and not (src.connection.sslrootcert or "").startswith("/"):
                    raise ValueError(
                        f"{self.name}: postgres_sources.{src_name}.connection.sslrootcert must be an absolute path "
                        "in the connector image outside local (the RDS global bundle, connectors/Dockerfile)"
                    )
        return self

    def _check_local_ca(self, local: Local) -> None:
        """Locally the CA is the file `finsight local up` creates under the state dir, never one from base.yaml (the
        RDS bundle path, if local.yaml lost its line): the stack would create a CA wherever this points."""
        for src_name, src in self.postgres_sources.items():
            cafile = src.connection.sslrootcert if src.connection else None
            if cafile and (Path(cafile).is_absolute() or Path(local.state_dir) not in Path(cafile).parents):
                raise ValueError(
                    f"local: postgres_sources.{src_name}.connection.sslrootcert (postgres_defaults.sslrootcert) must "
                    f"be a file under local.state_dir ({local.state_dir}), the CA `finsight local up` creates; "
                    f"got {cafile!r}"
                )

    def _check_references(self) -> None:
        for table in self.tables():
            for cname, col in table.columns.items():
                if col.references is None:
                    continue
                src, tbl, ref_col = col.references.split(".")
                target = self.postgres_sources.get(src, None)
                if target is None or tbl not in target.tables or ref_col not in target.tables[tbl].columns:
                    raise ValueError(
                        f"postgres_sources.{table.source}.tables.{table.name}.columns.{cname}.references: "
                        f"{col.references!r} does not name an existing column"
                    )

    # -- derived views used by every layer -------------------------------------------------
    def tables(self) -> list[Table]:
        return [t for src in self.postgres_sources.values() for t in src.tables.values()]

    def api_tables(self) -> list[ApiStream]:
        """Every API stream, as a Table (RAW/CURATED names, pipe, MERGE spec come from the same catalog)."""
        return [s for src in self.api_sources.values() for s in src.streams.values()]

    def warehouse_tables(self) -> list[Table]:
        """Everything that lands in RAW and merges into CURATED: PostgreSQL tables and API streams."""
        return [*self.tables(), *self.api_tables()]

    def source(self, name: str) -> PostgresSource | ApiSource:
        """A source of either kind by name (owner, description)."""
        if name in self.postgres_sources:
            return self.postgres_sources[name]
        if name in self.api_sources:
            return self.api_sources[name]
        known = ", ".join([*self.postgres_sources, *self.api_sources])
        raise KeyError(f"unknown source {name!r}; sources: {known}")

    def table(self, qualified: str) -> Table:
        """Look a table (or API stream) up by `<source>.<table>` and say what exists when it does not."""
        src, _, name = qualified.partition(".")
        try:
            if src in self.api_sources:
                return self.api_sources[src].streams[name]
            return self.postgres_sources[src].tables[name]
        except KeyError:
            known = ", ".join(t.qualified for t in self.warehouse_tables())
            raise KeyError(f"unknown table {qualified!r}; known tables: {known}") from None

    @property
    def is_local(self) -> bool:
        return self.name == "local"
