"""One sqlglot parse per statement in the local Snowflake server, handed on instead of repeated.

Why: fakesnow's server parses each statement's text to type its answer, our strict layer parses the statements that
hold a subquery to check them, and fakesnow's cursor parses the same text again to rewrite and run it: up to three
parses of one text, ~10 % of the server's CPU in a steady hour. The server's parse is kept here under its text; the
strict layer reads it, and the cursor takes it (once: the cursor's rewrites may annotate the tree they are given).
A text nobody takes (a statement refused before it runs, a NOP) is dropped once HANDED_KEPT newer ones wait.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import sqlglot
from sqlglot import exp

HANDED_KEPT = 256


class Handoff:
    def __init__(self) -> None:
        self._trees: OrderedDict[str, list[exp.Expr]] = OrderedDict()
        self._lock = threading.Lock()

    def parse(self, text: str, read: Any = "snowflake", **kwargs: Any) -> exp.Expr:
        """fakesnow server's parse: parsed as always, and kept for the cursor that runs the text next."""
        tree = sqlglot.parse_one(text, read=read, **kwargs)
        if read == "snowflake" and not kwargs:
            with self._lock:
                self._trees.setdefault(text, []).append(tree)
                self._trees.move_to_end(text)
                while len(self._trees) > HANDED_KEPT:
                    self._trees.popitem(last=False)
        return tree

    def peek(self, text: str) -> exp.Expr:
        """The strict layer's parse: the kept tree, read only; parsed when none is kept."""
        with self._lock:
            kept = self._trees.get(text)
            if kept:
                return kept[-1]
        return sqlglot.parse_one(text, read="snowflake")

    def take(self, text: str, read: Any = "snowflake", **kwargs: Any) -> exp.Expr:
        """fakesnow cursor's parse: the kept tree, which is then no longer kept; parsed when none is."""
        if read == "snowflake" and not kwargs:
            with self._lock:
                kept = self._trees.get(text)
                if kept:
                    tree = kept.pop()
                    if not kept:
                        del self._trees[text]
                    return tree
        return sqlglot.parse_one(text, read=read, **kwargs)


HANDOFF = Handoff()
