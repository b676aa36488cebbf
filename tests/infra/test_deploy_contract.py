"""The deploy path, statically: the workflows read side by side with the synthesized stacks.

For every environment the workflows deploy, the job that plans a stack must supply every variable the stack
declares (from `finsight infra tfvars` or as TF_VAR_* in the step), every provider's credentials, and every
job/step output it reads must exist; the task definitions must run exactly the promoted image digest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finsight import tfvars
from finsight.cli import infra_cmd
from finsight.config import repo_root
from tests.infra.conftest import Synth

WORKFLOWS = repo_root() / ".github" / "workflows"
DIGEST = "sha256:" + "ab" * 32


def _wf(name: str) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def _step(job: dict[str, Any], needle: str) -> tuple[int, dict[str, Any]]:
    for i, step in enumerate(job["steps"]):
        if needle in step.get("run", "") or needle in step.get("uses", ""):
            return i, step
    raise AssertionError(f"no step containing {needle!r}")


def _image(s: Synth) -> str:
    assert s.env.release is not None
    return f"{s.env.release.registry()}/{s.env.release.ecr_repository}@{DIGEST}"


def _planned_kinds(script: str) -> list[str]:
    m = re.search(r"for kind in ([a-z ]+); do", script)
    assert m, script
    return m.group(1).split()


def _deployed_envs() -> set[str]:
    envs = set()
    for wf in ("main.yml", "promote.yml"):
        for job in _wf(wf)["jobs"].values():
            if job.get("uses") == "./.github/workflows/plan.yml":
                envs.add(job["with"]["environment"])
    return envs


def test_every_environment_with_infrastructure_is_deployed(synth_out: dict[str, Synth]) -> None:
    assert _deployed_envs() == set(synth_out)


def test_plan_and_apply_cover_every_stack_kind(stack: Synth) -> None:
    for wf, job in (("plan.yml", "plan"), ("apply.yml", "apply")):
        _, step = _step(_wf(wf)["jobs"][job], "terraform -chdir")
        kinds = _planned_kinds(step["run"])
        assert sorted(kinds) == sorted(stack.dirs), f"{wf} handles {kinds}"
        for kind in kinds:  # the loop's directory is the synthesized stack's
            assert "finsight-${FINSIGHT_ENV}-${kind}" in step["run"]
            assert stack.dirs[kind].name == f"finsight-{stack.env.name}-{kind}"


def _tfvars_files(s: Synth, tmp_path: Path) -> dict[str, dict[str, str]]:
    """Run the very command the plan job runs, on a copy of this env's synthesized stacks."""
    out = tmp_path / "out"
    for d in s.dirs.values():
        (out / "stacks" / d.name).mkdir(parents=True)
        (out / "stacks" / d.name / "cdk.tf.json").write_text((d / "cdk.tf.json").read_text())
    app = __import__("typer").Typer()
    infra_cmd.register(app)
    args = ["infra", "tfvars", "--env", s.env.name, "--image", _image(s), "--outdir", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return {kind: json.loads((out / "stacks" / d.name / tfvars.TFVARS_FILE).read_text()) for kind, d in s.dirs.items()}


def test_every_variable_of_every_stack_is_supplied_by_the_plan_job(stack: Synth, tmp_path: Path) -> None:
    plan = _wf("plan.yml")["jobs"]["plan"]
    i_vars, vars_step = _step(plan, "finsight infra tfvars")
    i_plan, plan_step = _step(plan, "terraform -chdir")
    assert i_vars < i_plan
    assert '--env "$FINSIGHT_ENV"' in vars_step["run"] and '--image "$(cat cdktf/cdktf.out/IMAGE)"' in vars_step["run"]
    from_job = {k.removeprefix("TF_VAR_") for k in plan_step.get("env", {}) if k.startswith("TF_VAR_")}
    files = _tfvars_files(stack, tmp_path)
    for kind in stack.dirs:
        declared = getattr(stack, kind).get("variable", {})
        required = {name for name, v in declared.items() if "default" not in v}
        supplied = set(files[kind]) | from_job
        missing = required - supplied
        assert not missing, f"{stack.names.stack_id(kind)}: no value for {sorted(missing)} in the plan job"
        assert set(files[kind]) <= set(declared), "tfvars for a variable the stack does not declare"
    for name in from_job:  # every TF_VAR_ the job sets is declared somewhere and sourced from GitHub
        assert tfvars.variable(name).source == "github"
        assert plan_step["env"][f"TF_VAR_{name}"].startswith("${{ vars.")


def test_variables_table_matches_the_stacks(stack: Synth) -> None:
    for kind in stack.dirs:
        declared = set(getattr(stack, kind).get("variable", {}))
        assert declared == {v.name for v in tfvars.variables(kind)}, kind  # type: ignore[arg-type]


def test_provider_credentials_are_supplied_where_terraform_runs(stack: Synth) -> None:
    providers = {name for kind in stack.dirs for name in getattr(stack, kind)["provider"]}
    assert providers == {"aws", "snowflake"}
    for _, cfg in [(p, c) for p in stack.snowflake["provider"]["snowflake"] for c in [p]]:
        assert cfg["authenticator"] == "SNOWFLAKE_JWT"  # key-pair auth
        assert cfg["organization_name"] and cfg["account_name"] and cfg["profile"] in tfvars.SNOWFLAKE_PROVIDER_PROFILES
        # user and key from the job's environment, the role from the profile file the job writes (plan or apply)
        assert not {"password", "private_key", "user", "token", "role"} & set(cfg)
    for wf, job_name in (("plan.yml", "plan"), ("apply.yml", "apply")):
        job = _wf(wf)["jobs"][job_name]
        i_tf, tf_step = _step(job, "terraform -chdir")
        i_aws, aws_step = _step(job, "configure-aws-credentials")
        assert i_aws < i_tf, f"{wf}: AWS credentials (OIDC) before terraform"
        assert aws_step["with"]["role-to-assume"].startswith("${{ vars.AWS_")
        env = tf_step["env"]
        assert env["SNOWFLAKE_USER"].startswith("${{ vars.")
        assert env["SNOWFLAKE_PRIVATE_KEY"].startswith("${{ secrets.")  # the private key is a GitHub secret
        assert "SNOWFLAKE_PASSWORD" not in env


def test_no_cross_stack_state_dependency(stack: Synth) -> None:
    for kind in stack.dirs:
        assert "terraform_remote_state" not in getattr(stack, kind).get("data", {}), kind
        text = json.dumps(getattr(stack, kind))
        other = next(k for k in stack.dirs if k != kind)
        assert stack.names.state_key(other) not in text  # never reads the other stack's state


def _declared_outputs(wf: dict[str, Any]) -> dict[str, set[str]]:
    return {name: set(job.get("outputs", {})) for name, job in wf["jobs"].items()}


@pytest.mark.parametrize("name", ["main.yml", "promote.yml", "plan.yml", "apply.yml"])
def test_every_output_read_is_produced(name: str) -> None:
    wf = _wf(name)
    outputs = _declared_outputs(wf)
    text = (WORKFLOWS / name).read_text()
    for job, out in re.findall(r"needs\.([\w-]+)\.outputs\.([\w-]+)", text):
        assert out in outputs[job], f"{name}: needs.{job}.outputs.{out} is not declared"
    for job_name, job in wf["jobs"].items():
        ids = {s.get("id") for s in job.get("steps", [])}
        for value in job.get("outputs", {}).values():
            for step_id, _ in re.findall(r"steps\.([\w-]+)\.outputs\.([\w-]+)", value):
                assert step_id in ids, f"{name}:{job_name} output reads missing step {step_id}"
    for i_job in wf["jobs"].values():  # a step output read within a job comes from an earlier step
        seen: set[str] = set()
        for step in i_job.get("steps", []):
            for step_id in re.findall(r"steps\.([\w-]+)\.outputs", json.dumps(step)):
                assert step_id in seen, f"{name}: steps.{step_id} read before it ran"
            if "id" in step:
                seen.add(step["id"])


def test_the_image_written_to_the_release_is_the_pushed_digest() -> None:
    main = _wf("main.yml")["jobs"]
    build = main["build"]
    _, push = _step(build, "build-push-action")
    _, image = _step(build, "image=")
    assert push["id"] == "push" and push["with"]["push"] is True
    assert image["env"]["DIGEST"] == "${{ steps.push.outputs.digest }}"
    assert "@${DIGEST}" in image["run"]  # by digest, never by tag
    assert build["outputs"]["image"] == "${{ steps.image.outputs.image }}"
    synth = main["synth"]
    assert synth["env"]["IMAGE"] == "${{ needs.build.outputs.image }}"
    _, record = _step(synth, "cdktf.out/IMAGE")
    assert 'echo "$IMAGE" > cdktf/cdktf.out/IMAGE' in record["run"]


def test_task_definitions_run_the_promoted_digest(stack: Synth, tmp_path: Path) -> None:
    tds = stack.resources("aws", "aws_ecs_task_definition").values()
    assert tds
    for td in tds:
        (container,) = json.loads(td["container_definitions"])
        assert container["image"] == "${var.connector_image}"
    assert _tfvars_files(stack, tmp_path)["aws"]["connector_image"] == _image(stack)


def test_image_variable_accepts_only_a_digest_of_the_release_repository(stack: Synth) -> None:
    (validation,) = stack.aws["variable"]["connector_image"]["validation"]
    # the HCL string escapes each backslash once more; undo it to get the RE2 pattern Terraform evaluates
    hcl = re.search(r'regex\("(.*)", var\.connector_image\)', validation["condition"])
    assert hcl
    pattern = hcl.group(1).replace("\\\\", "\\")
    assert re.fullmatch(pattern, _image(stack))
    tag = _image(stack).replace(f"@{DIGEST}", ":latest")
    assert not re.fullmatch(pattern, tag)
    assert not re.fullmatch(pattern, _image(stack).replace(stack.env.release.ecr_account_id, "999999999999"))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "image", [None, "finsight-connectors:latest", f"123.dkr.ecr.us-east-1.amazonaws.com/x@{DIGEST}"]
)
def test_tfvars_refuses_anything_but_the_release_digest(tmp_path: Path, image: str | None) -> None:
    app = __import__("typer").Typer()
    infra_cmd.register(app)
    out = tmp_path / "out"
    args = ["infra", "tfvars", "--env", "dev", "--outdir", str(out)] + (["--image", image] if image else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--image" in result.output
    assert not out.exists()  # nothing half-written


def test_apply_order_works_on_a_fresh_account_without_identities(tmp_path: Path) -> None:
    """Before Snowflake's identities are recorded, the AWS stack trusts nothing of Snowflake's and still plans."""
    import cdktn
    from finsight_infra.aws_stack import AwsStack
    from finsight_infra.naming import Names

    from finsight.config import load_environment

    env = load_environment("dev")
    fresh = env.model_copy(update={"governance": env.governance.model_copy(update={"identities": None})})  # type: ignore[union-attr]
    app = cdktn.Testing.app()
    aws = json.loads(cdktn.Testing.synth(AwsStack(app, Names(fresh))))
    roles = {r["name"] for r in aws["resource"]["aws_iam_role"].values()}
    names = Names(fresh)
    assert not {names.snowflake_storage_role, names.snowflake_alerts_role, names.snowflake_archive_role} & roles
    assert "SnowpipeSubscribes" not in json.dumps(aws["resource"]["aws_sns_topic_policy"])


def test_build_pushes_to_the_configured_release_repository(synth_out: dict[str, Synth]) -> None:
    build = _wf("main.yml")["jobs"]["build"]
    _, push = _step(build, "build-push-action")
    _, image = _step(build, "image=")
    for s in synth_out.values():
        repo = s.env.release.ecr_repository  # type: ignore[union-attr]
        assert push["with"]["tags"] == f"${{{{ steps.ecr.outputs.registry }}}}/{repo}:${{{{ github.sha }}}}"
        assert f"${{REGISTRY}}/{repo}@${{DIGEST}}" in image["run"]
