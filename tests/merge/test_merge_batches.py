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
from finsight.migrate import deploy
from snowpark.merge import merge_table, tombstones

pytestmark = pytest.mark.stack

T0 = datetime(2026, 11, 27, 10, 0, 0)


@pytest.fixture(scope="module")
def session(local_env: Environment, local_stack: LocalStack) -> Iterator[Any]:
    s = warehouse.snowpark_session(local_env)
    try:
        s.sql("SELECT COUNT(*) FROM OPS.LANDED_BATCHES").collect()
    except Exception:  # a fresh stack: the migrations create the OPS tables (schemachange, a few seconds)
        deploy(local_env)
    yield s
    s.close()


_CREATED: list[Table] = []  # dropped after each test (_drop_tables): the shared stack keeps no test tables


@pytest.fixture(autouse=True)
def _drop_tables() -> Iterator[None]:
    yield
    while _CREATED:
        _CREATED.pop().drop()


class Table:
    """A RAW/CURATED pair (ID primary key, V value) with helpers to land batches and read CURATED."""

    def __init__(self, session: Any, pk_snapshot: bool = False) -> None:
        self.session = session
        self.name = f"MT_{uuid.uuid4().hex[:10].upper()}"
        _CREATED.append(self)
        self.spec = {"table": f"test.{self.name.lower()}", "raw": self.name, "curated": self.name,
                     "primary_key": ["ID"], "cursor": "UPDATED_AT", "columns": ["ID", "V", "UPDATED_AT"],
                     "pk_snapshot": pk_snapshot}  # fmt: skip
        meta = "_BATCH_ID VARCHAR, _EXTRACTED_AT TIMESTAMP_NTZ, _ROW_NUMBER NUMBER(38, 0), _OP VARCHAR"
        cols = "ID NUMBER(38, 0), V VARCHAR, UPDATED_AT TIMESTAMP_NTZ"
        self.sql(f"CREATE TABLE RAW.{self.name} ({cols}, {meta})")
        self.sql(f"CREATE TABLE CURATED.{self.name} ({cols}, {meta}, _MERGED_AT TIMESTAMP_NTZ)")
        # deleted keys remembered (migrations/R__warehouse_tables.sql)
        self.sql(f"CREATE TABLE {tombstones(self.spec)} (ID NUMBER(38, 0), _BATCH_ID VARCHAR, "
                 "_EXTRACTED_AT TIMESTAMP_NTZ, _DELETED_AT TIMESTAMP_NTZ)")  # fmt: skip
        if pk_snapshot:
            self.sql(f"CREATE TABLE RAW.{self.name}__PKS (ID NUMBER(38, 0), _BATCH_ID VARCHAR, _ROW_NUMBER NUMBER)")

    def sql(self, text: str) -> list[Any]:
        return self.session.sql(text).collect()

    def drop(self) -> None:
        """The tables and the OPS rows this table's batches left (manifests, merge records)."""
        for table in (f"RAW.{self.name}", f"RAW.{self.name}__PKS", f"CURATED.{self.name}", tombstones(self.spec)):
            self.sql(f"DROP TABLE IF EXISTS {table}")
        for ops in ("OPS.LANDED_BATCHES", "OPS.MERGED_BATCHES"):
            self.sql(f"DELETE FROM {ops} WHERE RAW_TABLE = '{self.name}'")

    def land(
        self,
        batch: str,
        read_at: datetime,
        rows: list[tuple[int, str | None, str]],
        manifest_rows: int | None = None,
        pks: list[int] | None = None,
        manifest: bool = True,
    ) -> None:
        """Rows (id, value, op) as the connector lands them: row numbers in order, one read time per batch."""
        values = ", ".join(
            f"({key}, {'NULL' if v is None else repr(v)}, '{read_at}', '{batch}', '{read_at}', {n}, '{op}')"
            for n, (key, v, op) in enumerate(rows)
        )
        if values:
            self.sql(f"INSERT INTO RAW.{self.name} (ID, V, UPDATED_AT, _BATCH_ID, _EXTRACTED_AT, _ROW_NUMBER, _OP) "
                     f"VALUES {values}")  # fmt: skip
        if pks is not None:
            self.sql(f"INSERT INTO RAW.{self.name}__PKS VALUES "
                     + ", ".join(f"({k}, '{batch}', {n})" for n, k in enumerate(pks)))  # fmt: skip
        if manifest:
            self.manifest(batch, read_at, len(rows) if manifest_rows is None else manifest_rows, pks)

    def manifest(self, batch: str, read_at: datetime, row_count: int, pks: list[int] | None = None) -> None:
        pk_rows = "NULL" if pks is None else str(len(pks))
        self.sql(
            "INSERT INTO OPS.LANDED_BATCHES (BATCH_ID, SOURCE_TABLE, RAW_TABLE, MODE, ROW_COUNT, FILE_COUNT, "
            f"PK_SNAPSHOT_ROWS, SCHEMA_HASH, EXTRACTED_AT) VALUES ('{batch}', '{self.spec['table']}', '{self.name}', "
            f"'incremental', {row_count}, 1, {pk_rows}, 'h', '{read_at}')"
        )

    def merge(self, replay: str | None = None) -> dict[str, Any]:
        out = json.loads(merge_table(self.session, json.dumps(self.spec), "test-run", replay_batch=replay))
        out["waiting"] = [w.split(":")[0] for w in out["waiting"]]  # "b1: 2 of 3 rows in RAW" -> "b1"
        return out

    def curated(self) -> dict[int, str | None]:
        return {r[0]: r[1] for r in self.sql(f"SELECT ID, V FROM CURATED.{self.name} ORDER BY ID")}

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
    t.merge()
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
