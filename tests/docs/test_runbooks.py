"""The runbooks stay usable: required sections, working links, names that match the config, commands that exist.

A `finsight ...` command cited anywhere in docs/ must exist (`finsight <group> <cmd> --help` exits 0) and accept
every `--option` cited with it.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from finsight_infra.naming import Names

from finsight.config import load_environment, repo_root

ROOT = repo_root()
DOCS = ROOT / "docs"
RUNBOOKS = DOCS / "runbooks"
FINSIGHT = Path(sys.executable).with_name("finsight")
REQUIRED_SECTIONS = ("Symptom", "Owner", "Checks", "Decision", "Recovery", "Verify")
REQUIRED_RUNBOOKS = {
    "connector-task-failed",
    "snowpipe-not-loading",
    "dag-run-failed",
    "sla-breach",
    "source-schema-change",
    "bad-data-landed",
    "secret-rotation",
    "cost-alert",
    "pan-in-clear",
    "stuck-backfill",
    "source-db-unreachable",
    "rotated-credentials",
    "api-rate-limiting",
    "quarantined-schema-change",
    "quarantined-file",
    "stalled-pipe",
    "failed-merge",
    "quality-error",
    "warehouse-quota",
}
DEPLOYED_ENVS = ("dev", "staging", "prod")


_CODE = re.compile(r"```[^\n]*\n(.*?)```|`([^`\n]+)`", re.DOTALL)
_COMMAND = re.compile(r"(?:^|[\s(\"'$])(?:\.venv/bin/)?finsight((?:\s+[a-z][a-z-]*){1,2})((?:\s+(?!\|)[^\s;&)`]+)*)")


def runbooks() -> list[Path]:
    return sorted(p for p in RUNBOOKS.glob("*.md") if p.name != "README.md")


def doc_files() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def _sections(path: Path) -> list[str]:
    return re.findall(r"^## (.+?)\s*$", path.read_text(), re.MULTILINE)


@functools.cache
def citations() -> list[tuple[tuple[str, ...], str]]:
    """(command path, the rest of the line) for every `finsight ...` in code spans and fenced blocks of docs/."""
    raw = []
    for path in doc_files():
        for block, span in _CODE.findall(path.read_text()):
            for line in (block or span).replace("\\\n", " ").splitlines():
                raw += [(tuple(words.split()), rest) for words, rest in _COMMAND.findall(line)]
    # each `finsight ... --help` is a Python start-up of a few seconds: run every one needed side by side, once
    wanted = {c for c, _ in raw} | {c[:1] for c, _ in raw}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(_help, sorted(wanted)))
    out = []
    for command, rest in raw:
        if len(command) == 2 and not _is_group(command[0]):
            command = command[:1]  # a positional argument, not a subcommand
        out.append((command, rest))
    return out


def cited_commands() -> dict[tuple[str, ...], set[str]]:
    """(command path) -> options cited with it."""
    out: dict[tuple[str, ...], set[str]] = {}
    for command, rest in citations():
        out.setdefault(command, set()).update(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest))
    return out


def _help_env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


@functools.cache
def _help(command: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FINSIGHT), *command, "--help"], cwd=ROOT, env=_help_env(), capture_output=True, text=True, timeout=120
    )


@functools.cache
def _is_group(name: str) -> bool:
    result = _help((name,))
    return result.returncode == 0 and "Commands" in result.stdout


# -- structure ----------------------------------------------------------------------------------------------------
def test_the_required_runbooks_exist() -> None:
    assert {p.stem for p in runbooks()} >= REQUIRED_RUNBOOKS


@pytest.mark.parametrize("path", runbooks(), ids=lambda p: p.name)
def test_runbook_has_the_required_sections_in_order(path: Path) -> None:
    sections = [s for s in _sections(path) if s in REQUIRED_SECTIONS]
    assert sections == list(REQUIRED_SECTIONS), f"{path.name}: sections {sections}"
    for section in REQUIRED_SECTIONS:
        body = path.read_text().split(f"## {section}", 1)[1].split("\n## ", 1)[0]
        assert len(body.strip()) > 40, f"{path.name}: section {section} is empty"


@pytest.mark.parametrize("path", runbooks(), ids=lambda p: p.name)
def test_runbook_names_an_owner_team(path: Path) -> None:
    owner = path.read_text().split("## Owner", 1)[1].split("\n## ", 1)[0].lower()
    assert "data engineering" in owner or "devops" in owner or "shared" in owner


def test_index_lists_every_runbook() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    for path in runbooks():
        assert f"({path.name})" in index, f"README.md does not link {path.name}"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_resolve(path: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if "://" not in target:
            assert (path.parent / target).resolve().exists(), f"{path.name}: broken link {target}"


def test_ownership_page_links_promotion_and_runbooks() -> None:
    text = (DOCS / "ownership.md").read_text()
    assert "(promotion.md)" in text and "(runbooks/README.md)" in text


# -- consistency with config and IaC --------------------------------------------------------------------------------
@pytest.mark.parametrize("env_name", DEPLOYED_ENVS)
def test_names_in_the_index_match_the_config(env_name: str) -> None:
    names = Names(load_environment(env_name))
    index = (RUNBOOKS / "README.md").read_text()
    expected = [
        *names.alert_topics.values(),
        names.cluster,
        names.task_family("<source>"),
        names.schedule("<source>", "hourly"),
        names.log_group("<source>"),
        names.platform_log_group("events/connector-task-failed"),
        names.scheduler_dlq,
        names.pipeline_events_queue,
        names.pipeline_events_dlq,
        f"s3://{names.raw_bucket}/{names.raw_prefix}/",
        names.sf_database,
        names.sf_pipeline_role,
        names.sf_user,
        names.sf_warehouse("load"),
        names.sf_warehouse("transform"),
        names.sf_resource_monitor("load"),
        names.sf_resource_monitor("transform"),
        names.sf_notification_integration,
    ]
    missing = [n for n in expected if f"`{n}" not in index]
    assert not missing, f"docs/runbooks/README.md is out of date for {env_name}: {missing}"


def test_every_alarm_is_routed_in_the_ownership_page() -> None:
    source = (ROOT / "cdktf" / "finsight_infra" / "observability.py").read_text()
    alarms = re.findall(r'_alarm\(\s*scope,\s*"([a-z0-9-]+)"', source)
    assert alarms, "no alarms found in observability.py"
    text = (DOCS / "ownership.md").read_text()
    for alarm in alarms:
        assert f"finsight-<env>-{alarm}" in text, f"alarm {alarm} has no routing row in docs/ownership.md"
    prod = load_environment("prod").aws.alert_topics
    assert all(topic in text for topic in prod.values())


# -- commands -------------------------------------------------------------------------------------------------------
def test_docs_cite_commands() -> None:
    cited = cited_commands()
    assert ("extract",) in cited and ("local", "status") in cited and ("dag", "history") in cited


@pytest.mark.parametrize("command", sorted(cited_commands()), ids=lambda c: " ".join(c))
def test_cited_command_exists_with_its_options(command: tuple[str, ...]) -> None:
    result = _help(command)
    assert result.returncode == 0, f"`finsight {' '.join(command)}` does not exist:\n{result.stderr[-800:]}"
    unknown = sorted(o for o in cited_commands()[command] if o not in result.stdout)
    assert not unknown, f"`finsight {' '.join(command)}` has no option(s) {unknown}"


# Commands that act on the local stack only: citing them for a deployed environment sends the on-call astray.
LOCAL_ONLY = {("dag", "run"), ("run",)}


def test_local_only_commands_are_cited_for_local() -> None:
    for command, rest in citations():
        if command in LOCAL_ONLY:
            env = re.search(r"(?:--env|-e)\s+(\S+)", rest)  # no --env: the CLI's default, local
            assert env is None or env.group(1) == "local", f"`finsight {' '.join(command)}{rest}` is local only"


# -- alerts: every alert type links a runbook, which exists, is indexed and cites only commands that exist -------------
def test_every_alert_type_links_an_existing_runbook() -> None:
    from finsight.ops.alerts import ALERT_TYPES

    index = (RUNBOOKS / "README.md").read_text()
    cited = {c for c, _ in citations()}
    for kind in ALERT_TYPES.values():
        path = RUNBOOKS / kind.runbook
        assert path.exists(), f"alert {kind.name}: runbook {kind.runbook} does not exist"
        assert f"`{kind.name}`" in index and f"({kind.runbook})" in index, f"alert {kind.name} not in the index"
        assert kind.team in ("data_engineering", "devops")
        # the runbook gives at least one exact command, and test_cited_command_exists_with_its_options checks it
        text = path.read_text()
        commands = {c for c in cited if f"finsight {' '.join(c)}" in text}
        assert commands, f"{kind.runbook} cites no finsight command"


def test_alert_payload_names_owner_team_topic_and_runbook() -> None:
    from finsight.ops.alerts import ALERT_TYPES, Alert

    env = load_environment("prod")
    for name, kind in ALERT_TYPES.items():
        message = Alert(name, "k", "m").payload(env, "FIRING")
        assert message["topic"] == env.aws.alert_topics[kind.team]
        assert message["runbook"] == f"docs/runbooks/{kind.runbook}" and message["owner"].startswith("@finsight/")
        assert message["oncall"].startswith("docs/ownership.md")
