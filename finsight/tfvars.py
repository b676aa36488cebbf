"""Terraform variables of the synthesized stacks, and where each value comes from in a deploy.

One table read by the stacks (cdktf/ declares exactly these), by `finsight infra tfvars` (writes the values that
come from the environment config and the promoted image) and by the deploy tests (every variable must be supplied
by the job that plans the stack). Anything that is a fact of an environment lives in environments/<env>.yaml;
only what changes per release (the image digest) or is owned outside the repository (keys) is a variable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from finsight.config import Environment

StackKind = Literal["aws", "snowflake"]
Source = Literal["config", "release", "github"]
TFVARS_FILE = "terraform.tfvars.json"  # Terraform loads it from the stack directory by itself


@dataclass(frozen=True)
class Variable:
    name: str
    stack: StackKind
    source: Source  # config: environments/<env>.yaml; release: the promoted image; github: TF_VAR_<name> in the job
    description: str

    @property
    def env_var(self) -> str:
        return f"TF_VAR_{self.name}"


VARIABLES = (
    Variable("connector_image", "aws", "release", "Connector image by digest: the one built on merge to main"),
    Variable("postgres_network_cidr", "aws", "config", "CIDR of the private network holding the PostgreSQL sources"),
    Variable(
        "postgres_rotation_lambda_arn", "aws", "config", "Secrets Manager rotation Lambda for PostgreSQL credentials"
    ),
    Variable(
        "snowflake_service_user_public_key",
        "snowflake",
        "github",
        "RSA public key of the service user (one line, no PEM header); GitHub environment variable",
    ),
    Variable(
        "snowflake_governance_user_public_key",
        "snowflake",
        "github",
        "RSA public key of the governance deploy user (one line, no PEM header); GitHub environment variable",
    ),
    Variable(
        "snowflake_plan_user_public_key",
        "snowflake",
        "github",
        "RSA public key of the read-only Terraform plan user (one line, no PEM header); GitHub environment variable",
    ),
)


class TfvarsError(ValueError):
    """A value cannot be supplied; the message names the flag or config field to fix."""


def variables(stack: StackKind) -> list[Variable]:
    return [v for v in VARIABLES if v.stack == stack]


def variable(name: str) -> Variable:
    (found,) = [v for v in VARIABLES if v.name == name]
    return found


def image_pattern(env: Environment) -> str:
    """What a promotable image reference looks like: the shared release repository, pinned by digest (no tag)."""
    assert env.release is not None
    return f"^{re.escape(env.release.registry())}/{re.escape(env.release.ecr_repository)}@sha256:[0-9a-f]{{64}}$"


def values(env: Environment, stack: StackKind, image: str | None) -> dict[str, str]:
    """The config- and release-sourced values of one stack (github-sourced ones arrive as TF_VAR_* in the job)."""
    if env.source_network is None or env.release is None:
        raise TfvarsError(f"{env.name}: no cloud infrastructure (source_network/release missing in the config)")
    out: dict[str, str] = {}
    for var in variables(stack):
        if var.source == "release":
            if not image:
                raise TfvarsError("--image: required for the aws stack (the digest the build job pushed)")
            if not re.fullmatch(image_pattern(env), image):
                raise TfvarsError(
                    f"--image: {image!r} is not {env.release.registry()}/{env.release.ecr_repository}@sha256:<digest>"
                    " (promote the digest the build pushed, never a tag)"
                )
            out[var.name] = image
        elif var.name == "postgres_network_cidr":
            out[var.name] = env.source_network.postgres_cidr
        elif var.name == "postgres_rotation_lambda_arn":
            out[var.name] = env.source_network.rotation_lambda_arn
        elif var.source == "config":  # a new config-sourced variable must say here where its value comes from
            raise TfvarsError(f"variable {var.name!r}: no config field mapped in finsight/tfvars.py")
    return out


def write(env: Environment, stack_dirs: dict[StackKind, Path], image: str | None) -> list[Path]:
    """Write terraform.tfvars.json into each synthesized stack directory of `env`; nothing is written on error."""
    planned = {kind: values(env, kind, image) for kind in stack_dirs}
    for directory in stack_dirs.values():
        if not (directory / "cdk.tf.json").is_file():
            raise TfvarsError(f"{directory}: no synthesized stack here (run `finsight infra synth` first)")
    written = []
    for kind, directory in stack_dirs.items():
        path = directory / TFVARS_FILE
        path.write_text(json.dumps(planned[kind], indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


# -- Snowflake provider identities ---------------------------------------------------------------------------------
# The Snowflake stack's provider aliases name a profile (of the TOML file ~/.snowflake/config the provider reads,
# registry docs snowflakedb/snowflake 2.22.0 #profile), never a role: which role a profile stands for is written by
# the job that runs Terraform (`finsight infra snowflake-profiles`). A role in code, or in a Terraform variable
# (recorded in the saved plan and reused by apply), would make plan and apply one identity. So the plan job runs
# every alias as the read-only plan role with the plan user's key; apply runs them as the admin roles Snowflake
# recommends for each kind of object, with the deploy user's key, both against the same saved plan.
SNOWFLAKE_PROVIDER_PROFILES = {"sysadmin": "SYSADMIN", "securityadmin": "SECURITYADMIN", "accountadmin": "ACCOUNTADMIN"}
TerraformIdentity = Literal["plan", "apply"]
SNOWFLAKE_CONFIG = ".snowflake/config"  # below $HOME: the job points HOME at a directory of its own


def snowflake_profiles(env: Environment, identity: TerraformIdentity) -> dict[str, str]:
    """profile -> role for the job that plans (read-only plan role everywhere) or applies (the admin roles)."""
    if identity == "plan":
        from finsight import catalog

        return dict.fromkeys(SNOWFLAKE_PROVIDER_PROFILES, catalog.terraform_plan_identity(env))
    return dict(SNOWFLAKE_PROVIDER_PROFILES)


def snowflake_profiles_toml(env: Environment, identity: TerraformIdentity) -> str:
    """The provider's TOML: one table per profile holding its role only (user and key come from SNOWFLAKE_USER /
    SNOWFLAKE_PRIVATE_KEY in the job, account and authenticator from code)."""
    return "".join(f"[{p}]\nrole = '{role}'\n\n" for p, role in snowflake_profiles(env, identity).items())
