"""docs/security.md: the PCI DSS v4.0 table cites only what exists, and every row says how it is tested.

A path in the "Where it lives" or "How it is tested" column must exist; a `file::test_name` citation must name a test
function defined in that file; an "in place" row must cite at least one test; an unfinished row says whose it is.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from finsight.config import repo_root

ROOT = repo_root()
DOC = ROOT / "docs" / "security.md"
COLUMNS = ["Req", "Requirement (v4.0)", "Control", "Where it lives", "How it is tested", "Status"]
REQUIRED_REQUIREMENTS = {"1", "2", "3", "4", "6", "7", "8", "10", "11", "12"}
PATH = re.compile(r"^[\w.-]+(/[\w.*-]+)*\.?[\w]*$")


@functools.cache
def rows() -> list[dict[str, str]]:
    lines = [ln for ln in DOC.read_text().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == COLUMNS, header
    out = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(COLUMNS), line
        out.append(dict(zip(COLUMNS, cells, strict=True)))
    return out


def _cited(cell: str) -> list[str]:
    """Backticked citations that are repository paths (optionally `path::test`), not commands or config keys."""
    out = []
    for span in re.findall(r"`([^`]+)`", cell):
        path = span.split("::")[0]
        if "/" in path or path in {"Makefile", "CODEOWNERS"}:
            assert PATH.match(path), f"not a path: {span!r}"
            out.append(span)
    return out


@functools.cache
def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def _citations() -> list[str]:
    return sorted({c for row in rows() for col in ("Where it lives", "How it is tested") for c in _cited(row[col])})


def test_table_covers_the_requirements() -> None:
    covered = {re.match(r"\d+", row["Req"]).group(0) for row in rows()}  # type: ignore[union-attr]
    assert covered >= REQUIRED_REQUIREMENTS, REQUIRED_REQUIREMENTS - covered


@pytest.mark.parametrize("citation", _citations())
def test_every_cited_path_exists(citation: str) -> None:
    path, _, test = citation.partition("::")
    assert (ROOT / path).exists(), f"docs/security.md cites {path}, which does not exist"
    if test:
        assert test in _test_functions(ROOT / path), f"{path} defines no {test}"


def test_rows_in_place_cite_a_test_and_the_rest_say_whose_they_are() -> None:
    for row in rows():
        status = row["Status"]
        if status.startswith("in place"):
            assert any(c.startswith("tests/") for c in _cited(row["How it is tested"])), row["Req"]
            assert _cited(row["Where it lives"]), f"{row['Req']}: in place, but where?"
        elif status.startswith("in progress"):
            assert "issue 21" in status and "issue 21" in row["How it is tested"], row["Req"]
        else:
            assert status in {"outside this repository", "not covered"}, status


def test_the_issue_21_separation_of_duties_is_in_place_and_tested() -> None:
    """Issue 21 item 8 is built: the governance split and the Snowflake plan identity are rows marked in place that
    cite their tests, and no row still calls them in progress or not covered."""
    by_control = {row["Control"]: row for row in rows()}
    separation = [r for c, r in by_control.items() if "governance deploy user" in c]
    plan = [r for c, r in by_control.items() if "Snowflake plan user" in c]
    assert separation and plan
    for row in separation + plan:
        assert row["Status"] == "in place" and "tests/" in row["How it is tested"], row["Control"]
    stale = [c for c, r in by_control.items() if r["Status"].startswith(("in progress", "not covered"))]
    assert not [c for c in stale if "governance role" in c.lower() or "plan identity" in c.lower()], stale
