"""VPC for the connectors: private subnets in two AZs, VPC endpoints, and one NAT gateway.

PostgreSQL sources are reached over private networking (the VPC is attached to the database network; its CIDR is
the `postgres_network_cidr` variable). AWS APIs go through VPC endpoints (S3 gateway; Secrets Manager, ECR, Logs
interface endpoints), so that traffic never leaves AWS. The four payment APIs are on the public internet, which is
why each environment has exactly one NAT gateway: a single AZ is an accepted risk for an hourly, retried batch
(a missed run is picked up by the next cursor window), and it saves ~$33/month per extra gateway.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cdktn import TerraformVariable
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

from finsight_infra.egress import build_dns_firewall
from finsight_infra.logs import log_group
from finsight_infra.naming import Names
from finsight_infra.policy import allow, assume_role, document, service_principal

# Environments live in separate AWS accounts, so they can share one address plan. (Candidate for the config.)
VPC_CIDR = "10.64.0.0/16"
AZ_SUFFIXES = ("a", "b")
INTERFACE_ENDPOINTS = ("secretsmanager", "ecr.api", "ecr.dkr", "logs")
HTTPS = 443
POSTGRES = 5432


@dataclass(frozen=True)
class Network:
    vpc: Vpc
    private_subnet_ids: list[str]
    postgres_connector_sg: SecurityGroup
    api_connector_sg: SecurityGroup


def _subnets(cidr: str) -> list[str]:
    """/20 private subnets first, then a small /24 public subnet for the NAT gateway."""
    net = ipaddress.ip_network(cidr)
    private = [str(s) for s in list(net.subnets(new_prefix=20))[: len(AZ_SUFFIXES)]]
    public = str(next(iter(list(net.subnets(new_prefix=20))[-1].subnets(new_prefix=24))))
    return [*private, public]


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


def build_network(scope: Construct, names: Names, ops_key: KmsKey) -> Network:
    postgres_cidr = TerraformVariable(
        scope,
        "postgres_network_cidr",
        type="string",
        description="CIDR of the private network holding the PostgreSQL sources (reached over TGW/peering)",
    )
    vpc = Vpc(
        scope,
        "vpc",
        cidr_block=VPC_CIDR,
        enable_dns_support=True,
        enable_dns_hostnames=True,  # required for private DNS on interface endpoints
        tags={**names.tags, "Name": names.net("vpc")},
    )
    DefaultSecurityGroup(scope, "default-sg", vpc_id=vpc.id, tags=names.tags)  # no rules: lock the default SG

    *private_cidrs, public_cidr = _subnets(VPC_CIDR)
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
        for az, cidr in zip(AZ_SUFFIXES, private_cidrs, strict=True)
    ]
    public = Subnet(
        scope,
        "public-nat",
        vpc_id=vpc.id,
        cidr_block=public_cidr,
        availability_zone=f"{names.region}{AZ_SUFFIXES[0]}",
        map_public_ip_on_launch=False,  # only the NAT gateway lives here, with its own Elastic IP
        tags={**names.tags, "Name": names.net("public-nat")},
    )
    igw = InternetGateway(scope, "igw", vpc_id=vpc.id, tags=names.tags)
    public_rt = RouteTable(scope, "public-rt", vpc_id=vpc.id, tags=names.tags)
    Route(scope, "public-default", route_table_id=public_rt.id, destination_cidr_block="0.0.0.0/0", gateway_id=igw.id)
    RouteTableAssociation(scope, "public-rta", route_table_id=public_rt.id, subnet_id=public.id)

    nat_ip = Eip(scope, "nat-eip", domain="vpc", tags=names.tags)
    nat = NatGateway(scope, "nat", allocation_id=nat_ip.id, subnet_id=public.id, tags=names.tags, depends_on=[igw])
    private_rt = RouteTable(scope, "private-rt", vpc_id=vpc.id, tags=names.tags)
    Route(
        scope,
        "private-default",
        route_table_id=private_rt.id,
        destination_cidr_block="0.0.0.0/0",
        nat_gateway_id=nat.id,
    )
    for az, subnet in zip(AZ_SUFFIXES, private, strict=True):
        RouteTableAssociation(scope, f"private-rta-{az}", route_table_id=private_rt.id, subnet_id=subnet.id)

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
        route_table_ids=[private_rt.id],
        tags={**names.tags, "Name": names.net("vpce-s3")},
    )
    for service in INTERFACE_ENDPOINTS:
        VpcEndpoint(
            scope,
            f"vpce-{service.replace('.', '-')}",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{names.region}.{service}",
            vpc_endpoint_type="Interface",
            private_dns_enabled=True,
            subnet_ids=[s.id for s in private],
            security_group_ids=[endpoints_sg.id],
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
