"""Run the rules over scripts (rendered files, a DAG deploy) and over a statement log, the way Snowflake would meet
them: in deploy order, one statement after another, the model learning from each."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from snowflake.connector.util_text import split_statements

from finsight.conformance.model import Model
from finsight.conformance.rules import RULES, Rule, Statement, Violation


@dataclass(frozen=True)
class Finding:
    source: str  # file name, or the statement log's name
    statement: int  # 1-based position of the statement in its source
    line: int  # line of the source where the statement starts (0 when unknown)
    violation: Violation
    excerpt: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        v = self.violation
        return f"{where}: statement {self.statement}: {v.rule}: {v.message} [{v.docs}] -- {self.excerpt}"


def statements(text: str) -> Iterator[tuple[int, str]]:
    """(line, statement) of a script as the Snowflake connector splits it (`$$` bodies and comments respected)."""
    cursor = 0
    for stmt, _ in split_statements(io.StringIO(text), remove_comments=False):
        body = stmt.strip()
        if not body or not re.sub(r"(?m)--[^\n]*$", "", body).strip().rstrip(";").strip():
            continue
        found = text.find(body.splitlines()[0], cursor)
        line = text.count("\n", 0, found) + 1 if found >= 0 else 0
        cursor = max(cursor, found)
        yield line, body


def _excerpt(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:100]


def check_script(
    source: str, text: str, model: Model, rules: tuple[Rule, ...] = RULES, follow: bool = True
) -> list[Finding]:
    """Every statement of one script, in order; the model learns from each (a script runs as a whole)."""
    parts = list(statements(text))
    found = []
    for i, (line, stmt) in enumerate(parts):
        following = [s for _, s in parts[i + 1 :]] if follow else None
        for v in Statement(stmt, model, following).check(rules):
            found.append(Finding(source, i + 1, line, v, _excerpt(stmt)))
        model.observe(stmt)
    return found


def check_scripts(scripts: Iterable[tuple[str, str]], model: Model, rules: tuple[Rule, ...] = RULES) -> list[Finding]:
    return [f for name, text in scripts for f in check_script(name, text, model, rules)]


def read_log(path: Path) -> Iterator[tuple[str, bool]]:
    """(statement, succeeded) of a statement log: JSON lines `{"sql": …, "ok": …}` (the local server writes it)."""
    with path.open() as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
                yield str(entry["sql"]), bool(entry.get("ok", True))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{path}:{number}: not a statement log entry (JSON with 'sql')") from None


def check_log(path: Path, model: Model, rules: tuple[Rule, ...] = RULES) -> list[Finding]:
    """The statements one session of work sent, in order; the model learns from those that succeeded."""
    found = []
    for i, (stmt, ok) in enumerate(read_log(path), start=1):
        for v in Statement(stmt, model).check(rules):
            found.append(Finding(path.name, i, 0, v, _excerpt(stmt)))
        if ok:
            model.observe(stmt)
    return found
