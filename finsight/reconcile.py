"""Compare every source table with CURATED: same primary keys, same values (a hash of all columns), deletes included.

Per table: keys only in the source (`missing`: not merged yet, or lost), keys only in CURATED (`extra`: a delete
that did not propagate, or a resurrected row), keys whose values differ (`different`). PAN columns are compared by
last4 and by the token: the CURATED token must be the HMAC of the source card number under one of the key versions
held in Secrets Manager (`v<version>$<hex>`, or plain hex for the legacy single key), so a key rotation is not a
difference. Values never leave this process: samples show primary keys only.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg import sql

from finsight import catalog, warehouse
from finsight.config import Environment, PciClass, Table
from finsight.secrets import read_secret

SAMPLE = 5


@dataclass
class TableReconciliation:
    table: str
    source_rows: int
    curated_rows: int
    missing: int = 0
    extra: int = 0
    different: int = 0
    samples: dict[str, list[list[Any]]] = field(default_factory=dict)  # kind -> primary keys

    @property
    def equal(self) -> bool:
        return not (self.missing or self.extra or self.different) and self.source_rows == self.curated_rows

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"equal": self.equal}


def _norm(value: Any) -> str:
    if value is None:
        return "\0"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal | float):
        return format(Decimal(str(value)).normalize(), "f")
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    text = str(value)
    if text[:1] in "{[":
        try:
            return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
        except json.JSONDecodeError:
            pass
    return text


def _digest(values: list[Any]) -> str:
    return hashlib.blake2b("\x1f".join(_norm(v) for v in values).encode(), digest_size=16).hexdigest()


class PanTokens:
    """Every token a card number may legitimately carry: one per key version in Secrets Manager."""

    def __init__(self, env: Environment) -> None:
        secret = read_secret(env, env.secrets.pan_tokenization_key)
        self._keys: dict[str, bytes] = {}
        if "keys" in secret:
            text = secret["keys"].get_secret_value()
            try:
                keys = json.loads(text)
            except json.JSONDecodeError:
                keys = ast.literal_eval(text)  # read_secret stringifies nested objects
            self._keys = {str(v): k.encode() for v, k in keys.items()}
        if "hmac_key" in secret:
            self._keys.setdefault("1", secret["hmac_key"].get_secret_value().encode())

    def matches(self, pan: str | None, token: str | None) -> bool:
        if pan is None or token is None:
            return pan is None and token is None
        digits = "".join(ch for ch in pan if ch.isdigit()).encode()
        for version, key in self._keys.items():
            mac = hmac.new(key, digits, hashlib.sha256).hexdigest()
            if token in (mac, f"v{version}${mac}"):
                return True
        return False


def _compared_columns(table: Table) -> tuple[list[str], list[str]]:
    """(columns hashed, PAN columns). PII columns are left out of the hash: the pipeline role that reconciles reads
    them through the masking policy ('***MASKED***', migrations-governance/R__policies.sql), as Snowflake applies it
    to every role but the PII reader. A change to a PII column alone is therefore not a difference here."""
    plain = [c for c, col in table.columns.items() if col.pci not in (PciClass.PAN, PciClass.PII)]
    return plain, [c for c, col in table.columns.items() if col.pci is PciClass.PAN]


def _source_rows(env: Environment, table: Table) -> dict[tuple, tuple[str, list[tuple[str | None, str | None]]]]:
    """pk -> (hash of the non-PAN columns, [(pan, last4)]) read with the connector's own connection."""
    from connectors.postgres.source import connect  # the connector's credentials and TLS settings

    plain, pans = _compared_columns(table)
    select = [
        sql.SQL("({} AT TIME ZONE 'UTC')").format(sql.Identifier(c))
        if table.columns[c].type == "timestamp"
        else sql.Identifier(c)
        for c in [*plain, *pans]
    ]
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(select), sql.Identifier(table.name))
    key_index = [plain.index(k) for k in table.primary_key]
    out = {}
    with connect(env, table.source) as conn, conn.cursor(name=f"finsight_reconcile_{table.name}") as cur:
        cur.execute(query)
        for row in cur:
            values, pan_values = list(row[: len(plain)]), row[len(plain) :]
            key = tuple(_norm(values[i]) for i in key_index)
            out[key] = (_digest(values), [(p, None if p is None else "".join(ch for ch in p if ch.isdigit())[-4:])
                                          for p in pan_values])  # fmt: skip
    return out


def _curated_rows(cur: Any, env: Environment, table: Table) -> dict[tuple, tuple[str, list[tuple[Any, Any]]]]:
    plain, pans = _compared_columns(table)
    pan_cols = [f"{c}_token, {c}_last4" for c in pans]
    cols = ", ".join([*(c.upper() for c in plain), *(p.upper() for p in pan_cols)])
    cur.execute(f"SELECT {cols} FROM {catalog.curated_reader(env, table)}")  # archived rows are not missing
    key_index = [plain.index(k) for k in table.primary_key]
    out = {}
    for row in cur.fetchall():
        values, rest = list(row[: len(plain)]), row[len(plain) :]
        key = tuple(_norm(values[i]) for i in key_index)
        out[key] = (_digest(values), [(rest[2 * i], rest[2 * i + 1]) for i in range(len(pans))])
    return out


def reconcile(env: Environment, tables: list[Table] | None = None) -> list[TableReconciliation]:
    tokens = PanTokens(env)
    results = []
    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        for table in tables or env.tables():
            source = _source_rows(env, table)
            curated = _curated_rows(cur, env, table)
            r = TableReconciliation(table.qualified, len(source), len(curated))
            missing = [k for k in source if k not in curated]
            extra = [k for k in curated if k not in source]
            different = []
            for key in source.keys() & curated.keys():
                (s_hash, s_pans), (c_hash, c_pans) = source[key], curated[key]
                pans_ok = all(
                    tokens.matches(pan, token) and last4 == c_last4
                    for (pan, last4), (token, c_last4) in zip(s_pans, c_pans, strict=True)
                )
                if s_hash != c_hash or not pans_ok:
                    different.append(key)
            r.missing, r.extra, r.different = len(missing), len(extra), len(different)
            for kind, keys in (("missing", missing), ("extra", extra), ("different", different)):
                if keys:
                    r.samples[kind] = [list(k) for k in sorted(keys)[:SAMPLE]]
            results.append(r)
    return results
