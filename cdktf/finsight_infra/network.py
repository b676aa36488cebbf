"""VPC for the connectors: private subnets in every configured AZ, VPC endpoints, and the NAT gateway(s).

The layout (CIDR, AZ count, NAT count, interface endpoints) is `network:` of the environment config, which the cost
model counts too (tests/cost checks the synthesized resources against it).

PostgreSQL sources are reached over private networking (the VPC is attached to the database network; its CIDR is
the `postgres_network_cidr` variable). AWS APIs go through VPC endpoints (S3 gateway; Secrets Manager, ECR, Logs
interface endpoints), so that traffic never leaves AWS. The four payment APIs are on the public internet, which is
why there is a NAT gateway at all: by default one, as a single AZ of egress is an accepted risk for an hourly,
retried batch (a missed run is picked up by the next cursor window), and it saves ~$33/month per extra gateway.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cdktn import TerraformOutput, TerraformVariable
from cdktn_provider_aws.default_security_group import DefaultSecurityGroup
from cdktn_provider_aws.eip import Eip
from cdktn_provider_aws.flow_log import FlowLog
from cdktn_provider_aws.iam_role import IamRole
from cdktn_provider_aws.iam_role_policy import IamRolePolicy
from cdktn_provider_aws.internet_gateway import InternetGateway
from cdktn_provider_aws.kms_key import KmsKey
from cdktn_provider_aws.nat_gateway import NatGateway
from cdktn_provider_aws.route import Route
from cdktn_provider_aws.route_table import RouteTable
from cdktn_provider_aws.route_table_association import RouteTableAssociation
from cdktn_provider_aws.security_group import SecurityGroup
from cdktn_provider_aws.subnet import Subnet
from cdktn_provider_aws.vpc import Vpc
from cdktn_provider_aws.vpc_endpoint import VpcEndpoint
from cdktn_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktn_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from finsight import tfvars
from finsight_infra.egress import build_dns_firewall
from finsight_infra.logs import log_group
from finsight_infra.naming import Names
from finsight_infra.policy import allow, assume_role, document, service_principal

AZ_LETTERS = "abc"
HTTPS = 443
POSTGRES = 5432


@dataclass(frozen=True)
class Network:
    vpc: Vpc
    private_subnet_ids: list[str]
    postgres_connector_sg: SecurityGroup
    api_connector_sg: SecurityGroup


def _subnets(cidr: str, azs: int, nats: int) -> tuple[list[str], list[str]]:
    """/20 private subnets first (one per AZ), then small /24 public subnets for the NAT gateways."""
    net = ipaddress.ip_network(cidr)
    blocks = list(net.subnets(new_prefix=20))
    private = [str(s) for s in blocks[:azs]]
    public = [str(s) for s in list(blocks[-1].subnets(new_prefix=24))[:nats]]
    return private, public


def _sg(scope: Construct, cid: str, name: str, description: str, vpc: Vpc, names: Names) -> SecurityGroup:
    # No inline rules: Terraform then strips AWS's default allow-all egress; rules below add only what is needed.
    return SecurityGroup(scope, cid, name=name, description=description, vpc_id=vpc.id, tags=names.tags)


def _egress(scope: Construct, cid: str, sg: SecurityGroup, port: int, description: str, **target: str) -> None:
    VpcSecurityGroupEgressRule(
        scope,
        cid,
        security_group_id=sg.id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=description,
        **target,
    )


def s3_endpoint_policy(names: Names) -> str:
    """The S3 gateway: our principals to our buckets, plus the ECR layer bucket image pulls read from. A stolen task
    credential cannot copy landed data to a bucket of another account through it, nor can a foreign credential be
    used from inside the VPC (https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-access.html)."""
    ours = {"aws:PrincipalAccount": names.account_id, "aws:ResourceAccount": names.account_id}
    return document(
        allow("OurPrincipalsOurBuckets", "s3:*", "*", {"StringEquals": ours}, {"AWS": "*"}),
        # ECR serves image layers from this AWS-owned bucket through URLs ECR signs, so no account condition
        # applies; the policy AWS documents for it (https://docs.aws.amazon.com/AmazonECR/latest/userguide/vpc-endpoints.html)
        allow(
            "EcrImageLayers",
            "s3:GetObject",
            f"arn:aws:s3:::prod-{names.region}-starport-layer-bucket/*",
            None,
            {"AWS": "*"},
        ),
    )


def interface_endpoint_policy(names: Names) -> str:
    """Interface endpoints: only this account's principals (the release image lives in the build account's
    repository, so the resource side cannot be pinned to this account for ECR)."""
    return document(
        allow("OurPrincipalsOnly", "*", "*", {"StringEquals": {"aws:PrincipalAccount": names.account_id}}, {"AWS": "*"})
    )


def build_network(scope: Construct, names: Names, ops_key: KmsKey) -> Network:
    cidr_var = tfvars.variable("postgres_network_cidr")
    postgres_cidr = TerraformVariable(scope, cidr_var.name, type="string", description=cidr_var.description)
    vpc = Vpc(
        scope,
        "vpc",
        cidr_block=names.env.network.vpc_cidr,
        enable_dns_support=True,
        enable_dns_hostnames=True,  # required for private DNS on interface endpoints
        tags={**names.tags, "Name": names.net("vpc")},
    )
    DefaultSecurityGroup(scope, "default-sg", vpc_id=vpc.id, tags=names.tags)  # no rules: lock the default SG

    layout = names.env.network
    az_suffixes = AZ_LETTERS[: layout.availability_zones]
    private_cidrs, public_cidrs = _subnets(layout.vpc_cidr, layout.availability_zones, layout.nat_gateways)
    private = [
        Subnet(
            scope,
            f"private-{az}",
            vpc_id=vpc.id,
            cidr_block=cidr,
            availability_zone=f"{names.region}{az}",
            map_public_ip_on_launch=False,
            tags={**names.tags, "Name": names.net(f"private-{az}")},
        )
        for az, cidr in zip(az_suffixes, private_cidrs, strict=True)
    ]
    igw = InternetGateway(scope, "igw", vpc_id=vpc.id, tags=names.tags)
    public_rt = RouteTable(scope, "public-rt", vpc_id=vpc.id, tags=names.tags)
    Route(scope, "public-default", route_table_id=public_rt.id, destination_cidr_block="0.0.0.0/0", gateway_id=igw.id)
    private_rts: list[RouteTable] = []
    nat_ips: list[str] = []
    for az, cidr in zip(az_suffixes, public_cidrs, strict=False):
        suffix = "" if layout.nat_gateways == 1 else f"-{az}"  # ids of the one-NAT layout stay as they were
        public = Subnet(
            scope,
            f"public-nat{suffix}",
            vpc_id=vpc.id,
            cidr_block=cidr,
            availability_zone=f"{names.region}{az}",
            map_public_ip_on_launch=False,  # only the NAT gateway lives here, with its own Elastic IP
            tags={**names.tags, "Name": names.net(f"public-nat{suffix}")},
        )
        RouteTableAssociation(scope, f"public-rta{suffix}", route_table_id=public_rt.id, subnet_id=public.id)
        nat_ip = Eip(scope, f"nat-eip{suffix}", domain="vpc", tags=names.tags)
        nat_ips.append(nat_ip.public_ip)
        nat = NatGateway(
            scope, f"nat{suffix}", allocation_id=nat_ip.id, subnet_id=public.id, tags=names.tags, depends_on=[igw]
        )
        private_rt = RouteTable(scope, f"private-rt{suffix}", vpc_id=vpc.id, tags=names.tags)
        Route(
            scope,
            f"private-default{suffix}",
            route_table_id=private_rt.id,
            destination_cidr_block="0.0.0.0/0",
            nat_gateway_id=nat.id,
        )
        private_rts.append(private_rt)
    # the deploy runners' egress: record it as network.nat_egress_ips for the Snowflake network policies
    TerraformOutput(scope, "nat_egress_ips", value=nat_ips)
    for i, (az, subnet) in enumerate(zip(az_suffixes, private, strict=True)):
        rt = private_rts[min(i, len(private_rts) - 1)]  # an AZ without its own NAT uses the last one
        RouteTableAssociation(scope, f"private-rta-{az}", route_table_id=rt.id, subnet_id=subnet.id)

    # -- security groups: least egress ---------------------------------------------------------
    endpoints_sg = _sg(
        scope, "sg-endpoints", names.net("vpc-endpoints"), "HTTPS from connectors to VPC endpoints", vpc, names
    )
    pg_sg = _sg(
        scope, "sg-postgres-connectors", names.net("postgres-connectors"), "PostgreSQL connector tasks", vpc, names
    )
    api_sg = _sg(scope, "sg-api-connectors", names.net("api-connectors"), "Payment API connector tasks", vpc, names)

    s3_endpoint = VpcEndpoint(
        scope,
        "vpce-s3",
        vpc_id=vpc.id,
        service_name=f"com.amazonaws.{names.region}.s3",
        vpc_endpoint_type="Gateway",
        route_table_ids=[rt.id for rt in private_rts],
        policy=s3_endpoint_policy(names),
        tags={**names.tags, "Name": names.net("vpce-s3")},
    )
    for service in layout.interface_endpoints:
        VpcEndpoint(
            scope,
            f"vpce-{service.replace('.', '-')}",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{names.region}.{service}",
            vpc_endpoint_type="Interface",
            private_dns_enabled=True,
            subnet_ids=[s.id for s in private],
            security_group_ids=[endpoints_sg.id],
            policy=interface_endpoint_policy(names),
            tags={**names.tags, "Name": names.net(f"vpce-{service}")},
        )

    for label, sg in (("postgres", pg_sg), ("api", api_sg)):
        VpcSecurityGroupIngressRule(
            scope,
            f"endpoints-from-{label}",
            security_group_id=endpoints_sg.id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            referenced_security_group_id=sg.id,
            description=f"HTTPS from {label} connectors",
        )
    # PostgreSQL connectors: the source databases, AWS APIs through endpoints, and nothing else.
    _egress(scope, "pg-to-db", pg_sg, POSTGRES, "PostgreSQL sources", cidr_ipv4=postgres_cidr.string_value)
    _egress(scope, "pg-to-endpoints", pg_sg, HTTPS, "Interface endpoints", referenced_security_group_id=endpoints_sg.id)
    _egress(scope, "pg-to-s3", pg_sg, HTTPS, "S3 gateway endpoint", prefix_list_id=s3_endpoint.prefix_list_id)
    # API connectors: HTTPS to the payment APIs on the internet (via NAT); endpoints and S3 are HTTPS too.
    _egress(scope, "api-to-https", api_sg, HTTPS, "Payment APIs (NAT), AWS endpoints", cidr_ipv4="0.0.0.0/0")
    # ... and by name: only the configured provider hosts (and AWS, PostgreSQL hosts) resolve (egress.py)
    build_dns_firewall(scope, names, vpc.id)

    _flow_logs(scope, names, vpc, ops_key)
    return Network(
        vpc=vpc, private_subnet_ids=[s.id for s in private], postgres_connector_sg=pg_sg, api_connector_sg=api_sg
    )


def _flow_logs(scope: Construct, names: Names, vpc: Vpc, ops_key: KmsKey) -> None:
    group = log_group(scope, "flow-logs", names.platform_log_group("vpc-flow-logs"), ops_key, names)
    role = IamRole(
        scope,
        "flow-logs-role",
        name=names.flow_logs_role,
        assume_role_policy=assume_role(
            service_principal("vpc-flow-logs.amazonaws.com"),
            {"StringEquals": {"aws:SourceAccount": names.account_id}},
        ),
        tags=names.tags,
    )
    IamRolePolicy(
        scope,
        "flow-logs-policy",
        role=role.id,
        policy=document(
            allow(
                "WriteFlowLogs",
                ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                [group.arn, f"{group.arn}:*"],
            )
        ),
    )
    FlowLog(
        scope,
        "vpc-flow-log",
        vpc_id=vpc.id,
        traffic_type="ALL",
        log_destination_type="cloud-watch-logs",
        log_destination=group.arn,
        iam_role_arn=role.arn,
        tags=names.tags,
    )
