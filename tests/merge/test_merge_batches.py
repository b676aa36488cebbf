"""MERGE_TABLE against fakesnow with hand-landed batches: which version wins, when a batch may merge, tombstones.

Every test lands its own batches into its own RAW/CURATED pair (a fresh table name), so no test depends on another
or on an earlier run. The expected CURATED content is written in each test, not derived from merge.py's SQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from finsight import warehouse
from finsight.config import Environment
from finsight.local.stack import LocalStack
from snowpark.merge import MAX_RANGES, _merge_sql, key_ranges, merge_table, prune_predicate, tombstones

pytestmark = pytest.mark.stack

T0 = datetime(2026, 11, 27, 10, 0, 0)


@pytest.fixture(scope="module")
def session(local_env: Environment, deployed_stack: LocalStack) -> Iterator[Any]:
    s = warehouse.snowpark_session(local_env)
    yield s
    s.close()


def _sql_key(key: Key) -> str:
    return ", ".join(str(k) for k in key) if isinstance(key, tuple) else str(key)


_CREATED: list[Table] = []  # dropped after each test (_drop_tables): the shared stack keeps no test tables


@pytest.fixture(autouse=True)
def _drop_tables() -> Iterator[None]:
    yield
    while _CREATED:
        _CREATED.pop().drop()


Key = int | tuple[int, int]  # ID, or (ID, REGION) for a table with a two-column primary key


class Table:
    """A RAW/CURATED pair (ID primary key, V value) with helpers to land batches and read CURATED.

    `region_key`: the primary key is (ID, REGION); `date_columns`: MERGE records UPDATED_AT's dates it changes."""

    def __init__(
        self, session: Any, pk_snapshot: bool = False, region_key: bool = False, date_columns: bool = False
    ) -> None:
        self.session = session
        self.name = f"MT_{uuid.uuid4().hex[:10].upper()}"
        _CREATED.append(self)
        self.keys = ["ID", "REGION"] if region_key else ["ID"]
        self.spec = {"table": f"test.{self.name.lower()}", "raw": self.name, "curated": self.name,
                     "primary_key": self.keys, "cursor": "UPDATED_AT", "columns": [*self.keys, "V", "UPDATED_AT"],
                     "pk_snapshot": pk_snapshot}  # fmt: skip
        if date_columns:
            self.spec["date_columns"] = ["UPDATED_AT"]
        meta = "_BATCH_ID VARCHAR, _EXTRACTED_AT TIMESTAMP_NTZ, _ROW_NUMBER NUMBER(38, 0), _OP VARCHAR"
        key_cols = ", ".join(f"{k} NUMBER(38, 0)" for k in self.keys)
        cols = f"{key_cols}, V VARCHAR, UPDATED_AT TIMESTAMP_NTZ"
        self.sql(f"CREATE TABLE RAW.{self.name} ({cols}, {meta})")
        self.sql(f"CREATE TABLE CURATED.{self.name} ({cols}, {meta}, _MERGED_AT TIMESTAMP_NTZ)")
        # deleted keys remembered (migrations/R__warehouse_tables.sql)
        self.sql(f"CREATE TABLE {tombstones(self.spec)} ({key_cols}, _BATCH_ID VARCHAR, "
                 "_EXTRACTED_AT TIMESTAMP_NTZ, _DELETED_AT TIMESTAMP_NTZ)")  # fmt: skip
        if pk_snapshot:
            self.sql(f"CREATE TABLE RAW.{self.name}__PKS ({key_cols}, _BATCH_ID VARCHAR, _ROW_NUMBER NUMBER)")

    def sql(self, text: str) -> list[Any]:
        return self.session.sql(text).collect()

    def drop(self) -> None:
        """The tables and the OPS rows this table's batches left (manifests, merge records)."""
        for table in (f"RAW.{self.name}", f"RAW.{self.name}__PKS", f"CURATED.{self.name}", tombstones(self.spec)):
            self.sql(f"DROP TABLE IF EXISTS {table}")
        for ops in ("OPS.LANDED_BATCHES", "OPS.MERGED_BATCHES", "OPS.CHANGED_DATES", "OPS.QUALITY_HOLDS"):
            self.sql(f"DELETE FROM {ops} WHERE RAW_TABLE = '{self.name}'")
        self.sql(f"DELETE FROM OPS.QUALITY_RESULTS WHERE TABLE_NAME = '{self.spec['table']}'")
        self.sql(f"DELETE FROM OPS.SCHEMA_VERSIONS WHERE TABLE_NAME = 'CURATED.{self.name}'")
        self.sql(f"DELETE FROM OPS.PIPELINE_CATALOG WHERE NAME = '{self.spec['table']}'")

    def land(
        self,
        batch: str,
        read_at: datetime,
        rows: list[tuple[Key, str | None, str]],
        manifest_rows: int | None = None,
        pks: list[Key] | None = None,
        manifest: bool = True,
    ) -> None:
        """Rows (key, value, op) as the connector lands them: row numbers in order, one read time per batch."""
        values = ", ".join(
            f"({_sql_key(key)}, {'NULL' if v is None else repr(v)}, '{read_at}', '{batch}', '{read_at}', {n}, '{op}')"
            for n, (key, v, op) in enumerate(rows)
        )
        if values:
            self.sql(f"INSERT INTO RAW.{self.name} ({', '.join(self.keys)}, V, UPDATED_AT, _BATCH_ID, _EXTRACTED_AT, "
                     f"_ROW_NUMBER, _OP) VALUES {values}")  # fmt: skip
        if pks:  # an empty snapshot (the source table emptied) lands no key rows, only its manifest count 0
            self.sql(f"INSERT INTO RAW.{self.name}__PKS VALUES "
                     + ", ".join(f"({_sql_key(k)}, '{batch}', {n})" for n, k in enumerate(pks)))  # fmt: skip
        if manifest:
            self.manifest(batch, read_at, len(rows) if manifest_rows is None else manifest_rows, pks)

    def manifest(self, batch: str, read_at: datetime, row_count: int, pks: list[Key] | None = None) -> None:
        pk_rows = "NULL" if pks is None else str(len(pks))
        self.sql(
            "INSERT INTO OPS.LANDED_BATCHES (BATCH_ID, SOURCE_TABLE, RAW_TABLE, MODE, ROW_COUNT, FILE_COUNT, "
            f"PK_SNAPSHOT_ROWS, SCHEMA_HASH, EXTRACTED_AT) VALUES ('{batch}', '{self.spec['table']}', '{self.name}', "
            f"'incremental', {row_count}, 1, {pk_rows}, 'h', '{read_at}')"
        )

    def merge(self, replay: str | None = None, run_id: str = "test-run") -> dict[str, Any]:
        out = json.loads(merge_table(self.session, json.dumps(self.spec), run_id, replay_batch=replay))
        out["waiting"] = [w.split(":")[0] for w in out["waiting"]]  # "b1: 2 of 3 rows in RAW" -> "b1"
        return out

    def curated(self) -> dict[Key, str | None]:
        rows = self.sql(f"SELECT {', '.join(self.keys)}, V FROM CURATED.{self.name} ORDER BY {', '.join(self.keys)}")
        return {(r[0] if len(self.keys) == 1 else (r[0], r[1])): r[-1] for r in rows}

    def tombstones(self) -> list[tuple[Any, ...]]:
        """(key..., batch id, read time) of every deleted key remembered."""
        keys = ", ".join(self.keys)
        rows = self.sql(f"SELECT {keys}, _BATCH_ID, _EXTRACTED_AT FROM {tombstones(self.spec)} ORDER BY {keys}")
        return [tuple(r) for r in rows]

    def changed_dates(self, run_id: str) -> list[tuple[str, Any]]:
        rows = self.sql("SELECT DATE_COLUMN, BUSINESS_DATE FROM OPS.CHANGED_DATES "
                        f"WHERE RAW_TABLE = '{self.name}' AND RUN_ID = '{run_id}' ORDER BY 2")  # fmt: skip
        return [tuple(r) for r in rows]

    def merged_batches(self) -> list[str]:
        return [r[0] for r in self.sql(f"SELECT BATCH_ID FROM OPS.MERGED_BATCHES WHERE RAW_TABLE = '{self.name}' "
                                       "ORDER BY BATCH_ID")]  # fmt: skip


def test_two_pending_batches_of_the_same_keys_the_later_read_wins(session: Any) -> None:
    t = Table(session)
    # the later read lands under the smaller batch id: the read time decides, not the batch name
    t.land("b2", T0, [(1, "old", "U"), (2, "old", "U")])
    t.land("b1", T0 + timedelta(minutes=5), [(1, "new", "U"), (2, "new", "U")])
    out = t.merge()
    assert t.curated() == {1: "new", 2: "new"}
    assert sorted(out["batches"]) == ["b1", "b2"] and out["rows_merged"] == 4 and out["waiting"] == []
    assert t.merged_batches() == ["b1", "b2"]
    assert t.merge()["batches"] == []  # a rerun finds nothing pending and changes nothing
    assert t.curated() == {1: "new", 2: "new"}


def test_three_pending_batches_read_time_then_batch_then_row_number(session: Any) -> None:
    t = Table(session)
    t.land("a", T0 + timedelta(minutes=10), [(1, "a1", "U"), (2, "a2", "U"), (2, "a2-later-row", "U")])
    t.land("b", T0 + timedelta(minutes=10), [(1, "b1", "U")])  # same read time as a: the later batch id wins
    t.land("c", T0, [(1, "c1", "U"), (2, "c2", "U"), (3, "c3", "U")])  # read first: loses on every key it shares
    t.merge()
    assert t.curated() == {1: "b1", 2: "a2-later-row", 3: "c3"}


def test_an_older_batch_merged_later_never_moves_curated_backwards(session: Any) -> None:
    t = Table(session)
    t.land("b2", T0 + timedelta(hours=1), [(1, "new", "U")])
    t.merge()
    t.land("b1", T0, [(1, "old", "U"), (2, "only-old", "U")])  # landed late (a retried task), read earlier
    t.merge()
    assert t.curated() == {1: "new", 2: "only-old"}
    t.land("b3", T0 + timedelta(hours=1), [(1, "same-read-later-batch", "U")])  # equal read time: later batch wins
    out = t.merge()
    assert (out["rows_inserted"], out["rows_updated"]) == (0, 1)
    assert t.curated()[1] == "same-read-later-batch"
    t.land("a9", T0 + timedelta(hours=1), [(1, "same-read-earlier-batch", "U")])  # ... and an earlier one never
    t.merge()
    assert t.curated()[1] == "same-read-later-batch"


def test_a_partially_landed_batch_waits_until_raw_holds_all_its_rows(session: Any) -> None:
    t = Table(session)
    t.land("b1", T0, [(1, "x", "U"), (2, "y", "U")], manifest_rows=3)  # manifest says 3, RAW holds 2
    out = t.merge()
    assert out["batches"] == [] and out["waiting"] == ["b1"]
    assert t.curated() == {} and t.merged_batches() == []
    t.land("b1", T0, [(1, "x", "U"), (2, "y", "U"), (3, "z", "U")], manifest=False)  # the last part arrives
    out = t.merge()  # a part loaded twice (same row numbers) still counts its rows once
    assert out["batches"] == ["b1"] and t.curated() == {1: "x", 2: "y", 3: "z"}


def test_a_batch_without_its_manifest_is_not_merged(session: Any) -> None:
    t = Table(session)
    t.land("b1", T0, [(1, "x", "U")], manifest=False)
    assert t.merge()["batches"] == [] and t.curated() == {}


def test_a_pk_snapshot_batch_waits_for_its_whole_snapshot(session: Any) -> None:
    t = Table(session, pk_snapshot=True)
    t.land("b1", T0, [(1, "x", "U"), (2, "y", "U")], pks=[1, 2])
    t.sql(f"DELETE FROM RAW.{t.name}__PKS WHERE ID = 2")  # snapshot part not loaded yet
    assert t.merge()["waiting"] == ["b1"] and t.curated() == {}
    t.sql(f"INSERT INTO RAW.{t.name}__PKS VALUES (2, 'b1', 1)")
    assert t.merge()["batches"] == ["b1"] and t.curated() == {1: "x", 2: "y"}


def test_tombstones_delete_only_when_newest(session: Any) -> None:
    t = Table(session)
    t.land("b1", T0, [(1, "x", "U"), (2, "y", "U")])
    t.merge()
    t.land("b2", T0 + timedelta(minutes=1), [(1, None, "D"), (9, None, "D")])  # 9 was never seen: nothing inserted
    t.land("b0", T0 - timedelta(minutes=1), [(2, None, "D")])  # a stale tombstone: older than CURATED's row
    out = t.merge()
    assert t.curated() == {2: "y"}
    assert out["rows_deleted"] == 1  # key 1 only: the stale tombstone and the unknown key delete nothing


def test_pk_snapshot_removes_keys_gone_at_the_source(session: Any) -> None:
    t = Table(session, pk_snapshot=True)
    t.land("b1", T0, [(1, "x", "U"), (2, "y", "U"), (3, "z", "U")], pks=[1, 2, 3])
    t.merge()
    t.land("b2", T0 + timedelta(minutes=5), [(4, "w", "U")], pks=[1, 3, 4])
    out = t.merge()
    assert t.curated() == {1: "x", 3: "z", 4: "w"}
    assert out["rows_deleted"] == 1
    rows = t.sql(f"SELECT BATCH_ID, ROWS_DELETED FROM OPS.MERGED_BATCHES WHERE RAW_TABLE = '{t.name}' ORDER BY 1")
    assert [(r[0], r[1]) for r in rows] == [("b1", 0), ("b2", 1)]


def test_two_pending_snapshots_the_latest_decides_what_was_deleted(session: Any) -> None:
    t = Table(session, pk_snapshot=True)
    t.land("b1", T0, [(1, "x", "U"), (2, "y", "U"), (3, "z", "U")], pks=[1, 2, 3])
    t.land("b2", T0 + timedelta(minutes=5), [], pks=[1, 3])  # both pending: one merge sees both snapshots
    out = t.merge()
    assert t.curated() == {1: "x", 3: "z"} and out["rows_deleted"] == 1
    rows = t.sql(f"SELECT BATCH_ID, ROWS_DELETED FROM OPS.MERGED_BATCHES WHERE RAW_TABLE = '{t.name}' ORDER BY 1")
    assert [(r[0], r[1]) for r in rows] == [("b1", 0), ("b2", 1)]  # the delete is the latest snapshot's


def test_replaying_a_batch_changes_nothing_newer_and_is_not_recorded_again(session: Any) -> None:
    t = Table(session)
    t.land("b1", T0, [(1, "old", "U")])
    t.merge()
    t.land("b2", T0 + timedelta(minutes=5), [(1, "new", "U")])
    t.merge()
    out = t.merge(replay="b1")
    assert out["batches"] == ["b1"] and t.curated() == {1: "new"}
    assert t.merged_batches() == ["b1", "b2"]  # a replay is not a second merge record
    with pytest.raises(ValueError, match="no complete manifest"):
        t.merge(replay="no-such-batch")


def test_replaying_an_old_batch_of_a_delete_detected_table_resurrects_nothing(session: Any) -> None:
    t = Table(session, pk_snapshot=True)
    t.land("b1", T0, [(1, "x", "U"), (2, "y", "U")], pks=[1, 2])
    t.merge()
    t.land("b2", T0 + timedelta(minutes=5), [], pks=[1])  # key 2 hard-deleted at the source
    t.merge()
    assert t.curated() == {1: "x"}
    t.merge(replay="b1")
    assert t.curated() == {1: "x"}


def test_a_two_column_key_matches_on_both_columns(session: Any) -> None:
    """(1, 1) and (1, 2) are different rows: dedup, MERGE, tombstones and snapshots compare the whole key."""
    t = Table(session, pk_snapshot=True, region_key=True)
    t.land("b1", T0, [((1, 1), "a", "U"), ((1, 2), "b", "U"), ((2, 1), "c", "U")], pks=[(1, 1), (1, 2), (2, 1)])
    t.merge()
    assert t.curated() == {(1, 1): "a", (1, 2): "b", (2, 1): "c"}
    # (1, 2) deleted (a tombstone), (2, 1) gone from the snapshot, (1, 1) updated; (1, 1)'s second version wins
    t.land("b2", T0 + timedelta(minutes=5), [((1, 1), "a2", "U"), ((1, 2), None, "D"), ((1, 1), "a3", "U")],
           pks=[(1, 1)])  # fmt: skip
    out = t.merge()
    assert t.curated() == {(1, 1): "a3"} and out["rows_deleted"] == 2
    assert [r[:3] for r in t.tombstones()] == [(1, 2, "b2"), (2, 1, "b2")]


def test_a_snapshot_delete_is_remembered_and_its_dates_go_to_the_change_feed(session: Any) -> None:
    """The key a snapshot no longer has becomes a tombstone of that snapshot's batch and read time, and the business
    date of the deleted version is recorded for the marts (the snapshot-only batch lands no rows of its own)."""
    t = Table(session, pk_snapshot=True, date_columns=True)
    t.land("b1", T0, [(1, "x", "U"), (2, "y", "U")], pks=[1, 2])
    t.merge(run_id="r1")
    assert t.changed_dates("r1") == [("UPDATED_AT", T0.date())]  # the new versions' date
    later = T0 + timedelta(days=2)
    t.land("b2", later, [], pks=[1])
    out = t.merge(run_id="r2")
    assert t.curated() == {1: "x"} and out["rows_deleted"] == 1
    assert t.tombstones() == [(2, "b2", later)]
    assert t.changed_dates("r2") == [("UPDATED_AT", T0.date())]  # the deleted version's date, not the snapshot's


def test_a_version_older_than_a_known_delete_is_skipped_and_counted(session: Any) -> None:
    t = Table(session)
    t.land("b1", T0, [(1, "x", "U"), (2, "y", "U")])
    t.merge()
    t.land("b2", T0 + timedelta(minutes=10), [(1, None, "D")])
    t.merge()
    t.land("b0", T0 + timedelta(minutes=5), [(1, "read-before-the-delete", "U"), (3, "z", "U")])  # landed late
    out = t.merge()
    assert t.curated() == {2: "y", 3: "z"}
    assert (out["rows_merged"], out["rows_inserted"], out["rows_updated"]) == (2, 1, 0)
    assert (out["rows_skipped_deleted"], out["rows_deleted"]) == (1, 0)


def test_a_key_deleted_twice_the_newest_tombstone_decides(session: Any) -> None:
    """Deleted, re-created, deleted again: the version between the two deletes is dead (the newer one is at least as
    new), however often it is replayed; a late version read with the last delete but in an earlier batch is too."""
    t = Table(session)
    t.land("b1", T0, [(1, "v1", "U")])
    t.merge()
    t.land("b2", T0 + timedelta(minutes=10), [(1, None, "D")])
    t.merge()
    t.land("b3", T0 + timedelta(minutes=20), [(1, "v2", "U")])  # re-created after the first delete: it lives
    assert t.merge()["rows_inserted"] == 1 and t.curated() == {1: "v2"}
    t.land("b5", T0 + timedelta(minutes=30), [(1, None, "D")])
    t.merge()
    assert [r[1] for r in t.tombstones()] == ["b2", "b5"]  # both deletes remembered
    out = t.merge(replay="b3")
    assert t.curated() == {} and (out["rows_inserted"], out["rows_skipped_deleted"]) == (0, 1)
    t.land("b4", T0 + timedelta(minutes=30), [(1, "same-read-earlier-batch", "U")])  # landed late
    out = t.merge()
    assert t.curated() == {} and (out["rows_inserted"], out["rows_skipped_deleted"]) == (0, 1)


def test_a_snapshot_only_batch_reports_what_it_did_and_nothing_else(session: Any) -> None:
    t = Table(session, pk_snapshot=True)
    t.land("b1", T0, [(1, "x", "U"), (2, "y", "U")], pks=[1, 2])
    t.merge()
    t.land("b2", T0 + timedelta(minutes=5), [], pks=[1])  # no changed rows: the summary counts no merge
    out = t.merge()
    assert out["batches"] == ["b2"]
    assert {k: out[k] for k in ("rows_merged", "rows_inserted", "rows_updated", "rows_skipped_deleted",
                                "rows_deleted")} == {"rows_merged": 0, "rows_inserted": 0, "rows_updated": 0,
                                                     "rows_skipped_deleted": 0, "rows_deleted": 1}  # fmt: skip
    assert t.merge() == {"table": t.spec["table"], "batches": [], "rows_merged": 0, "rows_deleted": 0, "waiting": []}


def test_an_emptied_source_table_deletes_every_row(session: Any) -> None:
    t = Table(session, pk_snapshot=True)
    t.land("b1", T0, [(1, "x", "U"), (2, "y", "U")], pks=[1, 2])
    t.merge()
    t.land("b2", T0 + timedelta(minutes=5), [], pks=[])  # a snapshot of no keys is complete with 0 rows in __PKS
    out = t.merge()
    assert out["batches"] == ["b2"] and out["waiting"] == [] and out["rows_deleted"] == 2
    assert t.curated() == {}


def test_a_column_the_source_grew_is_merged_with_its_values(session: Any) -> None:
    t = Table(session)
    t.land("b1", T0, [(1, "x", "U")])
    t.merge()
    t.sql(f"ALTER TABLE RAW.{t.name} ADD COLUMN W VARCHAR")  # Snowpipe's schema evolution on RAW
    t.land("b2", T0 + timedelta(minutes=5), [(2, "y", "U")])
    t.sql(f"UPDATE RAW.{t.name} SET W = 'grown' WHERE _BATCH_ID = 'b2'")
    t.merge(run_id="r-evolve")
    rows = t.sql(f"SELECT ID, V, W FROM CURATED.{t.name} ORDER BY ID")
    assert [tuple(r) for r in rows] == [(1, "x", None), (2, "y", "grown")]


def _quarantine_duplicates(t: Table) -> None:
    """The table's merge spec, as deploy renders it (finsight.marts.merge_spec): a key under two row numbers in one
    batch is quarantined."""
    t.spec["gate"] = {"enabled": True, "severity": "quarantine"}


def test_the_hourly_merge_holds_a_quarantined_batch_and_an_operators_replay_takes_it(session: Any) -> None:
    t = Table(session)
    _quarantine_duplicates(t)
    t.land("b1", T0, [(1, "first", "U"), (1, "second", "U"), (2, "y", "U")])  # key 1 under two row numbers
    t.land("b2", T0 + timedelta(minutes=5), [(3, "z", "U")])
    out = t.merge(run_id="r-hold")
    assert out["batches"] == ["b2"] and out["waiting"] == ["b1"] and t.curated() == {3: "z"}
    holds = t.sql(f"SELECT BATCH_ID, RUN_ID, RELEASED_AT FROM OPS.QUALITY_HOLDS WHERE RAW_TABLE = '{t.name}'")
    assert [tuple(r) for r in holds] == [("b1", "r-hold", None)]
    assert t.merge(run_id="r-again")["waiting"] == ["b1"]  # still held: checked once, held until released
    out = t.merge(replay="b1")  # the operator's replay is a decision: not gated
    assert out["batches"] == ["b1"] and t.curated() == {1: "second", 2: "y", 3: "z"}


def test_the_gate_the_merge_spec_carries_holds_without_reading_the_quality_spec(session: Any) -> None:
    """The deployed merge spec carries its gate (finsight.marts.merge_spec): no quality spec in the catalog here,
    and the gate still holds the batch; a spec whose gate is off merges it."""
    held = Table(session)
    held.spec["gate"] = {"enabled": True, "severity": "quarantine"}
    held.land("b1", T0, [(1, "first", "U"), (1, "second", "U")])
    assert held.merge(run_id="r-gate")["waiting"] == ["b1"] and held.curated() == {}
    off = Table(session)
    off.spec["gate"] = {"enabled": False, "severity": "quarantine"}
    off.land("b1", T0, [(1, "first", "U"), (1, "second", "U")])
    assert off.merge(run_id="r-gate-off")["batches"] == ["b1"]


def test_the_merge_prunes_by_the_batch_key_ranges_and_a_late_update_of_an_old_key_still_updates(session: Any) -> None:
    """Pruning by the batch's key ranges never changes the result: keys far below the batch's main range (a late
    update of an old payment) get a range of their own, so they update in place; a rerun duplicates nothing."""
    t = Table(session, date_columns=True)
    t.land("b1", T0, [(k, f"v{k}", "U") for k in range(1, 201)])
    t.merge(run_id="r1")
    later = T0 + timedelta(days=1)
    # new keys 301..320, recent updates 195..200, late updates of old keys 3 and 57
    t.land("b2", later, [(k, f"n{k}", "U") for k in [3, 57, *range(195, 201), *range(301, 321)]])
    ids = "'b2'"
    ranges = key_ranges(session, t.spec, ids)
    assert ranges == [(3, 3), (57, 57), (195, 200), (301, 320)]
    merge_text = _merge_sql(t.spec, ids, ranges)
    assert "tgt.ID = 3 OR tgt.ID = 57 OR tgt.ID BETWEEN 195 AND 200 OR tgt.ID BETWEEN 301 AND 320" in merge_text
    out = t.merge(run_id="r2")
    assert out["rows_inserted"] == 20 and out["rows_updated"] == 8
    curated = t.curated()
    assert len(curated) == 220 and curated[3] == "n3" and curated[57] == "n57" and curated[4] == "v4"
    assert t.changed_dates("r2") == [("UPDATED_AT", T0.date()), ("UPDATED_AT", later.date())]
    t.merge(replay="b2")  # the rerun: nothing newer, nothing doubled
    rows = t.sql(f"SELECT COUNT(*), COUNT(DISTINCT ID) FROM CURATED.{t.name}")[0]
    assert tuple(rows) == (220, 220) and t.curated() == curated


def test_key_ranges_stay_bounded_and_cover_every_key(session: Any) -> None:
    """More scattered keys than MAX_RANGES: the widest gaps split, every key still lies in a range."""
    t = Table(session)
    keys = [k * 1000 + (k % 7) for k in range(1, 3 * MAX_RANGES)]
    t.land("b1", T0, [(k, "x", "U") for k in keys])
    ranges = key_ranges(session, t.spec, "'b1'")
    assert 1 < len(ranges) <= MAX_RANGES
    assert all(any(lo <= k <= hi for lo, hi in ranges) for k in keys)
    assert prune_predicate(t.spec, "c", []) == "TRUE"
