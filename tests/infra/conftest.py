"""Session fixtures: synthesize dev, staging and prod once (real `cdktf/main.py` run), scan each stack once."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from finsight_infra.naming import Names

from finsight.cli.infra_cmd import INFRA_ENVIRONMENTS, ScanResult, checkov, load_skips, synth
from finsight.config import Environment, load_environment


@dataclass(frozen=True)
class Synth:
    env: Environment
    names: Names
    aws: dict[str, Any]
    snowflake: dict[str, Any]
    dirs: dict[str, Path]

    def resources(self, kind: str, tf_type: str) -> dict[str, dict[str, Any]]:
        return getattr(self, kind)["resource"].get(tf_type, {})


@pytest.fixture(scope="session")
def synth_out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    outdir = tmp_path_factory.mktemp("cdktf-out")
    synth(INFRA_ENVIRONMENTS, outdir)
    out: dict[str, Synth] = {}
    for env_name in INFRA_ENVIRONMENTS:
        env = load_environment(env_name)
        names = Names(env)
        dirs = {kind: outdir / "stacks" / names.stack_id(kind) for kind in ("aws", "snowflake")}
        stacks = {kind: json.loads((d / "cdk.tf.json").read_text()) for kind, d in dirs.items()}
        out[env_name] = Synth(env, names, stacks["aws"], stacks["snowflake"], dirs)
    return out


@pytest.fixture(scope="session")
def checkov_results(synth_out: dict[str, Synth]) -> dict[str, ScanResult]:
    skips = load_skips()
    stack_dirs = [d for s in synth_out.values() for d in s.dirs.values()]
    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores: two checkov processes at a time
        results = list(pool.map(lambda d: checkov(d, skips), stack_dirs))
    return {r.stack: r for r in results}


@pytest.fixture(params=INFRA_ENVIRONMENTS)
def stack(request: pytest.FixtureRequest, synth_out: dict[str, Synth]) -> Synth:
    return synth_out[request.param]
