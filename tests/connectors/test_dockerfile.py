"""Static checks of connectors/Dockerfile (Docker cannot run here) against the ECS runtime contract in cdktf.

Non-root numeric user matching the task definition, no secrets baked in, pinned base, read-only-root friendly,
only the allowed folders copied, the dependency list covering what the connector imports, and the entrypoint
module actually starting (and failing cleanly without configuration).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from finsight.config import load_environment, repo_root

ROOT = repo_root()
DOCKERFILE = ROOT / "connectors" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"  # the build context is the repo root (main.yml: context ".")
COMPUTE = ROOT / "cdktf" / "finsight_infra" / "compute.py"
LOCK = ROOT / "requirements.lock"
ALLOWED_COPIES = {"requirements.lock", "finsight/", "connectors/", "environments/"}
SECRET_NAME = re.compile(r"(KEY|PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL)", re.IGNORECASE)
# the one remote file the image holds: Amazon RDS's public CA bundle, the trust anchor of every source connection
RDS_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
RDS_DIGEST_ARG = "RDS_CA_BUNDLE_SHA256"


@functools.cache
def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            out.append((keyword.upper(), args.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def final(keyword: str) -> list[str]:
    return [args for k, args in stages()[-1] if k == keyword]


def env_pairs() -> dict[str, str]:
    pairs: dict[str, str] = {}
    for args in final("ENV"):
        for item in re.findall(r"(\w+)=(\S+)", args):
            pairs[item[0]] = item[1]
    return pairs


def test_base_images_pinned_to_a_python_311_patch_version() -> None:
    images = [args.split()[0] for k, args in instructions() if k == "FROM" and not args.startswith("--")]
    assert images, "no FROM"
    for image in images:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image


def test_runs_as_the_task_definitions_numeric_non_root_user() -> None:
    users = final("USER")
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER must be numeric (ECS/Kubernetes can verify non-root): {user}"
    assert int(user.split(":")[0]) != 0
    contract = re.search(r'CONTAINER_USER = "([^"]+)"', COMPUTE.read_text())
    assert contract and contract.group(1) == user, "Dockerfile USER and compute.CONTAINER_USER disagree"


def test_no_secrets_baked_into_the_image() -> None:
    for keyword, args in instructions():
        if keyword in ("ENV", "ARG", "LABEL"):
            for name in re.findall(r"(\w+)\s*=", args) or [args.split()[0]]:
                assert not SECRET_NAME.search(name), f"{keyword} {name}: secrets come from Secrets Manager at run time"
        if keyword in ("COPY", "ADD"):
            public = args.replace(RDS_BUNDLE_URL, "").replace("rds-global-bundle.pem", "")  # public CA certs only
            assert not re.search(r"\.env\b|\.pem\b|id_rsa|credentials", public), f"{keyword} {args}"


def test_read_only_root_filesystem_friendly() -> None:
    env = env_pairs()
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("HOME") == "/tmp" and env.get("TMPDIR") == "/tmp"  # the only writable path in the task
    assert 'SCRATCH_PATH = "/tmp"' in COMPUTE.read_text()


def test_copies_only_the_allowed_folders() -> None:
    for keyword, args in instructions():
        if keyword == "ADD" and RDS_BUNDLE_URL not in args.split():
            pytest.fail("use COPY, not ADD (no remote URLs or archive magic; the pinned RDS CA bundle excepted)")
        if keyword == "COPY" and "--from=" not in args:
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            assert set(sources) <= ALLOWED_COPIES, args


def test_rds_ca_bundle_is_pinned_by_checksum_at_the_path_the_config_names() -> None:
    """The connectors verify RDS (sslmode=verify-full) against `sslrootcert`: the image must hold exactly that file,
    fetched over https and refused unless its sha256 is the reviewed digest (AWS publishes none:
    docs/connectors.md "The RDS CA bundle" says how the digest is verified and rotated)."""
    adds = [args.split() for k, args in stages()[-1] if k == "ADD"]
    assert len(adds) == 1, f"the runtime stage must ADD the RDS CA bundle once: {adds}"
    flags = dict(f.removeprefix("--").split("=", 1) for f in adds[0] if f.startswith("--"))
    url, dest = [a for a in adds[0] if not a.startswith("--")]
    assert url == RDS_BUNDLE_URL
    configured = {
        str(src.connection.sslrootcert)
        for name in ("dev", "staging", "prod")
        for src in load_environment(name).postgres_sources.values()
        if src.connection
    }
    assert configured == {dest}, f"the image ships {dest}, the config verifies against {configured}"
    digest = flags.get("checksum", "")
    if digest != f"sha256:${{{RDS_DIGEST_ARG}}}":
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"ADD --checksum must pin a sha256: {digest!r}"
    else:  # from a build argument with no default: a build without the digest fails instead of trusting the URL
        args = [a for k, a in stages()[-1] if k == "ARG"]
        assert RDS_DIGEST_ARG in args, f"ARG {RDS_DIGEST_ARG} (no default) must be declared in the runtime stage"
        main = (ROOT / ".github" / "workflows" / "main.yml").read_text()
        assert f"{RDS_DIGEST_ARG}=${{{{ vars.{RDS_DIGEST_ARG} }}}}" in main, "main.yml must pass the digest"
    assert int(flags.get("chmod", "0600"), 8) & 0o004, "a remote ADD is 0600 root: the connector user could not read it"
    assert any(k == "RUN" and f"cafile='{dest}'" in a for k, a in stages()[-1]), "the build loads the bundle as CAs"


def test_dockerignore_is_an_allow_list_at_the_build_context_root() -> None:
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "deny everything first, then re-include"
    assert {ln[1:] for ln in lines if ln.startswith("!")} == ALLOWED_COPIES
    main = (ROOT / ".github" / "workflows" / "main.yml").read_text()
    assert "context: ." in main and "file: connectors/Dockerfile" in main


def test_batch_entrypoint_and_no_healthcheck() -> None:
    assert json.loads(final("ENTRYPOINT")[-1]) == ["python", "-m", "connectors"]
    assert (ROOT / "connectors" / "__main__.py").is_file()
    assert final("HEALTHCHECK") == ["NONE"]
    assert not final("CMD")


# -- dependencies ------------------------------------------------------------------------------------------------
def installed_packages() -> list[str]:
    """Requirement strings of the `pip install` in the build stage."""
    run = next(args for k, args in instructions() if k == "RUN" and "pip install" in args)
    words = run.split("pip install", 1)[1].split("&&", 1)[0].split()
    assert "--constraint" in words and words[words.index("--constraint") + 1].endswith("requirements.lock")
    return [w.strip('"') for w in words if not w.startswith("-") and not w.endswith("requirements.lock")]


def _third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"connectors", "finsight", "__future__"}


def connector_imports() -> set[str]:
    """Top-level third-party modules imported by connectors/ and the finsight modules it uses."""
    files = list((ROOT / "connectors").rglob("*.py"))
    files += [ROOT / "finsight" / p for p in ("config/models.py", "config/loader.py", "secrets.py", "aws.py")]
    files.append(ROOT / "finsight" / "catalog.py")
    return set().union(*(_third_party_imports(f) for f in files))


def _closure(names: list[str]) -> set[str]:
    """Distribution names reachable from `names` (extras and environment markers of this platform honoured)."""
    seen: set[str] = set()
    todo = [Requirement(n) for n in names]
    while todo:
        req = todo.pop()
        key = req.name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for raw in metadata.requires(req.name) or []:
            dep = Requirement(raw)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                todo.append(dep)
    return seen


def test_image_dependencies_cover_the_connector_imports() -> None:
    provided = _closure(installed_packages())
    dists = metadata.packages_distributions()
    missing = {}
    for module in connector_imports():
        owners = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not owners & provided:
            missing[module] = owners
    assert not missing, f"imported by the connector but not installed in the image: {missing}"


def test_lock_pins_the_whole_runtime_closure() -> None:
    pinned = {ln.split("==")[0].lower() for ln in LOCK.read_text().splitlines() if "==" in ln and not ln[0].isspace()}
    unpinned = _closure(installed_packages()) - pinned
    assert not unpinned, f"`pip install --constraint requirements.lock` would float these: {sorted(unpinned)}"


# -- the entrypoint starts ---------------------------------------------------------------------------------------
def test_entrypoint_without_configuration_exits_2_naming_finsight_env() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FINSIGHT_")}
    clean |= {"PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "connectors"],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert "FINSIGHT_ENV" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_entrypoint_help_exits_0() -> None:
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-m", "connectors", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0 and "FINSIGHT_ENV" in out.stdout


def test_the_image_ships_the_native_pan_loop_or_does_not_build(tmp_path: Path) -> None:
    """connectors.pci falls back to hashlib without connectors/_panmac (same tokens, ~10x the CPU): the build stage
    compiles it, the runtime stage copies it beside connectors/ and refuses to build when it does not import. The
    build stage's gcc line is run here against this machine's Python and OpenSSL, and the result is imported."""
    build, runtime = stages()[0], stages()[-1]
    (compile_step,) = [args for keyword, args in build if keyword == "RUN" and "_panmac.c" in args]
    assert any(k == "COPY" and "--from=build" in a and "_panmac" in a and "/app/connectors/" in a for k, a in runtime)
    assert any(k == "RUN" and "import connectors._panmac" in a for k, a in runtime)
    gcc = compile_step[compile_step.index("gcc -shared") :].replace("/build/connectors/", f"{ROOT}/connectors/")
    gcc = gcc.replace('"/build/_panmac', f'"{tmp_path}/_panmac').replace("python ", f"{sys.executable} ")
    subprocess.run(["bash", "-c", gcc], check=True, timeout=120)
    (built,) = tmp_path.glob("_panmac*.so")
    spec = importlib.util.spec_from_file_location("connectors._panmac", built)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.hmac_sha256_hex)
