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
