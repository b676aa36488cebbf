"""finsight.local.parse_handoff: the local server parses a statement once; the strict layer reads that parse and
fakesnow's cursor takes it, instead of parsing the same text again."""

from __future__ import annotations

import pytest
import sqlglot

from finsight.local import parse_handoff
from finsight.local.parse_handoff import Handoff

SQL = "SELECT ID FROM OPS.T WHERE ID IN (SELECT ID FROM OPS.U)"


def test_the_servers_parse_is_read_by_the_strict_layer_and_taken_once_by_the_cursor(monkeypatch) -> None:
    handoff = Handoff()
    parsed = handoff.parse(SQL)
    parses: list[str] = []
    real = sqlglot.parse_one
    monkeypatch.setattr(sqlglot, "parse_one", lambda text, **kw: parses.append(text) or real(text, **kw))
    assert handoff.peek(SQL) is parsed and handoff.peek(SQL) is parsed  # read, not taken
    assert handoff.take(SQL, read="snowflake") is parsed
    assert parses == [], "the text was parsed again"
    again = handoff.take(SQL, read="snowflake")  # taken once: the cursor's rewrites may annotate it
    assert again is not parsed and parses == [SQL] and again.sql() == parsed.sql()


def test_another_dialect_or_text_is_parsed_as_asked() -> None:
    handoff = Handoff()
    handoff.parse(SQL)
    assert handoff.take("SELECT 1", read="snowflake").sql() == "SELECT 1"
    described = handoff.take(f"DESCRIBE {SQL}", read="duckdb")
    assert isinstance(described, sqlglot.exp.Expr)
    assert handoff.take(SQL, read="snowflake") is not None


def test_texts_nobody_takes_are_dropped_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_handoff, "HANDED_KEPT", 3)
    handoff = Handoff()
    first = handoff.parse("SELECT 0")
    for i in range(1, 4):
        handoff.parse(f"SELECT {i}")
    assert handoff.take("SELECT 0") is not first  # dropped: parsed anew
    assert len(handoff._trees) == 3
