"""Issue 21 item 5: the jobs that reach Snowflake run on runners whose egress the network policies allow.

The deploy runners are self-hosted in each environment's VPC (labels: `governance.deploy_runner_labels`), so they
leave through the NAT gateways' Elastic IPs; the AWS stack outputs those addresses (`nat_egress_ips`), the config
records them (`network.nat_egress_ips`) and both Snowflake network policies allow exactly them as /32s. A hosted
runner's address is in no policy: Snowflake refuses the login ("Incoming request with IP/Token ... is not allowed to
access Snowflake", https://docs.snowflake.com/en/user-guide/network-policies), which no local double enforces.
"""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from finsight.config import load_environment, repo_root
from finsight.config.loader import ConfigError, environments_dir
from finsight.config.models import NetworkLayout
from tests.infra.conftest import Synth

WORKFLOWS = repo_root() / ".github" / "workflows"
SNOWFLAKE_JOBS = {("plan.yml", "plan"), ("apply.yml", "apply")}  # terraform (Snowflake provider), migrate, DAG


def _by_name(s: Synth, tf_type: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in s.resources("snowflake", tf_type).values()}


def test_aws_stack_reports_one_address_per_nat_gateway(stack: Synth) -> None:
    eips = [cid for cid in stack.resources("aws", "aws_eip") if cid.startswith("nat-eip")]
    assert len(eips) == stack.env.network.nat_gateways
    output = stack.aws["output"]["nat_egress_ips"]["value"]
    assert sorted(output) == sorted(f"${{aws_eip.{cid}.public_ip}}" for cid in eips)
    assert len(stack.env.network.nat_egress_ips) == len(eips)  # the config recorded every one of them


def test_network_policies_allow_the_runner_egress_and_nothing_wider(stack: Synth) -> None:
    policies = _by_name(stack, "snowflake_network_policy")
    runners = [f"{ip}/32" for ip in stack.env.network.nat_egress_ips]
    service = policies[stack.names.sf_service_network_policy]["allowed_ip_list"]
    assert runners and service == runners  # the service user (the deploy jobs) connects only from the runners
    assert set(runners) <= set(policies[stack.names.sf_account_network_policy]["allowed_ip_list"])
    for cidr in service:
        assert ipaddress.ip_network(cidr).num_addresses == 1, cidr


def test_config_without_runner_egress_is_refused(tmp_path: Path) -> None:
    """A config that forgets the runners' addresses would lock the deploy out: refused, naming the key."""
    env_dir = tmp_path / "environments"
    shutil.copytree(environments_dir(), env_dir)
    prod = env_dir / "prod.yaml"
    data = yaml.safe_load(prod.read_text())
    data["network"]["nat_egress_ips"] = []
    prod.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"network\.nat_egress_ips is required outside local"):
        load_environment("prod", env_dir)


def test_one_recorded_address_per_nat_gateway() -> None:
    with pytest.raises(ValueError, match="nat_egress_ips: 1 addresses for 2 NAT gateways"):
        NetworkLayout(nat_gateways=2, availability_zones=2, nat_egress_ips=["198.51.100.1"])


def _runs_on(wf: str, job: str) -> list[str]:
    data = yaml.safe_load((WORKFLOWS / wf).read_text())
    runs_on = data["jobs"][job]["runs-on"]
    return [runs_on] if isinstance(runs_on, str) else list(runs_on)


@pytest.mark.parametrize("env_name", ["dev", "staging", "prod"])
def test_snowflake_jobs_run_on_the_configured_deploy_runners(env_name: str) -> None:
    env = load_environment(env_name)
    assert env.governance is not None
    for wf, job in SNOWFLAKE_JOBS:
        labels = [label.replace("${{ inputs.environment }}", env_name) for label in _runs_on(wf, job)]
        assert labels == env.governance.deploy_runner_labels, f"{wf}:{job} runs on {labels}"


def test_actionlint_knows_the_self_hosted_labels() -> None:
    """actionlint rejects unknown runner labels; its config lists exactly the configured ones."""
    config = yaml.safe_load((repo_root() / ".github" / "actionlint.yaml").read_text())
    known = set(config["self-hosted-runner"]["labels"])
    for env_name in ("dev", "staging", "prod"):
        gov = load_environment(env_name).governance
        assert gov is not None
        assert {label for label in gov.deploy_runner_labels if label.startswith("finsight-")} <= known
