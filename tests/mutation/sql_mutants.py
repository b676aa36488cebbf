"""Semantic mutants of MERGE's SQL, which mutmut cannot make (it only wraps string literals in XX, so every one of
its SQL mutants is a syntax error). Each mutant below is a plausible wrong edit; the MERGE tests must go red.

    python -m tests.mutation.sql_mutants     # needs the local stack (make up); ~20 s per mutant

The file is patched in place, the tests run, the file is restored (also on Ctrl-C). Exit 1 if any mutant survives.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TARGET = Path("snowpark/merge.py")
TESTS = ["tests/merge/test_merge_batches.py"]

MUTANTS: list[tuple[str, str, str]] = [
    ("dedup by read time ascending", "ORDER BY s._EXTRACTED_AT DESC,", "ORDER BY s._EXTRACTED_AT ASC,"),
    ("dedup by batch id ascending", "s._BATCH_ID DESC, s._ROW_NUMBER DESC", "s._BATCH_ID ASC, s._ROW_NUMBER DESC"),
    ("dedup by row number ascending", "s._ROW_NUMBER DESC) = 1", "s._ROW_NUMBER ASC) = 1"),
    ("every batch complete", 'rows_ok = rows == m["ROW_COUNT"]', "rows_ok = True"),
    ("PK snapshot always complete", "pks_ok = m[", "pks_ok = True or m["),
    ("partial batch counted by rows, not distinct rows", "COUNT(DISTINCT _ROW_NUMBER) AS N FROM {raw} ",
     "COUNT(*) AS N FROM {raw} "),
    ("equal read time: an earlier batch overwrites", "src._EXTRACTED_AT > tgt._EXTRACTED_AT OR",
     "src._EXTRACTED_AT >= tgt._EXTRACTED_AT OR"),
    ("no version check on update", "WHEN MATCHED AND {newer} THEN UPDATE", "WHEN MATCHED THEN UPDATE"),
    ("equal read time: older batch wins", "AND src._BATCH_ID > tgt._BATCH_ID", "AND src._BATCH_ID < tgt._BATCH_ID"),
    ("stale tombstone deletes", "src._OP = 'D' AND {newer} THEN DELETE", "src._OP = 'D' THEN DELETE"),
    ("tombstone inserted as a row", "WHEN NOT MATCHED AND COALESCE(src._OP, 'U') <> 'D' THEN", "WHEN NOT MATCHED THEN"),
    ("oldest snapshot decides deletes", "_apply_snapshot(session, spec, run_id, snapshots[-1])",
     "_apply_snapshot(session, spec, run_id, snapshots[0])"),
    ("replay recorded as a merge", "    if record:\n", "    if True:\n"),
    ("already merged batches merged again", "m.BATCH_ID NOT IN (SELECT", "m.BATCH_ID IN (SELECT"),
]  # fmt: skip


def run() -> int:
    original = TARGET.read_text()
    survived = []
    try:
        for name, old, new in MUTANTS:
            if original.count(old) != 1:
                print(f"?? {name}: pattern not found once in {TARGET} (the code changed: update the mutant)")
                survived.append(name)
                continue
            TARGET.write_text(original.replace(old, new))
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
                capture_output=True,
                text=True,
            )
            killed = result.returncode != 0
            print(f"{'killed  ' if killed else 'SURVIVED'} {name}")
            if not killed:
                survived.append(name)
    finally:
        TARGET.write_text(original)
    print(f"{len(MUTANTS) - len(survived)}/{len(MUTANTS)} SQL mutants of {TARGET} killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(run())
