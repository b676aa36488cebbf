"""API records -> an Arrow batch shaped like the stream's landed columns: typed key fields plus `_raw` (JSON).

Records arrive as decoded JSON (the CDK's record messages, or CSV rows as header -> text). They are scrubbed of
PANs first, so neither the flattened columns nor `_raw` can carry one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from connectors.apis.pans import scrub_json
from connectors.landing.arrow_schema import arrow_type
from connectors.pci import PanTokenizer
from finsight.config import ApiStream
from finsight.config.models import RAW_PAYLOAD


class RecordError(ValueError):
    """A record's field does not fit its configured type; names the stream, column, path and record."""


def lookup(record: Any, path: str) -> Any:
    """`a.b.c` in nested objects; a key that itself contains dots (CSV headers) is tried whole first."""
    if isinstance(record, dict) and path in record:
        return record[path]
    node = record
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _timestamp(v: Any) -> datetime:
    if isinstance(v, int | float):
        return datetime.fromtimestamp(v, UTC).replace(tzinfo=None)
    text = str(v).strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text), UTC).replace(tzinfo=None)
    parsed = datetime.fromisoformat(text)
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    text = str(v).strip().lower()
    if text in ("true", "1", "yes", "y"):
        return True
    if text in ("false", "0", "no", "n"):
        return False
    raise ValueError(f"not a boolean: {v!r}")


def _decimal(scale: int) -> Callable[[Any], Decimal]:
    quantum = Decimal(1).scaleb(-scale)

    def convert(v: Any) -> Decimal:
        try:
            return Decimal(str(v).strip()).quantize(quantum, rounding=ROUND_HALF_EVEN)
        except InvalidOperation:
            raise ValueError(f"not a number: {v!r}") from None

    return convert


def converter(logical: str) -> Callable[[Any], Any]:
    if logical.startswith("decimal("):
        return _decimal(int(logical[len("decimal(") : -1].split(",")[1]))
    return {
        "string": lambda v: v if isinstance(v, str) else json.dumps(v, separators=(",", ":")),
        "int": int,
        "bigint": int,
        "bool": _bool,
        "timestamp": _timestamp,
        "date": lambda v: date.fromisoformat(str(v)[:10]),
        "json": lambda v: json.dumps(v, separators=(",", ":")),
    }[logical]


def to_arrow(
    stream: ApiStream, records: Sequence[dict[str, Any]], tokenizer: PanTokenizer, extra: Sequence[dict] | None = None
) -> pa.Table:
    """Columns named like `stream.landed_columns()` (lower case). `extra`: per-record values not in the payload
    (e.g. report name and line number), looked up by column name before the payload."""
    safe = [scrub_json(r, tokenizer) for r in records]
    arrays: dict[str, pa.Array] = {}
    for name, col in stream.columns.items():
        path, convert = stream.path_of(name), converter(col.type)
        values: list[Any] = []
        for i, record in enumerate(safe):
            raw = extra[i][name] if extra is not None and name in extra[i] else lookup(record, path)
            if raw is None or raw == "":
                if not col.nullable:
                    raise RecordError(f"{stream.qualified}: column {name} ({path}) is empty in record {i + 1}")
                values.append(None)
                continue
            try:
                values.append(convert(raw))
            except (ValueError, TypeError, OverflowError) as exc:
                raise RecordError(
                    f"{stream.qualified}: column {name} ({path}) of record {i + 1} is not {col.type}: {exc}"
                ) from None
        arrays[name] = pa.array(values, type=arrow_type(col.type))
    arrays[RAW_PAYLOAD] = pa.array([json.dumps(r, separators=(",", ":")) for r in safe], type=pa.string())
    return pa.table(arrays)
