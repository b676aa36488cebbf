"""Small readers over synthesized Terraform JSON."""

from __future__ import annotations

import json
import re
from typing import Any

REF = re.compile(r"^\$\{([a-z0-9_]+)\.([A-Za-z0-9_-]+)\.([a-z_]+)\}$")


def ref(tf_type: str, cid: str, attr: str) -> str:
    return f"${{{tf_type}.{cid}.{attr}}}"


def referenced_id(value: str, tf_type: str) -> str:
    """`${aws_kms_key.kms-data.arn}` -> `kms-data` (asserting the type)."""
    m = REF.match(value)
    assert m and m.group(1) == tf_type, f"{value!r} is not a reference to a {tf_type}"
    return m.group(2)


def statements(policy: str) -> list[dict[str, Any]]:
    return json.loads(policy)["Statement"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
