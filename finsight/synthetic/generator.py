"""Deterministic synthetic rows for every catalog table, seeded into the source databases with COPY.

Structure comes from the config: keys, types, nullability and `references` decide how a row is built.
Two generic rules keep the data referentially and economically consistent without naming any table:

* a child row is built under one *anchor* parent (its most derived reference, e.g. a payment under its
  invoice) and inherits the anchor's identity attributes (every referenced key it carries, and its currency),
  so a payment's merchant and customer are its invoice's;
* any other reference is resolved to a parent that agrees with what the row already knows (a ledger entry's
  account belongs to the payment's merchant, a subscription's customer to the plan's merchant).

What a column's *values* look like comes from its name (email, country, currency, status...) via `values`.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from finsight.config import Column, Environment, PciClass, Table
from finsight.synthetic import values as v
from finsight.synthetic.ddl import Connect
from finsight.synthetic.values import Fanout, Lifecycle, TableProfile

Row = dict[str, Any]

HISTORY = timedelta(days=30)  # seeded rows are born within the 30 days before `now`
CHILD_LAG = timedelta(days=10)  # a child is born at most this long after its anchor parent
PUBLISH_HOUR = 16  # date-keyed rows (daily FX fixings) are published at 16:00 UTC
CALENDAR_DAYS = 365
GENERIC_STATUS = Lifecycle(
    weights={"active": 90, "inactive": 10}, transitions={"active": ("inactive",), "inactive": ("active",)}
)


class Role(StrEnum):
    ID = "id"
    FK = "fk"
    KEY = "key"  # part of a composite primary key: enumerated, not drawn
    PAN = "pan"
    BRAND = "brand"
    EMAIL = "email"
    PERSON = "person"
    COMPANY = "company"
    TITLE = "title"
    COUNTRY = "country"
    MCC = "mcc"
    CURRENCY = "currency"
    STATUS = "status"
    ENUM = "enum"
    SCORE = "score"
    DECISION = "decision"
    RATE = "rate"
    AMOUNT = "amount"
    FEE = "fee"
    NET = "net"
    BIRTH = "birth"
    CURSOR = "cursor"
    STATUS_TIME = "status_time"
    TIMESTAMP = "timestamp"
    DATE = "date"
    TEXT = "text"
    INT = "int"
    BOOL = "bool"
    JSON = "json"


# evaluation order: a role may read the roles of earlier phases from the row being built
PHASE = {Role.AMOUNT: 2, Role.RATE: 2, Role.DATE: 2, Role.TIMESTAMP: 2, Role.STATUS_TIME: 2, Role.EMAIL: 2,
          Role.BRAND: 2, Role.DECISION: 2, Role.FEE: 3, Role.NET: 4}  # fmt: skip
_INT_TYPES = ("int", "bigint")
_DECIMAL = re.compile(r"^decimal\((\d+),(\d+)\)$")

# naming conventions for string columns, first match wins
_STRING_ROLES: tuple[tuple[re.Pattern[str], Role], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"email", Role.EMAIL),
        (r"^(full|first|last)_name$", Role.PERSON),
        (r"^(legal|company|business|trading)_name$", Role.COMPANY),
        (r"^(name|title|display_name)$", Role.TITLE),
        (r"(^|_)country$", Role.COUNTRY),
        (r"^mcc$", Role.MCC),
        (r"(^|_)currency$", Role.CURRENCY),
        (r"_brand$", Role.BRAND),
        (r"^status$", Role.STATUS),
        (r"^decision$", Role.DECISION),
    )
)


def utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def column_roles(table: Table, profile: TableProfile) -> dict[str, Role]:
    statuses = set((profile.lifecycle or GENERIC_STATUS).weights)
    single_id = len(table.primary_key) == 1 and table.columns[table.primary_key[0]].type in _INT_TYPES
    roles: dict[str, Role] = {}
    birth_taken = False
    for name, col in table.columns.items():
        role: Role
        if col.pci is PciClass.PAN:
            role = Role.PAN
        elif name in table.primary_key:
            role = Role.ID if single_id else (Role.CURRENCY if "currency" in name else Role.KEY)
        elif col.references and col.references.split(".")[:2] != [table.source, table.name]:
            role = Role.FK
        elif col.type == "string":
            role = Role.ENUM if name in profile.enums else _string_role(name)
        elif col.type in _INT_TYPES:
            role = Role.SCORE if name.endswith("score") else Role.INT
        elif col.type.startswith("decimal"):
            role = (
                Role.RATE
                if re.search(r"(^|_)rate$", name)
                else Role.FEE
                if name.startswith("fee_")
                else (Role.NET if name.startswith("net_") else Role.AMOUNT)
            )
        elif col.type == "timestamp":
            if name == table.cursor:
                role = Role.CURSOR
            elif name.endswith("_at") and name[:-3] in statuses:
                role = Role.STATUS_TIME
            else:
                role, birth_taken = (Role.TIMESTAMP, True) if birth_taken else (Role.BIRTH, True)
        else:
            role = {"bool": Role.BOOL, "date": Role.DATE, "json": Role.JSON}.get(col.type, Role.TEXT)
        roles[name] = role
    return roles


def _string_role(name: str) -> Role:
    return next((role for pattern, role in _STRING_ROLES if pattern.search(name)), Role.TEXT)


def attr_keys(table: Table, roles: dict[str, Role]) -> dict[str, str]:
    """Attribute key -> column for the identity a child inherits: referenced keys and currencies.

    Keys are reference targets (`merchants.merchants.merchant_id`), so a column is matched by what it points
    to, not by its name.
    """
    keys: dict[str, str] = {}
    for col, role in roles.items():
        if role is Role.ID:
            keys[f"{table.qualified}.{col}"] = col
        elif role is Role.FK:
            keys[str(table.columns[col].references)] = col
        elif role is Role.CURRENCY and col not in table.primary_key:
            keys[f"~{col}"] = col
    return keys


def dependency_order(env: Environment) -> list[Table]:
    """Every table after the tables it references, across databases (catalog order otherwise)."""
    ordered: list[Table] = []
    seen: set[str] = set()

    def visit(t: Table) -> None:
        if t.qualified in seen:
            return
        seen.add(t.qualified)
        for col in t.columns.values():
            if col.references:
                parent = env.table(".".join(col.references.split(".")[:2]))
                if parent.qualified != t.qualified:
                    visit(parent)
        ordered.append(t)

    for t in env.tables():
        visit(t)
    return ordered


def depths(env: Environment) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in dependency_order(env):
        parents = [parent_table(env, col).qualified for col in t.columns.values() if col.references]
        out[t.qualified] = 1 + max((out[p] for p in parents if p != t.qualified), default=-1)
    return out


def parent_table(env: Environment, column: Column) -> Table:
    """The table a referencing column points to."""
    assert column.references is not None
    return env.table(".".join(column.references.split(".")[:2]))


def id_base(table: Table) -> int:
    """Each table numbers its ids in its own block, so a join on the wrong key finds nothing (as in prod)."""
    return (v.stable_int("id-block", table.qualified) % 9000 + 100) * 1_000_000


def stochastic_round(x: float, rng: random.Random) -> int:
    """Rounds up with probability equal to the fraction: small tables still change, at the right rate."""
    return int(math.floor(x) + (rng.random() < x - math.floor(x)))


class Pool:
    """The rows of one table as currently known, indexed by the identity attributes children filter on."""

    def __init__(self, table: Table, attr_keys: dict[str, str], rows: list[Row]) -> None:
        self.table = table
        self.attr_keys = attr_keys  # attribute key -> column
        self.rows = rows
        self._index: dict[tuple[str, ...], dict[tuple[Any, ...], list[Row]]] = {}

    def lookup(self, keys: tuple[str, ...], values: tuple[Any, ...]) -> list[Row]:
        if keys not in self._index:
            cols = [self.attr_keys[k] for k in keys]
            index: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
            for row in self.rows:
                index[tuple(row[c] for c in cols)].append(row)
            self._index[keys] = index
        return self._index[keys].get(values, [])

    def add(self, rows: Iterable[Row]) -> None:
        self.rows.extend(rows)
        self._index.clear()

    def replace(self, rows: list[Row]) -> None:
        self.rows = rows
        self._index.clear()


class TableGenerator:
    """Builds rows of one table; shared by the seed (bulk) and the hourly mutation stream (increments)."""

    def __init__(
        self, env: Environment, table: Table, pools: dict[str, Pool], rng: random.Random, now: datetime
    ) -> None:
        self.env = env
        self.table = table
        self.pools = pools
        self.rng = rng
        self.now = now
        self.profile = v.profile_for(table.qualified)
        self.roles = column_roles(table, self.profile)
        self.lifecycle = self.profile.lifecycle or GENERIC_STATUS
        self.keyed = Role.ID not in self.roles.values()  # composite key: rows enumerate a key space
        self.order = sorted(self.table.columns, key=lambda c: PHASE.get(self.roles[c], 1))
        self.fks = {c: parent_table(env, table.columns[c]) for c, r in self.roles.items() if r is Role.FK}
        depth = depths(env)
        # anchor: the most derived parent (a payment hangs under its invoice, not under its merchant)
        self.anchor: str | None = max(self.fks, key=lambda c: depth[self.fks[c].qualified], default=None)
        self.next_id = id_base(table) + 1
        self._birth_cols: dict[str, str | None] = {}

    # -- identity ----------------------------------------------------------------------------
    def attr_keys(self) -> dict[str, str]:
        return attr_keys(self.table, self.roles)

    def pool(self, table: Table) -> Pool:
        return self.pools[table.qualified]

    def _attrs(self, pool: Pool, row: Row) -> dict[str, Any]:
        return {k: row[c] for k, c in pool.attr_keys.items()}

    def _pick_parent(self, pool: Pool, ctx: dict[str, Any]) -> Row | None:
        """A parent agreeing with the row's identity so far; relax currency, then everything, if none does."""
        shared = tuple(k for k in pool.attr_keys if k in ctx)
        for keys in (shared, tuple(k for k in shared if not k.startswith("~")), ()):
            found = pool.lookup(keys, tuple(ctx[k] for k in keys))
            if found:
                return self.rng.choice(found)
        return None

    # -- time -------------------------------------------------------------------------------------
    def birth_of(self, table: Table, row: Row) -> datetime:
        if table.qualified not in self._birth_cols:
            roles = column_roles(table, v.profile_for(table.qualified))
            self._birth_cols[table.qualified] = next((c for c, r in roles.items() if r is Role.BIRTH), None)
        col = self._birth_cols[table.qualified]
        return (row[col] if col else None) or row[table.cursor]

    def _seed_times(self, parent: Row | None, key_date: date | None) -> tuple[datetime, datetime]:
        if key_date is not None:
            birth = min(datetime.combine(key_date, time(PUBLISH_HOUR), UTC), self.now)
            return birth, birth
        if parent is None or self.anchor is None:
            start = self.now - HISTORY
            birth = (start + (self.now - timedelta(hours=1) - start) * self.rng.random()).replace(microsecond=0)
        else:  # children cluster soon after their parent (squared: most payments come quickly)
            lo = self.birth_of(self.fks[self.anchor], parent)
            birth = max((lo + min(self.now - lo, CHILD_LAG) * self.rng.random() ** 2).replace(microsecond=0), lo)
        cursor = birth if self.rng.random() < 0.6 else birth + (self.now - birth) * self.rng.random()
        return birth, min(cursor.replace(microsecond=0), self.now)

    def _new_times(self, parent: Row | None) -> tuple[datetime, datetime]:
        """Rows inserted by a mutation are born within the last hour and carry cursor == now."""
        birth = (self.now - timedelta(seconds=self.rng.uniform(0, 3600))).replace(microsecond=0)
        if parent is not None and self.anchor is not None:
            birth = max(birth, self.birth_of(self.fks[self.anchor], parent))
        return min(birth, self.now), self.now

    # -- one row ------------------------------------------------------------------------------
    def make_row(
        self,
        parent: Row | None,
        slot: int,
        *,
        fresh: bool,
        key: Row | None = None,
        fixed: Row | None = None,
        times: tuple[datetime, datetime] | None = None,
    ) -> Row:
        row: Row = dict(key or {})
        ctx: dict[str, Any] = {}
        if parent is not None and self.anchor is not None:
            anchor_pool = self.pool(self.fks[self.anchor])
            ref_col = str(self.table.columns[self.anchor].references).split(".")[2]
            row[self.anchor] = parent[ref_col]
            ctx.update(self._attrs(anchor_pool, parent))
        for col, role in self.roles.items():
            if role is Role.ID:
                row[col] = self.next_id
                self.next_id += 1
                ctx[f"{self.table.qualified}.{col}"] = row[col]
        row.update(fixed or {})
        for col, target in self.fks.items():
            if col in row:  # the anchor, or fixed by the caller
                continue
            ref = str(self.table.columns[col].references)
            if ref in ctx:  # inherited from the anchor: the payment's merchant is its invoice's merchant
                row[col] = ctx[ref]
                continue
            pool = self.pool(target)
            chosen = self._pick_parent(pool, ctx)
            row[col] = None if chosen is None else chosen[ref.split(".")[2]]
            if chosen is not None:
                ctx.update({k: val for k, val in self._attrs(pool, chosen).items() if k not in ctx})
        key_date = next((row[c] for c, r in self.roles.items() if r is Role.KEY and isinstance(row.get(c), date)), None)
        if times is None:
            times = self._new_times(parent) if fresh else self._seed_times(parent, key_date)
        birth, cursor = times
        for col in self.order:
            if col not in row:
                row[col] = self.fit(
                    col, self.value(col, row, ctx, parent, slot, birth=birth, cursor=cursor, fresh=fresh)
                )
        return row

    def fit(self, col: str, value: Any) -> Any:
        """Keep drawn decimals inside numeric(p,s): a narrow column in a new table must not overflow."""
        m = _DECIMAL.match(self.table.columns[col].type)
        if m is None or not isinstance(value, Decimal):
            return value
        precision, scale = int(m[1]), int(m[2])
        limit = Decimal(10) ** (precision - scale)
        while abs(value) >= limit:
            value /= 10
        return value.quantize(Decimal(1).scaleb(-scale))

    def value(
        self,
        col: str,
        row: Row,
        ctx: dict[str, Any],
        parent: Row | None,
        slot: int,
        *,
        birth: datetime,
        cursor: datetime,
        fresh: bool,
    ) -> Any:
        rng, role = self.rng, self.roles[col]
        match role:
            case Role.BIRTH:
                return birth
            case Role.CURSOR:
                return cursor
            case Role.TIMESTAMP:
                return (birth + (cursor - birth) * rng.random()).replace(microsecond=0)
            case Role.STATUS_TIME:
                if row.get(self.status_column()) != col[:-3] and self.table.columns[col].nullable:
                    return None
                return cursor if fresh else (birth + (cursor - birth) * rng.random()).replace(microsecond=0)
            case Role.DATE:
                return birth.date() + timedelta(days=rng.randint(*self.profile.date_offset_days))
            case Role.STATUS:
                mix = (self.lifecycle.new or self.lifecycle.weights) if fresh else self.lifecycle.weights
                return v.weighted(rng, mix)
            case Role.ENUM:
                vocab = self.profile.enums[col]
                return vocab[slot % len(vocab)] if self.profile.fanout is Fanout.EXACT else rng.choice(vocab)
            case Role.CURRENCY:
                return ctx.get(f"~{col}") or v.currency(rng)
            case Role.PAN:
                return v.card_number(rng)
            case Role.BRAND:
                pan = next((c for c, r in self.roles.items() if r is Role.PAN), None)
                return v.card_brand(row[pan]) if pan and row.get(pan) else rng.choice(tuple(v.CARD_PREFIXES))
            case Role.PERSON:
                return v.person_name(rng)
            case Role.COMPANY:
                return v.company_name(rng)
            case Role.TITLE:
                tier = v.PRODUCT_TIERS[slot % len(v.PRODUCT_TIERS)] if slot >= 0 else rng.choice(v.PRODUCT_TIERS)
                return f"{tier} Plan"
            case Role.EMAIL:
                name = next((row[c] for c, r in self.roles.items() if r in (Role.PERSON, Role.COMPANY)), None)
                unique = next((row[c] for c, r in self.roles.items() if r is Role.ID), rng.randrange(10**9))
                return v.email(rng, name, unique)
            case Role.COUNTRY:
                return v.country(rng)
            case Role.MCC:
                return v.mcc(rng)
            case Role.SCORE:
                return v.risk_score(rng)
            case Role.DECISION:
                score = next((row[c] for c, r in self.roles.items() if r is Role.SCORE), None)
                return v.risk_decision(score) if score is not None else rng.choice(("approve", "review", "decline"))
            case Role.RATE:
                return self._rate(row)
            case Role.AMOUNT:
                return self._amount(col, row, parent)
            case Role.FEE:
                gross = self._gross(col, row)
                return v.money(gross * Decimal(str(rng.uniform(0.015, 0.035))), self._currency(row))
            case Role.NET:
                suffix = col.removeprefix("net_")
                return self._gross(col, row) - (row.get(f"fee_{suffix}") or Decimal(0))
            case Role.INT:
                return rng.randrange(1000)
            case Role.BOOL:
                return rng.random() < 0.5
            case Role.JSON:
                return {"source": "synthetic", "n": rng.randrange(1000)}
            case _:
                return f"{col}_{rng.randrange(10**6):06d}"

    def status_column(self) -> str | None:
        return next((c for c, r in self.roles.items() if r is Role.STATUS), None)

    def _currency(self, row: Row) -> str | None:
        return next((row[c] for c, r in self.roles.items() if r is Role.CURRENCY and row.get(c)), None)

    def _gross(self, col: str, row: Row) -> Decimal:
        suffix = col.split("_", 1)[1]
        gross = row.get(f"gross_{suffix}")
        if gross is None:
            gross = next((row[c] for c, r in self.roles.items() if r is Role.AMOUNT and row.get(c) is not None), 0)
        return Decimal(gross)

    def _amount(self, col: str, row: Row, parent: Row | None) -> Decimal:
        cur = self._currency(row)
        if parent is not None and self.anchor is not None:
            anchor_columns = self.fks[self.anchor].columns
            parent_amounts = [c for c, pc in anchor_columns.items() if pc.type.startswith("decimal")]
            if col in parent_amounts and parent[col] is not None:
                # refunds/disputes never exceed what they refund or dispute
                lo, hi = self.profile.bounded_fraction
                frac = hi if self.rng.random() < 0.5 else self.rng.uniform(lo, hi)
                bounded = v.money(Decimal(parent[col]) * Decimal(str(frac)), cur)
                return min(Decimal(parent[col]), max(bounded, v.money(1 if cur == "JPY" else "0.01")))
            if len(parent_amounts) == 1 and "amount" in parent_amounts[0] and parent[parent_amounts[0]]:
                return Decimal(parent[parent_amounts[0]])  # a payment settles its invoice's amount due
        return v.amount(self.rng, *self.profile.amount_range, cur)

    def _rate(self, row: Row) -> Decimal:
        pair = tuple(row[c] for c in self.table.primary_key if self.roles[c] is Role.CURRENCY)
        mid = v.FX_PAIRS.get((pair[0], pair[1]), Decimal(1)) if len(pair) >= 2 else Decimal(1)
        day = next((row[c] for c in self.table.primary_key if isinstance(row.get(c), date)), self.now.date())
        return v.fx_rate(mid, day.toordinal(), self.rng)

    # -- many rows --------------------------------------------------------------------------------
    def eligible_parents(self) -> list[Row]:
        if self.anchor is None:
            return []
        rows = self.pool(self.fks[self.anchor]).rows
        where = self.profile.parent_where
        return [r for r in rows if all(r.get(c) in allowed for c, allowed in where.items())]

    def children_of(self, parent: Row, slot_start: int, count: int, *, fresh: bool) -> list[Row]:
        if self.profile.double_entry is not None:
            return self.double_entries(parent, fresh=fresh)
        return [self.make_row(parent, slot_start + i, fresh=fresh) for i in range(count)]

    def seed_rows(self, scale: float) -> list[Row]:
        if self.keyed:
            return [self.make_row(None, -1, fresh=False, key=k) for k in self.key_space()]
        if self.anchor is None:
            return [self.make_row(None, i, fresh=False) for i in range(max(1, round(self.profile.rows * scale)))]
        rows: list[Row] = []
        per = self.profile.per_parent
        for parent in self.eligible_parents():
            match self.profile.fanout:
                case Fanout.EXACT:
                    n = round(per)
                case Fanout.SPARSE:
                    n = int(self.rng.random() < per)
                case _:
                    n = int(self.rng.expovariate(1 / per) + 0.5)
            rows += self.children_of(parent, 0, n, fresh=False)
        return rows

    def key_space(self, after: date | None = None) -> Iterator[Row]:
        """Composite keys: calendar days x currency pairs (x small vocabularies for anything else)."""
        last = (self.now - timedelta(hours=PUBLISH_HOUR)).date()
        first = after + timedelta(days=1) if after else last - timedelta(days=CALENDAR_DAYS - 1)
        domains: list[list[Row]] = []
        pk = self.table.primary_key
        i = 0
        while i < len(pk):
            col, typ = pk[i], self.table.columns[pk[i]].type
            if typ == "date":
                domains.append([{col: first + timedelta(days=d)} for d in range((last - first).days + 1)])
            elif self.roles[col] is Role.CURRENCY and i + 1 < len(pk) and self.roles[pk[i + 1]] is Role.CURRENCY:
                domains.append([{col: b, pk[i + 1]: q} for b, q in v.FX_PAIRS])
                i += 1
            elif self.roles[col] is Role.CURRENCY:
                domains.append([{col: c} for c in v.CURRENCIES])
            elif typ in _INT_TYPES:
                domains.append([{col: n} for n in range(1, 6)])
            else:
                vocab = self.profile.enums.get(col) or tuple(f"{col}_{n}" for n in range(1, 4))
                domains.append([{col: x} for x in vocab])
            i += 1
        for combo in itertools.product(*domains):
            yield {k: val for part in combo for k, val in part.items()}

    def double_entries(self, parent: Row, *, fresh: bool) -> list[Row]:
        """A charge pair for the parent's amount and a fee pair, each a debit and a credit of equal amount."""
        de = self.profile.double_entry
        assert de is not None and self.anchor is not None
        anchor_table = self.fks[self.anchor]
        other = [c for c in self.fks if c != self.anchor]
        amount_col = next((c for c, r in self.roles.items() if r is Role.AMOUNT), None)
        if not other or amount_col is None:
            return [self.make_row(parent, 0, fresh=fresh)]
        account_col, account_table = other[0], self.fks[other[0]]
        ctx = self._attrs(self.pool(anchor_table), parent)
        pool = self.pool(account_table)
        # the owner's accounts (matched on referenced keys only: one set of books per merchant)
        keys = tuple(k for k in pool.attr_keys if k in ctx and not k.startswith("~"))
        accounts = pool.lookup(keys, tuple(ctx[k] for k in keys)) if keys else []
        if len(accounts) < 2:
            return []  # an owner without two accounts cannot book a balanced entry yet
        ref = str(self.table.columns[account_col].references).split(".")[2]
        parent_amount = Decimal(
            parent.get(amount_col)
            or next(parent[c] for c, pc in anchor_table.columns.items() if pc.type.startswith("decimal"))
        )
        cur = next((val for k, val in ctx.items() if k.startswith("~")), None)
        fee = max(v.money(parent_amount * Decimal(str(de.fee_rate)), cur), v.money(1 if cur == "JPY" else "0.01"))
        charge = next((k for k in self.profile.enums.get(de.kind_column, ()) if k != de.fee_kind), "charge")
        debit_word, credit_word = self.profile.enums.get(de.direction_column, ("debit", "credit"))[:2]
        a, b, c = accounts[0], accounts[1], accounts[2 % len(accounts)]
        legs = ((charge, parent_amount, a, b), (de.fee_kind, fee, b, c))
        times = self._new_times(parent) if fresh else self._seed_times(parent, None)  # one posting instant
        rows: list[Row] = []
        for slot, (kind, amt, debit, credit) in enumerate(legs):
            for direction, account in ((debit_word, debit), (credit_word, credit)):
                fixed = {
                    account_col: account[ref],
                    de.direction_column: direction,
                    de.kind_column: kind,
                    amount_col: amt,
                }
                rows.append(self.make_row(parent, slot, fresh=fresh, fixed=fixed, times=times))
        return rows


# -- database I/O --------------------------------------------------------------------------------
def count_rows(conn: psycopg.Connection, table: Table) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table.name))).fetchone()
    return int(row[0]) if row else 0


def load_rows(conn: psycopg.Connection, table: Table) -> list[Row]:
    query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
        sql.SQL(", ").join(map(sql.Identifier, table.columns)),
        sql.Identifier(table.name),
        sql.SQL(", ").join(map(sql.Identifier, table.primary_key)),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(query))


def copy_rows(conn: psycopg.Connection, table: Table, rows: list[Row]) -> None:
    """COPY is one statement: on an autocommit connection the table gets all rows or none."""
    cols = list(table.columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, cols))
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row([Jsonb(row[c]) if isinstance(row[c], dict | list) else row[c] for c in cols])


def make_pool(table: Table, rows: list[Row]) -> Pool:
    return Pool(table, attr_keys(table, column_roles(table, v.profile_for(table.qualified))), rows)


def next_id(table: Table, rows: list[Row]) -> int:
    pk = table.primary_key[0]
    return max((r[pk] for r in rows), default=id_base(table)) + 1


def seed_sources(
    env: Environment, connect: Connect, scale: float = 1.0, seed: int = 42, now: datetime | None = None
) -> dict[str, int]:
    """Fill every empty catalog table deterministically; tables that already hold rows are left alone."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    now = utc(now)
    conns = {name: connect(name) for name in env.postgres_sources}
    try:
        pools: dict[str, Pool] = {}
        counts: dict[str, int] = {}
        for table in dependency_order(env):
            conn = conns[table.source]
            if existing := count_rows(conn, table):
                # children of a table seeded earlier must reference its real rows, not ones we would draw
                pools[table.qualified] = make_pool(table, load_rows(conn, table))
                counts[table.qualified] = existing
                continue
            gen = TableGenerator(env, table, pools, v.derive_rng(seed, "seed", table.qualified), now)
            rows = gen.seed_rows(scale)
            copy_rows(conn, table, rows)
            pools[table.qualified] = Pool(table, gen.attr_keys(), rows)
            counts[table.qualified] = len(rows)
        return {t.qualified: counts[t.qualified] for t in env.tables()}
    finally:
        for conn in conns.values():
            conn.close()
