"""Static checks of .github/workflows: structure, OIDC-only AWS access, approvals, promotion guards, and that every
command exists. Each guard test names the guard it protects; removing that guard from a workflow turns it red.
"""

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
POSTGRES_ACTION = "./.github/actions/postgresql-15"  # the composite action every local-stack job uses
FINSIGHT = Path(sys.executable).with_name("finsight")

# the commands the workflows must call (each is checked to exist below)
REQUIRED_COMMANDS = {("sql", "lint"), ("sql", "render"), ("migrate",), ("dag", "deploy"), ("infra", "synth"),
                     ("infra", "scan"), ("infra", "tfvars"), ("cost",)}  # fmt: skip
PLAN, APPLY = "./.github/workflows/plan.yml", "./.github/workflows/apply.yml"
CALLABLE = {"plan.yml", "apply.yml"}


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


def _step_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(wf, name, job) for wf, name, job in _jobs() if "steps" in job]


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _run_lines() -> list[str]:
    """Every shell line in every `run:` step, continuation lines joined."""
    lines = []
    for _, _, job in _step_jobs():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            lines += [line.strip() for line in script.splitlines() if line.strip()]
    return lines


def _all_text() -> str:
    return "\n".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))


def _step_index(job: dict[str, Any], needle: str) -> int:
    """Index of the first step whose `run` or `uses` contains `needle` (-1: none)."""
    for i, step in enumerate(job["steps"]):
        if needle in step.get("run", "") or needle in step.get("uses", ""):
            return i
    return -1


def _callers(workflow: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """environment -> (job name, job) of the jobs calling a reusable workflow."""
    return {job["with"]["environment"]: (name, job) for _, name, job in _jobs() if job.get("uses") == workflow}


def _job(wf: str, name: str) -> dict[str, Any]:
    return workflows()[wf]["jobs"][name]


# -- structure ----------------------------------------------------------------------------------------------------


def test_expected_workflows_exist() -> None:
    assert {"pr.yml", "main.yml", "promote.yml", "plan.yml", "apply.yml"} <= set(workflows())


@pytest.mark.parametrize("name", ["pr.yml", "main.yml", "promote.yml", "plan.yml", "apply.yml"])
def test_triggers(name: str) -> None:
    on = workflows()[name]["on"]
    expected = {"pr.yml": "pull_request", "main.yml": "push", "promote.yml": "push"}.get(name, "workflow_call")
    assert set(on) == {expected}
    if name == "main.yml":
        assert on["push"]["branches"] == ["main"]
    if name == "promote.yml":
        assert on["push"]["tags"] == ["v*"]


def test_every_job_runs_steps_or_calls_a_local_workflow() -> None:
    for wf, name, job in _jobs():
        if "uses" in job:
            assert job["uses"] in (PLAN, APPLY), f"{wf}:{name} calls {job['uses']}"
            continue
        assert job.get("runs-on"), f"{wf}:{name} has no runs-on"
        assert job.get("steps"), f"{wf}:{name} has no steps"
        for i, step in enumerate(job["steps"]):
            assert ("uses" in step) != ("run" in step), f"{wf}:{name} step {i} needs exactly one of uses/run"


# -- guard: pinned actions ------------------------------------------------------------------------------------------


def test_actions_pinned_by_full_sha() -> None:
    for wf, name, job in _step_jobs():
        for step in job["steps"]:
            if step.get("uses", "").startswith("./"):  # a composite action of this repository: pinned by its commit
                assert (ROOT / step["uses"] / "action.yml").is_file(), f"{wf}:{name}: {step['uses']}"
            elif "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), f"{wf}:{name}: {step['uses']}"
    for line in _all_text().splitlines():  # the trailing comment names the tag a human can read
        if re.search(r"uses: \S+@[0-9a-f]{40}", line):
            assert re.search(r"# v\d", line), line


# -- guard: OIDC only -----------------------------------------------------------------------------------------------


def test_no_long_lived_aws_keys_anywhere() -> None:
    text = _all_text().lower()
    for forbidden in ("aws_secret_access_key", "aws-secret-access-key", "aws_access_key_id", "aws-access-key-id"):
        assert forbidden not in text


def _aws_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(wf, n, j) for wf, n, j in _step_jobs() if _step_index(j, "configure-aws-credentials") >= 0]


def test_aws_jobs_use_oidc_role_only() -> None:
    assert {(wf, n) for wf, n, _ in _aws_jobs()} == {
        ("main.yml", "build"),
        ("plan.yml", "plan"),
        ("apply.yml", "apply"),
    }
    for wf, name, job in _aws_jobs():
        assert job["permissions"]["id-token"] == "write", f"{wf}:{name} needs id-token: write"
        for step in job["steps"]:
            if "configure-aws-credentials" in step.get("uses", ""):
                assert step["with"]["role-to-assume"].startswith("${{ vars."), f"{wf}:{name}"
                assert set(step["with"]) <= {"role-to-assume", "role-session-name", "aws-region"}, f"{wf}:{name}"
    # callers grant the reusable workflows' jobs the OIDC token, and nothing in a PR gets one
    for _, name, job in _jobs():
        if "uses" in job:
            assert job["permissions"]["id-token"] == "write", name


def test_pr_workflow_has_no_cloud_access() -> None:
    pr = workflows()["pr.yml"]
    assert pr["permissions"] == {"contents": "read"}
    for job in pr["jobs"].values():
        assert "id-token" not in job.get("permissions", {})
        assert "uses" not in job  # no plan/apply from a pull request
        assert not any("configure-aws-credentials" in s.get("uses", "") for s in job["steps"])
        assert "${{ secrets." not in yaml.safe_dump(job, width=10**6)


# -- guard: plan -> approval -> apply of that saved plan ------------------------------------------------------------


def test_every_environment_is_planned_before_it_is_applied() -> None:
    plans, applies = _callers(PLAN), _callers(APPLY)
    assert set(plans) == set(applies) == {"dev", "staging", "prod"}
    for env, (apply_name, apply_job) in applies.items():
        plan_name, _ = plans[env]
        needs = _needs(apply_job)
        assert plan_name in needs, f"{apply_name} must need {plan_name}"


def test_plan_job_is_not_behind_an_approval() -> None:
    plan = _job("plan.yml", "plan")
    assert plan["environment"] == "${{ inputs.environment }}-plan"  # reviewers approve the apply, after the plan


def test_apply_job_is_behind_the_environment_approval() -> None:
    apply = _job("apply.yml", "apply")
    assert apply["environment"] == "${{ inputs.github-environment }}"
    applies = _callers(APPLY)
    assert applies["staging"][1]["with"]["github-environment"] == "staging"
    assert applies["prod"][1]["with"]["github-environment"] == "production"


def test_prod_needs_a_data_engineering_approval_after_its_plan() -> None:
    prod_apply = _callers(APPLY)["prod"][1]
    assert "approve-production-data-eng" in _needs(prod_apply)
    gate = _job("promote.yml", "approve-production-data-eng")
    assert gate["environment"] == "production-approval-data-eng"
    assert _callers(PLAN)["prod"][0] in _needs(gate)  # approvers see the prod plan first


def test_apply_applies_the_saved_plan_file() -> None:
    plan, apply = _job("plan.yml", "plan"), _job("apply.yml", "apply")
    plan_script = plan["steps"][_step_index(plan, "terraform -chdir")]["run"]
    apply_script = apply["steps"][_step_index(apply, "terraform -chdir")]["run"]
    assert "plan -input=false -lock-timeout=5m -out=tfplan" in plan_script
    assert re.search(r"apply -input=false -lock-timeout=5m tfplan$", apply_script, re.M)
    assert " plan " not in apply_script  # nothing re-planned after the approval
    upload = plan["steps"][_step_index(plan, "upload-artifact")]["with"]
    download = apply["steps"][_step_index(apply, "download-artifact")]["with"]
    assert upload["name"] == download["name"] == "plan-${{ inputs.environment }}-${{ github.sha }}"
    assert upload["include-hidden-files"] is True  # .terraform.lock.hcl travels with the plan


def test_one_apply_per_environment_at_a_time() -> None:
    conc = _job("apply.yml", "apply")["concurrency"]
    assert conc == {"group": "deploy-${{ inputs.environment }}", "cancel-in-progress": False}


def test_promotion_order_dev_staging_prod() -> None:
    plans, applies = _callers(PLAN), _callers(APPLY)
    assert "dev-verified" in _needs(plans["staging"][1])
    assert applies["staging"][0] in _needs(plans["prod"][1])  # prod is planned only after staging applied


# -- guard: the tag is on main, the release is this SHA, from a successful run ---------------------------------------


def test_guard_tag_must_be_on_main() -> None:
    job = _job("promote.yml", "dev-verified")
    i = _step_index(job, "git merge-base --is-ancestor")
    assert i >= 0 and 'git merge-base --is-ancestor "$GITHUB_SHA" origin/main' in job["steps"][i]["run"]
    assert job["steps"][0]["with"]["fetch-depth"] == 0  # origin/main must be fetched to compare


def test_guard_successful_dev_run_of_the_same_commit() -> None:
    job = _job("promote.yml", "dev-verified")
    script = job["steps"][_step_index(job, "gh run list")]["run"].replace("\\\n", " ")
    words = shlex.split(script.split("|")[0].split("$(", 1)[1])
    assert words[words.index("--workflow") + 1] == "main.yml"
    assert words[words.index("--commit") + 1] == "$GITHUB_SHA"
    assert words[words.index("--status") + 1] == "success"
    assert "exit 1" in script  # no run found: stop, do not promote


def test_guard_release_artifact_is_this_commit() -> None:
    plan = _job("plan.yml", "plan")
    check = _step_index(plan, 'test "$(cat cdktf/cdktf.out/COMMIT)" = "$GITHUB_SHA"')
    assert 0 <= check < _step_index(plan, "finsight infra tfvars") < _step_index(plan, "terraform -chdir")
    download = plan["steps"][_step_index(plan, "download-artifact")]["with"]
    assert download["name"] == "release-${{ github.sha }}"
    assert download["run-id"] == "${{ inputs.release-run-id }}"
    assert _callers(PLAN)["staging"][1]["with"]["release-run-id"] == "${{ needs.dev-verified.outputs.run-id }}"
    assert _callers(PLAN)["prod"][1]["with"]["release-run-id"] == "${{ needs.dev-verified.outputs.run-id }}"
    synth = _job("main.yml", "synth")
    record = synth["steps"][_step_index(synth, "cdktf.out/COMMIT")]["run"]
    assert 'echo "$GITHUB_SHA" > cdktf/cdktf.out/COMMIT' in record


def test_build_once_promote_same_artifact() -> None:
    build = _job("main.yml", "build")
    assert _step_index(build, "build-push-action") >= 0
    for wf in ("promote.yml", "plan.yml", "apply.yml"):
        assert "build-push-action" not in (WORKFLOWS / wf).read_text(), f"{wf} must not rebuild"
    upload = _job("main.yml", "synth")["steps"][-1]
    assert "upload-artifact" in upload["uses"] and upload["with"]["name"] == "release-${{ github.sha }}"


def test_publishing_job_has_no_toolchain_caches() -> None:
    """zizmor's cache-poisoning finding: the job that pushes the image restores no cache."""
    build = _job("main.yml", "build")
    for step in build["steps"]:
        assert not any(a in step.get("uses", "") for a in ("setup-node", "setup-python", "actions/cache")), step


# -- guard: budget --------------------------------------------------------------------------------------------------


def test_guard_budget_gate_before_every_plan() -> None:
    plan = _job("plan.yml", "plan")
    gate = _step_index(plan, "finsight cost --env all --horizon 84")
    assert 0 <= gate < _step_index(plan, "terraform -chdir")


@pytest.mark.parametrize(
    "needle",
    ["ruff check", "ruff format --check", "finsight sql lint", "finsight sql check --env", "make test",
     "finsight infra scan", "detect-secrets", "finsight cost --env all --horizon 84", "finsight sql render --env",
     "make setup", "actionlint",
     "zizmor --offline .github/workflows/"],
)  # fmt: skip
def test_pr_runs_the_gates(needle: str) -> None:
    pr = "\n".join(s.get("run", "") for job in workflows()["pr.yml"]["jobs"].values() for s in job["steps"])
    assert needle in pr


def test_terraform_version_supports_the_backend_lockfile() -> None:
    versions = {
        s["with"]["terraform_version"]
        for _, _, job in _step_jobs()
        for s in job["steps"]
        if "setup-terraform" in s.get("uses", "")
    }
    assert versions
    for v in versions:
        assert tuple(int(x) for x in v.split(".")[:2]) >= (1, 10), f"terraform {v} has no S3 use_lockfile"


def test_migrations_and_dag_follow_every_apply() -> None:
    apply = _job("apply.yml", "apply")
    tf = _step_index(apply, "terraform -chdir")
    assert (
        tf
        < _step_index(apply, 'finsight migrate --env "$FINSIGHT_ENV"')
        < _step_index(apply, 'finsight dag deploy --env "$FINSIGHT_ENV"')
    )


# -- workflow linters, as the PR gate runs them ---------------------------------------------------------------------


def test_actionlint_is_clean() -> None:
    out = subprocess.run([str(FINSIGHT.with_name("actionlint"))], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_zizmor_is_clean_offline() -> None:
    out = subprocess.run([str(FINSIGHT.with_name("zizmor")), "--offline", ".github/workflows/"],
                         cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


# -- every command the workflows call exists ------------------------------------------------------------------------


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
            try:
                words = shlex.split(segment.replace('"', ""))
            except ValueError:
                continue
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
    assert _make_targets() == {"setup", "test", "chaos", "mutation", "mutation-report"}


def test_nightly_runs_every_chaos_scenario_and_the_mutation_sample() -> None:
    """The suites too slow for a PR run every night: without this job nothing runs `make chaos` or `make mutation`."""
    nightly = workflows()["nightly.yml"]
    assert set(nightly["on"]) == {"schedule", "workflow_dispatch"} and nightly["on"]["schedule"][0]["cron"]
    assert nightly["permissions"] == {"contents": "read"}  # the local stack only: no cloud, no OIDC token
    for name, target in (("chaos", "make chaos"), ("mutation", "make mutation")):
        job = _job("nightly.yml", name)
        assert _step_index(job, target) >= 0 and 0 < job["timeout-minutes"] <= 60, name
        assert 0 <= _step_index(job, POSTGRES_ACTION) < _step_index(job, target), name


def test_every_job_that_starts_the_local_stack_installs_postgresql_first() -> None:
    """The stack starts its own PostgreSQL server from the binaries one shared composite action installs."""
    for workflow, name, target in (("pr.yml", "test", "make test"), ("nightly.yml", "chaos", "make chaos"),
                                   ("nightly.yml", "mutation", "make mutation")):  # fmt: skip
        job = _job(workflow, name)
        assert 0 <= _step_index(job, POSTGRES_ACTION) < _step_index(job, target), (workflow, name)
    action = yaml.safe_load((ROOT / POSTGRES_ACTION / "action.yml").read_text())
    run = "\n".join(step["run"] for step in action["runs"]["steps"])
    assert action["runs"]["using"] == "composite"
    assert "apt-get install -y --no-install-recommends postgresql-15" in run
    assert '"/usr/lib/postgresql/15/bin" >> "$GITHUB_PATH"' in run


@pytest.mark.parametrize("target", sorted(_make_targets()) if WORKFLOWS.is_dir() else [])
def test_make_targets_exist(target: str) -> None:
    out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "No rule to make target" not in out.stderr, out.stderr


@pytest.mark.parametrize("command", sorted(_finsight_commands()) if WORKFLOWS.is_dir() else [], ids=" ".join)
def test_finsight_commands_exist(command: tuple[str, ...]) -> None:
    out = subprocess.run([str(FINSIGHT), *command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"`finsight {' '.join(command)}` does not exist:\n{out.stderr}"
