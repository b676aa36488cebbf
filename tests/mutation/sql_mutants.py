"""Semantic mutants of MERGE's SQL, which mutmut cannot make (it only wraps string literals in XX, so every one of
its SQL mutants is a syntax error). Each mutant below is a plausible wrong edit; the MERGE tests must go red.

    python -m tests.mutation.sql_mutants     # needs the local stack (make up); ~20 s per mutant, whole module each

`make test` runs the fast subset: each mutant against the one scenario that kills it (KILLED_BY), in-process
(tests/merge/test_merge_sql_mutants.py).

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
    ("oldest tombstone decides", "ORDER BY _EXTRACTED_AT DESC, _BATCH_ID DESC) = 1)",
     "ORDER BY _EXTRACTED_AT ASC, _BATCH_ID DESC) = 1)"),
    ("equal read time: a later batch's tombstone spares the version", "AND d._BATCH_ID >= {alias}._BATCH_ID",
     "AND d._BATCH_ID < {alias}._BATCH_ID"),
]  # fmt: skip

# The scenario of tests/merge/test_merge_batches.py that fails first for each mutant: `make test` runs just that one
# against the mutant, in-process (tests/merge/test_merge_sql_mutants.py); this script runs the whole module.
KILLED_BY = {
    "dedup by read time ascending": "test_two_pending_batches_of_the_same_keys_the_later_read_wins",
    "dedup by batch id ascending": "test_three_pending_batches_read_time_then_batch_then_row_number",
    "dedup by row number ascending": "test_three_pending_batches_read_time_then_batch_then_row_number",
    "every batch complete": "test_a_partially_landed_batch_waits_until_raw_holds_all_its_rows",
    "PK snapshot always complete": "test_a_pk_snapshot_batch_waits_for_its_whole_snapshot",
    "partial batch counted by rows, not distinct rows": (
        "test_a_partially_landed_batch_waits_until_raw_holds_all_its_rows"
    ),
    "equal read time: an earlier batch overwrites": "test_an_older_batch_merged_later_never_moves_curated_backwards",
    "no version check on update": "test_an_older_batch_merged_later_never_moves_curated_backwards",
    "equal read time: older batch wins": "test_an_older_batch_merged_later_never_moves_curated_backwards",
    "stale tombstone deletes": "test_tombstones_delete_only_when_newest",
    "tombstone inserted as a row": "test_tombstones_delete_only_when_newest",
    "oldest snapshot decides deletes": "test_two_pending_snapshots_the_latest_decides_what_was_deleted",
    "replay recorded as a merge": "test_replaying_a_batch_changes_nothing_newer_and_is_not_recorded_again",
    "already merged batches merged again": "test_two_pending_batches_of_the_same_keys_the_later_read_wins",
    "oldest tombstone decides": "test_a_key_deleted_twice_the_newest_tombstone_decides",
    "equal read time: a later batch's tombstone spares the version": (
        "test_a_key_deleted_twice_the_newest_tombstone_decides"
    ),
}


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
