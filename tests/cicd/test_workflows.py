"""Static checks of .github/workflows: structure, OIDC-only AWS access, approvals, and that every command exists."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from finsight.config import repo_root

ROOT = repo_root()
WORKFLOWS = ROOT / ".github" / "workflows"
FINSIGHT = Path(sys.executable).with_name("finsight")

# Commands the workflows call that other people are still writing. They ARE checked below (and fail until they
# exist); this list only makes the failure message say whose turn it is.
# the commands the workflows must call (each is checked to exist below)
REQUIRED_COMMANDS = {("sql", "lint"), ("sql", "render"), ("migrate",), ("dag", "deploy"), ("infra", "synth"),
                     ("infra", "scan"), ("cost",)}  # fmt: skip

DEPLOY_ORDER = {"deploy-staging": "dev-verified", "deploy-prod": "deploy-staging"}
PROTECTED = {"deploy-staging": "staging", "deploy-prod": "production"}


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True
    if True in data:
        data["on"] = data.pop(True)
    return data


@functools.cache
def workflows() -> dict[str, dict[str, Any]]:
    return {p.name: _load(p) for p in sorted(WORKFLOWS.glob("*.yml"))}


def _jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(wf, name, job) for wf, data in workflows().items() for name, job in data["jobs"].items()]


def _run_lines() -> list[str]:
    """Every shell line in every `run:` step, continuation lines joined."""
    lines = []
    for _, _, job in _jobs():
        for step in job.get("steps", []):
            script = step.get("run", "").replace("\\\n", " ")
            lines += [line.strip() for line in script.splitlines() if line.strip()]
    return lines


def _all_text() -> str:
    return "\n".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))


def test_expected_workflows_exist() -> None:
    assert {"pr.yml", "main.yml", "promote.yml"} <= set(workflows())


@pytest.mark.parametrize("name", ["pr.yml", "main.yml", "promote.yml"])
def test_triggers(name: str) -> None:
    on = workflows()[name]["on"]
    expected = {"pr.yml": "pull_request", "main.yml": "push", "promote.yml": "push"}[name]
    assert expected in on
    if name == "main.yml":
        assert on["push"]["branches"] == ["main"]
    if name == "promote.yml":
        assert on["push"]["tags"] == ["v*"]


def test_every_job_has_runs_on_and_steps_use_or_run() -> None:
    for wf, name, job in _jobs():
        assert job.get("runs-on"), f"{wf}:{name} has no runs-on"
        assert job.get("steps"), f"{wf}:{name} has no steps"
        for i, step in enumerate(job["steps"]):
            assert ("uses" in step) != ("run" in step), f"{wf}:{name} step {i} needs exactly one of uses/run"


def test_actions_pinned_by_full_sha() -> None:
    for wf, name, job in _jobs():
        for step in job["steps"]:
            if "uses" in step and not step["uses"].startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), f"{wf}:{name}: {step['uses']}"
    # the trailing comment names the tag a human can read
    for line in _all_text().splitlines():
        if re.search(r"uses: \S+@[0-9a-f]{40}", line):
            assert re.search(r"# v\d", line), line


def test_no_long_lived_aws_keys_anywhere() -> None:
    text = _all_text().lower()
    for forbidden in ("aws_secret_access_key", "aws-secret-access-key", "aws_access_key_id", "aws-access-key-id"):
        assert forbidden not in text


def _aws_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (wf, name, job)
        for wf, name, job in _jobs()
        if any("configure-aws-credentials" in s.get("uses", "") for s in job["steps"])
    ]


def test_aws_jobs_use_oidc_role() -> None:
    aws_jobs = _aws_jobs()
    assert {name for _, name, _ in aws_jobs} >= {"build", "deploy-dev", "deploy-staging", "deploy-prod"}
    for wf, name, job in aws_jobs:
        assert job.get("permissions", {}).get("id-token") == "write", f"{wf}:{name} needs id-token: write"
        for step in job["steps"]:
            if "configure-aws-credentials" in step.get("uses", ""):
                assert step["with"].get("role-to-assume"), f"{wf}:{name}"
                assert set(step["with"]) <= {"role-to-assume", "role-session-name", "aws-region"}, f"{wf}:{name}"


def test_pr_workflow_has_no_cloud_access() -> None:
    pr = workflows()["pr.yml"]
    assert pr["permissions"] == {"contents": "read"}
    for job in pr["jobs"].values():
        assert "id-token" not in job.get("permissions", {})
        assert not any("configure-aws-credentials" in s.get("uses", "") for s in job["steps"])


def test_promotion_chain_environments_and_concurrency() -> None:
    jobs = {name: job for _, name, job in _jobs()}
    for job, predecessor in DEPLOY_ORDER.items():
        needs = jobs[job]["needs"]
        assert predecessor in ([needs] if isinstance(needs, str) else needs), f"{job} must need {predecessor}"
    for job, environment in PROTECTED.items():
        assert jobs[job]["environment"] == environment
    # prod requires both teams: a data-engineering gate job in front of the devops-approved production environment
    assert "approve-production-data-eng" in jobs["deploy-prod"]["needs"]
    assert jobs["approve-production-data-eng"]["environment"] == "production-approval-data-eng"
    for name in ("deploy-dev", "deploy-staging", "deploy-prod"):
        conc = jobs[name]["concurrency"]
        assert conc["group"] == name and conc["cancel-in-progress"] is False, name
        assert jobs[name]["environment"], name


def test_build_once_promote_same_artifact() -> None:
    main, promote = workflows()["main.yml"], workflows()["promote.yml"]
    build_steps = main["jobs"]["build"]["steps"]
    assert any("build-push-action" in s.get("uses", "") for s in build_steps)
    assert any("upload-artifact" in s.get("uses", "") for s in build_steps)
    for name, job in promote["jobs"].items():
        for step in job["steps"]:
            assert "build-push-action" not in step.get("uses", ""), f"promote.yml:{name} must not rebuild"
            if "download-artifact" in step.get("uses", ""):
                assert step["with"]["run-id"] == "${{ needs.dev-verified.outputs.run-id }}"
    assert "github.sha" in main["jobs"]["build"]["steps"][-1]["with"]["name"]


def test_terraform_applies_synthesized_stacks_in_every_deploy() -> None:
    text = _all_text()
    for env in ("dev", "staging", "prod"):
        assert f"finsight migrate --env {env}" in text
        assert f"finsight dag deploy --env {env}" in text
    assert text.count('terraform -chdir="cdktf/cdktf.out/stacks/$stack" apply') == 3


@pytest.mark.parametrize(
    "needle",
    ["ruff check", "ruff format --check", "finsight sql lint", "make test", "finsight infra scan", "detect-secrets",
     "finsight cost --env prod", "finsight sql render --env", "make setup"],
)  # fmt: skip
def test_pr_runs_the_gates(needle: str) -> None:
    pr = "\n".join(s.get("run", "") for job in workflows()["pr.yml"]["jobs"].values() for s in job["steps"])
    assert needle in pr


def _subcommand(args: list[str]) -> tuple[str, ...]:
    """`cost --env x` -> ("cost",); `infra scan --env x` -> ("infra", "scan"): words up to the first option."""
    out: list[str] = []
    for word in args[:2]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        out.append(word)
    return tuple(out)


def _finsight_commands() -> set[tuple[str, ...]]:
    out = set()
    for line in _run_lines():
        for segment in re.split(r"[;|&]+|\bdo\b", line):
            words = shlex.split(segment.replace('"', ""))
            out |= {_subcommand(words[i + 1 :]) for i, w in enumerate(words) if w.endswith("bin/finsight")}
    return out


def _make_targets() -> set[str]:
    targets = set()
    for line in _run_lines():
        if m := re.match(r"make\s+(.*)", line):
            targets |= {w for w in m.group(1).split() if "=" not in w and not w.startswith("-")}
    return targets


def test_workflows_reference_the_expected_commands() -> None:
    cmds = _finsight_commands()
    assert cmds >= REQUIRED_COMMANDS, cmds
    assert _make_targets() == {"setup", "test"}


@pytest.mark.parametrize("target", sorted(_make_targets()) if WORKFLOWS.is_dir() else [])
def test_make_targets_exist(target: str) -> None:
    out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "No rule to make target" not in out.stderr, out.stderr


@pytest.mark.parametrize("command", sorted(_finsight_commands()) if WORKFLOWS.is_dir() else [], ids=" ".join)
def test_finsight_commands_exist(command: tuple[str, ...]) -> None:
    out = subprocess.run([str(FINSIGHT), *command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"`finsight {' '.join(command)}` does not exist:\n{out.stderr}"
