"""Issue 21 items 8 and 9, CI side: deploys serialize per environment, run only from protected refs, read only their
own environment's credentials, install only hash-checked packages, and shared paths need both teams' approval.

GitHub settings (environments, rulesets) are not code; their intended state is reviewed data in .github/
(environments.yml, rulesets/main.yml) and these tests hold the workflows, CODEOWNERS and docs/ownership.md to it.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from finsight.config import repo_root
from tests.cicd.test_workflows import _job, _jobs, _step_index, _step_jobs, workflows

ROOT = repo_root()
GITHUB = ROOT / ".github"
PLAN, APPLY = "./.github/workflows/plan.yml", "./.github/workflows/apply.yml"
TEAMS = {"@finsight/data-engineering", "@finsight/devops"}
PROTECTED_REF = "github.ref == 'refs/heads/main' || startsWith(github.ref, 'refs/tags/v')"


def _environments() -> dict[str, Any]:
    return yaml.safe_load((GITHUB / "environments.yml").read_text())


def _trigger_ref(workflow: str) -> str:
    """The one ref pattern a top-level workflow runs on: `main` or `v*`."""
    on = workflows()[workflow]["on"]
    (push,) = [on["push"]]
    (ref,) = push.get("branches", []) + push.get("tags", [])
    return ref


def _deploy_jobs() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(caller workflow, job, GitHub environment, job) for every job that names an environment, reusable ones
    resolved through their callers."""
    out = []
    for wf, name, job in _jobs():
        if "uses" in job:
            target = job["uses"].rsplit("/", 1)[1]
            for inner_name, inner in workflows()[target]["jobs"].items():
                env = inner["environment"].replace("${{ inputs.environment }}", job["with"]["environment"])
                env = env.replace("${{ inputs.github-environment }}", job["with"].get("github-environment", ""))
                out.append((wf, f"{name}/{inner_name}", env, inner))
        elif "environment" in job and wf not in ("plan.yml", "apply.yml"):
            out.append((wf, name, job["environment"], job))
    return out


# -- item 9: one plan and one apply per environment at a time ------------------------------------------------------


def test_plan_and_apply_are_serialized_per_environment() -> None:
    plan, apply = _job("plan.yml", "plan"), _job("apply.yml", "apply")
    assert plan["concurrency"]["group"] == "plan-${{ inputs.environment }}"
    assert apply["concurrency"]["group"] == "deploy-${{ inputs.environment }}"
    # a cancelled apply is a half-applied change; a cancelled plan can leave the state lock held
    assert plan["concurrency"]["cancel-in-progress"] is False
    assert apply["concurrency"]["cancel-in-progress"] is False


# -- items 8/9: protected refs, environment-scoped credentials -----------------------------------------------------


def test_every_environment_a_job_uses_is_declared_and_admits_the_callers_ref() -> None:
    envs = _environments()["environments"]
    seen = set()
    for wf, name, env, _ in _deploy_jobs():
        assert env in envs, f"{wf}:{name} uses undeclared environment {env!r}"
        assert _trigger_ref(wf) in envs[env]["deployment_refs"], f"{wf}:{name}: {env} does not admit its ref"
        seen.add(env)
    assert seen == set(envs), f"declared but unused: {set(envs) - seen}"


def test_environments_admit_protected_refs_only() -> None:
    envs = _environments()["environments"]
    for name in ("build", "dev", "dev-plan"):  # the ones without reviewers that a merge reaches
        assert envs[name]["deployment_refs"] == ["main"], name
    for name, env in envs.items():
        assert set(env["deployment_refs"]) <= {"main", "v*"}, name
        if env["reviewers"]:
            assert env["prevent_self_review"] is True, name


def test_jobs_read_only_their_environments_variables_and_secrets() -> None:
    envs = _environments()["environments"]
    for wf, name, env, job in _deploy_jobs():
        text = yaml.safe_dump(job, width=10**6)
        used_vars = set(re.findall(r"\$\{\{ vars\.(\w+) \}\}", text))
        used_secrets = set(re.findall(r"\$\{\{ secrets\.(\w+) \}\}", text))
        assert used_vars <= set(envs[env]["variables"]), f"{wf}:{name} ({env}): {used_vars}"
        assert used_secrets <= set(envs[env]["secrets"]), f"{wf}:{name} ({env}): {used_secrets}"
    assert _environments()["repository_secrets"] == []  # repository secrets reach every branch, PRs included
    for _, name, job in _step_jobs():  # a job without an environment can only see repository secrets: none
        if "environment" not in job:
            assert "${{ secrets." not in yaml.safe_dump(job, width=10**6), name


def test_credentialed_jobs_refuse_unprotected_refs() -> None:
    assert _job("plan.yml", "plan")["if"] == PROTECTED_REF
    assert _job("apply.yml", "apply")["if"] == PROTECTED_REF
    assert _job("main.yml", "build")["if"] == "github.ref == 'refs/heads/main'"


def test_plan_runs_with_the_read_only_aws_role_apply_with_the_deploy_role() -> None:
    def role(wf: str, job: str) -> str:
        j = _job(wf, job)
        return j["steps"][_step_index(j, "configure-aws-credentials")]["with"]["role-to-assume"]

    assert role("plan.yml", "plan") == "${{ vars.AWS_PLAN_ROLE_ARN }}"
    assert role("apply.yml", "apply") == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
    envs = _environments()["environments"]
    for name, env in envs.items():  # the deploy role only where an apply runs behind its environment
        if name.endswith("-plan"):
            assert "AWS_DEPLOY_ROLE_ARN" not in env["variables"], name


def test_plan_job_runs_snowflake_as_the_read_only_plan_identity() -> None:
    """Item 8: the plan job never sees the deploy user or its key (neither does its GitHub environment); it writes
    the provider profiles for the plan identity and runs Terraform with the HOME it wrote them to. Apply writes the
    admin profiles and keeps the deploy identity behind its protected environment. Red when the plan job (or a
    `-plan` environment) references SNOWFLAKE_TERRAFORM_PRIVATE_KEY / _USER again, or plans as `--identity apply`."""
    deploy_key, deploy_user = "SNOWFLAKE_TERRAFORM_PRIVATE_KEY", "SNOWFLAKE_TERRAFORM_USER"
    plan_text = (ROOT / PLAN.removeprefix("./")).read_text()
    plan_steps = "\n".join(line for line in plan_text.splitlines() if not line.lstrip().startswith("#"))
    assert deploy_key not in plan_steps and deploy_user not in plan_steps
    for name, env in _environments()["environments"].items():
        if name.endswith("-plan"):
            assert deploy_key not in env["secrets"] and deploy_user not in env["variables"], name
            assert env["secrets"] == ["SNOWFLAKE_PLAN_PRIVATE_KEY"], name
    for wf, job_name, identity, user, key in (
        ("plan.yml", "plan", "plan", "SNOWFLAKE_PLAN_USER", "SNOWFLAKE_PLAN_PRIVATE_KEY"),
        ("apply.yml", "apply", "apply", deploy_user, deploy_key),
    ):
        job = _job(wf, job_name)
        i_profiles = _step_index(job, "finsight infra snowflake-profiles")
        i_tf = _step_index(job, "terraform -chdir")
        assert 0 <= i_profiles < i_tf, wf
        run = job["steps"][i_profiles]["run"]
        assert f"--identity {identity} " in run and '--home "$RUNNER_TEMP/terraform-home"' in run, wf
        env = job["steps"][i_tf]["env"]
        assert env["HOME"] == "${{ runner.temp }}/terraform-home", wf
        assert env["SNOWFLAKE_USER"] == f"${{{{ vars.{user} }}}}" and env["SNOWFLAKE_PRIVATE_KEY"] == (
            f"${{{{ secrets.{key} }}}}"
        ), wf


# -- item 9: hash-checked installs ----------------------------------------------------------------------------------

LOCKS = ("requirements.lock", "requirements-checkov.lock", "requirements-uv.lock")


def _lock_entries(path: Path) -> dict[str, list[str]]:
    """package==version -> its hashes, from a `uv pip compile --generate-hashes` file."""
    entries: dict[str, list[str]] = {}
    current = ""
    for line in path.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            current = line.split()[0]
            entries[current] = []
        elif "--hash=sha256:" in line:
            entries[current].append(line.split("--hash=sha256:")[1].split()[0])
    return entries


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_is_pinned_and_hashed(lock: str) -> None:
    entries = _lock_entries(ROOT / lock)
    assert entries
    for spec, hashes in entries.items():
        assert re.fullmatch(r"[A-Za-z0-9_.\[\],-]+==[^=\s]+", spec), f"{lock}: {spec} is not pinned"
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), f"{lock}: {spec} has no hash"


def test_make_setup_installs_only_with_require_hashes() -> None:
    """`make setup` is how every deploy job installs; each of its installs from a lock demands hashes."""
    recipe = Path(ROOT / "Makefile").read_text()
    installs = [ln.strip() for ln in recipe.splitlines() if re.search(r"\bpip install\b", ln)]
    from_locks = [ln for ln in installs if " -r " in ln]
    assert {ln.split(" -r ")[1].split()[0] for ln in from_locks} == set(LOCKS)
    for line in from_locks:
        assert "--require-hashes" in line, line
    for line in set(installs) - set(from_locks):  # the only other install: this checkout, no dependencies
        assert "--no-deps -e ." in line, line
    assert "--generate-hashes" in recipe.split("\nlock:", 1)[1].split("\n\n", 1)[0]  # `make lock` keeps them


def test_deploy_jobs_install_through_make_setup_only() -> None:
    for wf, name, job in _step_jobs():
        if _step_index(job, "configure-aws-credentials") < 0 or name == "build":  # build installs nothing
            continue
        runs = [s["run"] for s in job["steps"] if "run" in s]
        assert any(r.strip() == "make setup" for r in runs), f"{wf}:{name}"
        assert not any(re.search(r"\bpip install\b", r) for r in runs), f"{wf}:{name} installs outside the lock"


# -- item 9: CODEOWNERS: one team per path, both teams on shared paths ---------------------------------------------


def _codeowners() -> list[tuple[str, set[str]]]:
    lines = [ln.split("#")[0].split() for ln in (ROOT / "CODEOWNERS").read_text().splitlines()]
    return [(words[0], set(words[1:])) for words in lines if words]


def _as_ruleset_pattern(path: str) -> str:
    path = path.lstrip("/")
    return f"{path}**" if path.endswith("/") else path


def _ruleset_reviewers() -> dict[str, set[str]]:
    ruleset = yaml.safe_load((GITHUB / "rulesets" / "main.yml").read_text())
    (pr,) = [r for r in ruleset["rules"] if r["type"] == "pull_request"]
    assert pr["parameters"]["require_code_owner_review"] is True
    return {
        f"@finsight/{r['reviewer']['slug']}": set(r["file_patterns"])
        for r in pr["parameters"]["required_reviewers"]
        if r["minimum_approvals"] >= 1
    }


def test_codeowners_lines_name_one_team_or_both() -> None:
    for path, owners in _codeowners():
        assert owners <= TEAMS and owners, f"{path}: {owners}"


def test_shared_paths_need_an_approval_from_each_team() -> None:
    shared = {_as_ruleset_pattern(p) for p, owners in _codeowners() if owners == TEAMS}
    reviewers = _ruleset_reviewers()
    assert set(reviewers) == TEAMS
    for team, patterns in reviewers.items():
        assert patterns == shared, f"{team}: ruleset and CODEOWNERS disagree on {patterns ^ shared}"


def _owners_of(file: str) -> set[str]:
    owners: set[str] = set()
    for path, who in _codeowners():  # last match wins
        pattern = _as_ruleset_pattern(path)
        if path == "*" or fnmatch.fnmatch(file, pattern) or file == pattern:
            owners = who
    return owners


@pytest.mark.parametrize(
    ("file", "owners"),
    [("cdktf/finsight_infra/storage.py", {"@finsight/devops"}),
     (".github/workflows/apply.yml", {"@finsight/devops"}),
     ("connectors/pci.py", {"@finsight/data-engineering"}),
     ("snowpark/merge.py", {"@finsight/data-engineering"}),
     ("environments/prod.yaml", TEAMS), ("docs/runbooks/failed-merge.md", TEAMS), ("CODEOWNERS", TEAMS),
     ("connectors/Dockerfile", TEAMS), ("requirements.lock", TEAMS), (".github/environments.yml", TEAMS)],
)  # fmt: skip
def test_each_team_owns_its_paths_alone(file: str, owners: set[str]) -> None:
    assert (ROOT / file).exists(), file
    assert _owners_of(file) == owners


def test_ownership_doc_shared_paths_are_shared_in_codeowners() -> None:
    """docs/ownership.md says which areas are run jointly; each such path is a both-teams line."""
    shared = {p.strip("/") for p, owners in _codeowners() if owners == TEAMS}
    doc = (ROOT / "docs" / "ownership.md").read_text()
    for row in doc.splitlines():
        if row.startswith("|") and re.search(r"jointly(?! with)|shared review", row):  # not "with security"
            for path in re.findall(r"`([\w./*-]+)`", row.split("|")[2]):
                folder = path.split("*")[0].strip("/")  # `environments/*.yaml` is the environments/ folder
                assert folder in shared, f"ownership.md shares {path}; CODEOWNERS does not"
