"""Merging YAML mappings: an overlay over a base, nested mappings merged key by key.

A leaf under finsight.config: the loader (environment over base.yaml) and the quality model (per-table overrides
over defaults) both use it, so neither imports the other.
"""

from __future__ import annotations

import copy
from typing import Any


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Overlay wins; mappings merge key by key, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
