"""Mutation score per module from mutmut's results (mutants/**/*.meta), as docs/testing.md reports it.

    python -m tests.mutation.report            # table of killed / survived / no test per module
    python -m tests.mutation.report --survivors # and the surviving mutants' names (`mutmut show NAME` shows each)

Score = killed / (killed + survived + timeout-free suspicious); mutants no selected test reaches count apart
("no test"): they are a coverage gap, not a weak assertion. "not run" = mutants of a module the last run was not
asked for (`make mutation` leaves the cost model out, `make mutation-all` runs it).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3, 36, -24, 24, 152, 255}  # a failing test, or a mutant that hangs (a timeout is a detected change)
SURVIVED = {0}
NO_TEST = {5, 33}
NOT_RUN = {None}


def scores(root: Path = Path("mutants")) -> dict[str, Counter]:
    out: dict[str, Counter] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        module = str(meta.relative_to(root)).removesuffix(".meta")
        counts: Counter = Counter()
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            kind = _kind(code)
            counts[kind] += 1
            if kind == "survived":
                counts.setdefault("_names", []).append(name)  # type: ignore[arg-type]
        out[module] = counts
    return out


def _kind(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in NOT_RUN:
        return "not run"
    return "no test" if code in NO_TEST else "other"


def main(argv: list[str]) -> int:
    print(f"{'module':42} {'killed':>7} {'survived':>8} {'no test':>8} {'not run':>8} {'score':>6}")
    for module, c in scores().items():
        tested = c["killed"] + c["survived"] + c["other"]
        score = f"{100 * c['killed'] / tested:5.1f}%" if tested else "  -"
        print(f"{module:42} {c['killed']:>7} {c['survived']:>8} {c['no test']:>8} {c['not run']:>8} {score:>6}")
        if "--survivors" in argv:
            for name in c.get("_names", []):
                print(f"    survived: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
