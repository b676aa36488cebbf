"""`finsight infra ...`: synthesize the CDK Terrain stacks and scan them with checkov (nothing is ever applied).

Synthesis runs `cdktf/main.py` in a subprocess with the project venv's Python, so the CLI itself never imports
jsii (a Node.js process and ~600 MB of provider bindings). checkov lives in its own venv (`.venv-checkov`) because
its pins clash with the platform's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

from finsight import tfvars
from finsight.cli.common import environment
from finsight.config import ENVIRONMENTS, repo_root

INFRA_ENVIRONMENTS = tuple(e for e in ENVIRONMENTS if e != "local")  # `local` runs on moto/fakesnow, no IaC
# Node 20 is past jsii's support window: keep its banners out of every synth's output.
JSII_QUIET = {
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}

infra_app = typer.Typer(help="Synthesize and scan the CDK Terrain stacks (never applies).", no_args_is_help=True)
InfraEnvOption = typer.Option(None, "--env", "-e", help="dev, staging or prod (default: all three).")
OutdirOption = typer.Option(None, "--outdir", help="Synth output directory (default: cdktf/cdktf.out).")


@dataclass(frozen=True)
class Skip:
    id: str
    why: str


@dataclass(frozen=True)
class ScanResult:
    stack: str
    passed: int
    failed: int
    skipped: int
    parsing_errors: int  # a file checkov cannot parse is scanned for nothing: count it as a failure
    failures: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.parsing_errors == 0


def cdktf_dir() -> Path:
    return repo_root() / "cdktf"


def skips_file() -> Path:
    return cdktf_dir() / "checkov-skips.yaml"


def _venv_bin(venv: str, tool: str) -> Path:
    return repo_root() / venv / "bin" / tool


def load_skips(path: Path | None = None) -> list[Skip]:
    """The explicit skip list; an entry without a reason is an error, not a silent skip."""
    path = path or skips_file()
    entries = (yaml.safe_load(path.read_text()) or {}).get("skips") or []
    skips = [Skip(id=str(e.get("id", "")).strip(), why=" ".join(str(e.get("why", "")).split())) for e in entries]
    for skip in skips:
        if not skip.id or not skip.why:
            raise ValueError(f"{path}: every skip needs an `id` and a `why` (got {skip})")
    return skips


def synth(envs: tuple[str, ...], outdir: Path) -> list[Path]:
    """Run cdktf/main.py; return the synthesized stack directories listed in the output manifest."""
    python = _venv_bin(".venv", "python")
    cmd = [
        str(python if python.exists() else Path(sys.executable)),
        str(cdktf_dir() / "main.py"),
        "--outdir",
        str(outdir),
    ]
    for env in envs:
        cmd += ["--env", env]
    subprocess.run(cmd, check=True, cwd=repo_root(), env={**os.environ, **JSII_QUIET})
    manifest = json.loads((outdir / "manifest.json").read_text())
    return [outdir / stack["workingDirectory"] for stack in manifest["stacks"].values()]


def checkov(stack_dir: Path, skips: list[Skip]) -> ScanResult:
    cmd = [str(_venv_bin(".venv-checkov", "checkov")), "-d", str(stack_dir), "--framework", "terraform_json"]
    cmd += ["-o", "json", "--compact", "--skip-download"]  # --compact: no code blocks; --skip-download: offline
    if skips:
        cmd += ["--skip-check", ",".join(s.id for s in skips)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):  # 1 means "checks failed", anything else means checkov itself failed
        raise RuntimeError(f"checkov failed on {stack_dir} (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    # checkov prints a report per framework, a list of them, or only a bare summary when no check applies
    # (the Snowflake stacks: checkov has no Snowflake checks).
    reports = [r if "summary" in r else {"summary": r} for r in (report if isinstance(report, list) else [report])]
    failures = [f for r in reports for f in (r.get("results") or {}).get("failed_checks", [])]
    total = {k: sum(r["summary"][k] for r in reports) for k in ("passed", "failed", "skipped", "parsing_errors")}
    return ScanResult(
        stack_dir.name, total["passed"], total["failed"], total["skipped"], total["parsing_errors"], failures
    )


def _envs(env: str | None) -> tuple[str, ...]:
    if env is None:
        return INFRA_ENVIRONMENTS
    if env not in INFRA_ENVIRONMENTS:
        typer.secho(f"no infrastructure for {env!r}; choose one of {', '.join(INFRA_ENVIRONMENTS)}", fg="red", err=True)
        raise typer.Exit(2)
    environment(env)  # config errors exit 2 with file and field, before the slow synth starts
    return (env,)


@infra_app.command("synth")
def synth_cmd(env: str | None = InfraEnvOption, outdir: Path | None = OutdirOption) -> None:
    """Synthesize the AWS and Snowflake stacks to Terraform JSON."""
    from finsight.cli.progress import stages

    with stages("cdktn synth", ["synth"]) as progress:
        progress("synth " + ", ".join(_envs(env)))
        stacks = synth(_envs(env), outdir or cdktf_dir() / "cdktf.out")
    for stack in stacks:
        typer.echo(f"synthesized {stack}")


@infra_app.command("scan")
def scan_cmd(env: str | None = InfraEnvOption, outdir: Path | None = OutdirOption) -> None:
    """Synthesize, then run checkov on every stack with the skip list; exit 1 on a failed check or parse error."""
    from finsight.cli.progress import stages

    skips = load_skips()
    with stages("cdktn synth", ["synth"]) as progress:
        progress("synth " + ", ".join(_envs(env)))
        stacks = synth(_envs(env), outdir or cdktf_dir() / "cdktf.out")
    ok = True
    results = []
    with stages("checkov", [Path(s).name for s in stacks]) as progress:
        for stack in stacks:
            progress(Path(stack).name)
            results.append(checkov(stack, skips))
    for result in results:
        ok = ok and result.ok
        typer.echo(
            f"{result.stack}: {result.passed} passed, {result.failed} failed, {result.skipped} skipped, "
            f"{result.parsing_errors} parsing errors"
        )
        for f in result.failures:
            typer.secho(f"  {f['check_id']} {f['resource']}: {f['check_name']}", fg="red")
    typer.echo(f"skipped everywhere: {', '.join(s.id for s in skips)} (reasons in {skips_file()})")
    if not ok:
        raise typer.Exit(1)


@infra_app.command("tfvars")
def tfvars_cmd(
    env: str = typer.Option(..., "--env", "-e", help="dev, staging or prod."),
    image: str | None = typer.Option(None, "--image", help="Connector image by digest (the build job's output)."),
    outdir: Path | None = OutdirOption,
) -> None:
    """Write terraform.tfvars.json into the env's synthesized stacks: config values + the promoted image digest.

    Variables sourced from the GitHub environment (TF_VAR_*) are listed, not written: the job provides them.
    """
    (name,) = _envs(env)
    cfg = environment(name)
    stacks = (outdir or cdktf_dir() / "cdktf.out") / "stacks"
    dirs: dict[tfvars.StackKind, Path] = {kind: stacks / f"finsight-{name}-{kind}" for kind in ("aws", "snowflake")}
    try:
        written = tfvars.write(cfg, dirs, image)
    except tfvars.TfvarsError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    for path in written:
        typer.echo(f"wrote {path}")
    for var in tfvars.VARIABLES:
        if var.source == "github":
            typer.echo(f"from the job environment: {var.env_var} ({var.stack} stack)")


@infra_app.command("snowflake-profiles")
def snowflake_profiles_cmd(
    env: str = typer.Option(..., "--env", "-e", help="dev, staging or prod."),
    identity: str = typer.Option(..., "--identity", help="plan (read-only plan role) or apply (the admin roles)."),
    home: Path = typer.Option(..., "--home", help="The HOME the job runs Terraform with (a directory of its own)."),
) -> None:
    """Write <home>/.snowflake/config (0600): which role each Snowflake provider profile of the stack uses."""
    from finsight.private_file import write_private

    (name,) = _envs(env)
    if identity not in ("plan", "apply"):
        typer.secho(f"--identity: {identity!r} is neither plan nor apply", fg="red", err=True)
        raise typer.Exit(2)
    cfg = environment(name)
    path = home / tfvars.SNOWFLAKE_CONFIG
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, tfvars.snowflake_profiles_toml(cfg, identity))  # type: ignore[arg-type]
    roles = tfvars.snowflake_profiles(cfg, identity)  # type: ignore[arg-type]
    typer.echo(f"wrote {path}: " + ", ".join(f"{p}={r}" for p, r in roles.items()))


def register(app: typer.Typer) -> None:
    app.add_typer(infra_app, name="infra")
