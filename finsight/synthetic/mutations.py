"""One simulated hour of source activity: inserts, updates that move the cursor, and hard deletes.

The pipeline extracts `cursor <= now` incrementally and finds hard deletes only on tables with delete detection, so:
every inserted or updated row carries cursor == now (never later), and rows vanish only where deletes are
detectable. Deletes never orphan a reference, in the same database or across databases.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from finsight.config import Environment, Table
from finsight.config.models import DeleteDetection
from finsight.synthetic import values as v
from finsight.synthetic.generator import (
    PHASE,
    Connect,
    Pool,
    Role,
    Row,
    TableGenerator,
    column_roles,
    copy_rows,
    dependency_order,
    load_rows,
    make_pool,
    next_id,
    stochastic_round,
    utc,
)
from finsight.synthetic.values import Fanout

INSERT_RATE = 0.02
UPDATE_RATE = 0.03
DELETE_RATE = 0.005
_DERIVED = (Role.FEE, Role.NET, Role.DECISION, Role.BRAND)  # re-derived when what they depend on changes


@dataclass(frozen=True)
class TableChanges:
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


@dataclass(frozen=True)
class MutationSummary:
    step: int
    now: datetime
    tables: dict[str, TableChanges] = field(default_factory=dict)  # keyed by Table.qualified

    @property
    def inserted(self) -> int:
        return sum(t.inserted for t in self.tables.values())

    @property
    def updated(self) -> int:
        return sum(t.updated for t in self.tables.values())

    @property
    def deleted(self) -> int:
        return sum(t.deleted for t in self.tables.values())


def mutate_sources(
    env: Environment, connect: Connect, step: int, seed: int = 42, now: datetime | None = None
) -> MutationSummary:
    """Apply hour `step` of activity to every source (same database state + step + seed -> same changes)."""
    now = utc(now)
    order = dependency_order(env)
    conns = {name: connect(name) for name in env.postgres_sources}
    try:
        pools = {t.qualified: make_pool(t, load_rows(conns[t.source], t)) for t in order}
        deleted: dict[str, int] = defaultdict(int)
        for table in reversed(order):  # children first: a parent is judged against its children's final state
            if table.deletes is not DeleteDetection.NONE:  # the tables whose hard deletes the pipeline finds
                rng = v.derive_rng(seed, "mutate", step, table.qualified, "delete")
                deleted[table.qualified] = _delete(env, table, pools, conns[table.source], rng)
        changes: dict[str, TableChanges] = {}
        for table in order:  # parents first: new children can reference this hour's new parents
            gen = TableGenerator(env, table, pools, v.derive_rng(seed, "mutate", step, table.qualified), now)
            conn = conns[table.source]
            with conn.transaction():
                updated = _update(gen, pools[table.qualified], conn)
                inserted = _insert(gen, pools[table.qualified], conn)
            changes[table.qualified] = TableChanges(inserted, updated, deleted[table.qualified])
        return MutationSummary(step, now, {t.qualified: changes[t.qualified] for t in env.tables()})
    finally:
        for conn in conns.values():
            conn.close()


def _where_pk(table: Table) -> sql.Composable:
    return sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in table.primary_key)


def _param(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, dict | list) else value


def _referenced(env: Environment, table: Table, pools: dict[str, Pool]) -> dict[str, set[Any]]:
    """Values of `table`'s columns that some row, in any source, still references."""
    out: dict[str, set[Any]] = defaultdict(set)
    for child in env.tables():
        for col_name, col in child.columns.items():
            if col.references and col.references.rsplit(".", 1)[0] == table.qualified:
                target = col.references.rsplit(".", 1)[1]
                out[target].update(r[col_name] for r in pools[child.qualified].rows if r[col_name] is not None)
    return out


def _delete(
    env: Environment, table: Table, pools: dict[str, Pool], conn: psycopg.Connection, rng: random.Random
) -> int:
    pool = pools[table.qualified]
    profile = v.profile_for(table.qualified)
    status = next((c for c, r in column_roles(table, profile).items() if r is Role.STATUS), None)
    referenced = _referenced(env, table, pools)
    candidates = [
        r
        for r in pool.rows
        if (status is None or not profile.deletable or r[status] in profile.deletable)
        and not any(r[c] in keys for c, keys in referenced.items())
    ]
    n = min(stochastic_round(len(pool.rows) * DELETE_RATE, rng), len(candidates))
    victims = rng.sample(candidates, n)
    if victims:
        with conn.transaction(), conn.cursor() as cur:
            statement = sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(table.name), _where_pk(table))
            cur.executemany(statement, [[r[c] for c in table.primary_key] for r in victims])
        gone = {id(r) for r in victims}
        pool.replace([r for r in pool.rows if id(r) not in gone])
    return n


def _update(gen: TableGenerator, pool: Pool, conn: psycopg.Connection) -> int:
    """Status transitions and corrections of a few columns; every updated row gets cursor = now."""
    table, rng, profile = gen.table, gen.rng, gen.profile
    status = gen.status_column()
    transitions = gen.lifecycle.transitions
    corrections = [c for c in profile.corrections if c in table.columns and c not in table.primary_key]

    def movable(r: Row) -> bool:
        return status is not None and r[status] in transitions

    # with a lifecycle, only rows still in flight get corrected (a paid invoice's amount is final)
    candidates = [r for r in pool.rows if movable(r) or (corrections and status is None)]
    n = min(stochastic_round(len(pool.rows) * UPDATE_RATE, rng), len(candidates))
    batches: dict[tuple[str, ...], list[list[Any]]] = defaultdict(list)
    for row in rng.sample(candidates, n):
        new = dict(row)
        if movable(row) and (not corrections or rng.random() < 0.7):
            assert status is not None
            new[status] = rng.choice(transitions[row[status]])
            for col, role in gen.roles.items():
                if role is Role.STATUS_TIME and col[:-3] == new[status]:
                    new[col] = gen.now
        else:
            _correct(gen, new, rng.choice(corrections))
        new[table.cursor] = gen.now
        changed = tuple(
            c for c in table.columns if c not in table.primary_key and (new[c] != row[c] or c == table.cursor)
        )
        batches[changed].append([_param(new[c]) for c in changed] + [row[c] for c in table.primary_key])
        row.update(new)  # in place: children built later this hour see the new status
    with conn.cursor() as cur:
        for cols, params in batches.items():
            assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in cols)
            statement = sql.SQL("UPDATE {} SET {} WHERE {}").format(
                sql.Identifier(table.name), assignments, _where_pk(table)
            )
            cur.executemany(statement, params)
    pool.replace(pool.rows)  # statuses changed: drop lookups built on the old values
    return n


def _correct(gen: TableGenerator, row: Row, col: str) -> None:
    """Re-draw one column (a different value, if the vocabulary allows), then whatever derives from it."""
    birth = gen.birth_of(gen.table, row)
    old = row[col]
    for _ in range(5):
        row[col] = gen.fit(col, gen.value(col, row, {}, None, -1, birth=birth, cursor=gen.now, fresh=False))
        if row[col] != old:
            break
    phase = PHASE.get(gen.roles[col], 1)
    for other in gen.order:
        if other != col and gen.roles[other] in _DERIVED and PHASE.get(gen.roles[other], 1) > phase:
            row[other] = gen.fit(other, gen.value(other, row, {}, None, -1, birth=birth, cursor=gen.now, fresh=False))


def _insert(gen: TableGenerator, pool: Pool, conn: psycopg.Connection) -> int:
    table, rng, profile = gen.table, gen.rng, gen.profile
    rows: list[Row] = []
    if gen.keyed:
        key_dates = [c for c in table.primary_key if table.columns[c].type == "date"]
        if key_dates and pool.rows:  # the next publication day(s), once they are due
            last = max(r[key_dates[0]] for r in pool.rows)
            rows = [gen.make_row(None, -1, fresh=True, key=k) for k in gen.key_space(after=last)]
    elif gen.anchor is None:
        gen.next_id = next_id(table, pool.rows)
        n = stochastic_round(max(len(pool.rows), 1) * INSERT_RATE, rng)
        rows = [gen.make_row(None, i, fresh=True) for i in range(n)]
    else:
        gen.next_id = next_id(table, pool.rows)
        ref_col = str(table.columns[gen.anchor].references).split(".")[2]
        have = Counter(r[gen.anchor] for r in pool.rows)
        eligible = gen.eligible_parents()
        if profile.fanout is Fanout.EXACT:  # complete parents missing their children (new merchants, payments)
            target = 1 if profile.double_entry else round(profile.per_parent)
            for p in eligible:
                if (got := have[p[ref_col]]) < target and not (profile.double_entry and got):
                    rows += gen.children_of(p, got, target - got, fresh=True)
        elif eligible:
            size = max(len(pool.rows), len(eligible) * profile.per_parent)
            n = stochastic_round(size * INSERT_RATE, rng)
            if profile.fanout is Fanout.SPARSE:  # at most one per parent: refunds stay <= the payment
                pool_of = [p for p in eligible if not have[p[ref_col]]]
                chosen = rng.sample(pool_of, min(n, len(pool_of)))
            else:
                chosen = [rng.choice(eligible) for _ in range(n)]
            for p in chosen:
                rows += gen.children_of(p, have[p[ref_col]], 1, fresh=True)
                have[p[ref_col]] += 1
    if rows:
        copy_rows(conn, table, rows)
        pool.add(rows)
    return len(rows)
