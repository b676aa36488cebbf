"""Egress allow-list by host name for the connector VPC: a Route 53 Resolver DNS Firewall.

Security groups filter by IP and the payment providers serve from changing CDN ranges, so the host allow-list is
enforced on DNS: names on the list resolve, every other name answers NXDOMAIN. The list is derived from the config
(`finsight.catalog.api_egress_hosts`: each API source's base_url host and extra `hosts`), plus the PostgreSQL
source hosts and AWS service names (VPC endpoints, ECR). See docs/egress.md.
"""

from __future__ import annotations

from cdktn_provider_aws.route53_resolver_firewall_domain_list import Route53ResolverFirewallDomainList
from cdktn_provider_aws.route53_resolver_firewall_rule import Route53ResolverFirewallRule
from cdktn_provider_aws.route53_resolver_firewall_rule_group import Route53ResolverFirewallRuleGroup
from cdktn_provider_aws.route53_resolver_firewall_rule_group_association import (
    Route53ResolverFirewallRuleGroupAssociation,
)
from constructs import Construct

from finsight.catalog import api_egress_hosts
from finsight_infra.naming import Names

AWS_DOMAINS = ["amazonaws.com", "*.amazonaws.com"]


def allowed_domains(names: Names) -> list[str]:
    env = names.env
    hosts = {h for hs in api_egress_hosts(env).values() for h in hs}
    hosts |= {src.connection.host for src in env.postgres_sources.values() if src.connection}
    return sorted(hosts) + AWS_DOMAINS


def build_dns_firewall(scope: Construct, names: Names, vpc_id: str) -> None:
    allowed = Route53ResolverFirewallDomainList(
        scope, "egress-allowed-domains", name=f"{names.prefix}-egress-allowed", domains=allowed_domains(names),
        tags=names.tags,
    )  # fmt: skip
    everything = Route53ResolverFirewallDomainList(
        scope, "egress-all-domains", name=f"{names.prefix}-egress-all", domains=["*"], tags=names.tags
    )
    group = Route53ResolverFirewallRuleGroup(scope, "egress-rules", name=f"{names.prefix}-egress", tags=names.tags)
    Route53ResolverFirewallRule(
        scope, "egress-allow", name="allow-listed-hosts", action="ALLOW", priority=100,
        firewall_rule_group_id=group.id, firewall_domain_list_id=allowed.id,
    )  # fmt: skip
    Route53ResolverFirewallRule(
        scope, "egress-block", name="block-everything-else", action="BLOCK", block_response="NXDOMAIN", priority=200,
        firewall_rule_group_id=group.id, firewall_domain_list_id=everything.id,
    )  # fmt: skip
    Route53ResolverFirewallRuleGroupAssociation(
        scope, "egress-rules-vpc", name=f"{names.prefix}-egress", priority=101, firewall_rule_group_id=group.id,
        vpc_id=vpc_id, mutation_protection="ENABLED", tags=names.tags,
    )  # fmt: skip
