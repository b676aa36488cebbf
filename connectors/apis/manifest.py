"""Load a provider's declarative manifest and build its streams from the config (no stream name typed twice)."""

from __future__ import annotations

import copy
import math
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from finsight.config import ApiSource

HERE = Path(__file__).parent


def manifest_path(kind: str) -> Path:
    return HERE / kind / "manifest.yaml"


@cache
def _template(kind: str) -> dict[str, Any]:
    path = manifest_path(kind)
    if not path.exists():
        raise FileNotFoundError(f"no declarative manifest for API kind {kind!r} at {path}")
    return yaml.safe_load(path.read_text())


def _set_numbers(node: Any, numbers: dict[str, float]) -> None:
    """Fields the CDK schema only takes as literal numbers (no interpolation) are set from the config here."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in numbers:
                node[key] = numbers[key]
            else:
                _set_numbers(value, numbers)
    elif isinstance(node, list):
        for item in node:
            _set_numbers(item, numbers)


def api_budget(rate_per_second: float) -> dict[str, Any]:
    """The CDK paces every request to the provider's published rate (`api_sources.<name>.rate_limit_per_second`).

    Why: a 429 costs a whole Retry-After (HTTP allows whole seconds only) on top of the wasted call; pacing costs
    only the gap between calls. A 429 that still comes (a limit shared with another client) is retried as before.
    """
    limit = max(1, math.floor(rate_per_second))
    return {
        "type": "HTTPAPIBudget",
        "policies": [
            {
                "type": "MovingWindowCallRatePolicy",
                "rates": [{"limit": limit, "interval": f"PT{limit / rate_per_second:.3f}S"}],
                "matchers": [],  # every request of the source
            }
        ],
    }


def build_manifest(
    source: ApiSource, streams: list[str] | None = None, numbers: dict[str, float] | None = None
) -> dict[str, Any]:
    """The provider's manifest with one stream per configured stream (from `definitions.stream`).

    numbers: literal-only manifest fields to set, e.g. {"read_timeout_in_seconds": 30}.
    """
    manifest = copy.deepcopy(_template(source.kind))
    _set_numbers(manifest, numbers or {})
    manifest["api_budget"] = api_budget(source.rate_limit_per_second)
    template = manifest["definitions"]["stream"]
    chosen = list(source.streams) if streams is None else streams
    built = []
    for name in chosen:
        spec = source.streams[name]
        stream = copy.deepcopy(template)
        stream["name"] = name
        stream["$parameters"] = {
            **stream.get("$parameters", {}),
            "name": name,
            "path": spec.path,
            "cursor_field": spec.path_of(spec.cursor),
        }
        built.append(stream)
    manifest["streams"] = built
    manifest["check"]["stream_names"] = chosen[:1]
    return manifest
