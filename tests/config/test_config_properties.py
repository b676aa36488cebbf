"""Config parsing, property-based: any unknown key or wrongly typed value in an environment file is rejected with
the file and the field's full path; overlays merge key by key."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finsight.config import ConfigError, load_environment, repo_root
from finsight.config.merge import deep_merge

# objects of prod.yaml whose model forbids extra keys (a mapping of names, like postgres_sources, would not)
STRICT_OBJECTS = [(), ("snowflake",), ("aws",), ("aws", "s3"), ("connectors",), ("secrets",), ("source_network",),
                  ("snowflake", "warehouses", "load"), ("postgres_defaults",)]  # fmt: skip
# scalar fields and the kind of value they take
TYPED_FIELDS = [("connectors", "cpu"), ("connectors", "memory_mb"), ("connectors", "parallel_tables"),
                ("connectors", "rows_per_file"), ("snowflake", "warehouses", "load", "auto_suspend_seconds"),
                ("snowflake", "warehouses", "load", "minutes_per_hourly_run")]  # fmt: skip
relaxed = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
key_names = st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True)


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("env") / "environments"
    shutil.copytree(repo_root() / "environments", target)
    return target


def _with_prod(env_dir: Path, change) -> str:
    """Load prod with `change` applied to its overlay; return the ConfigError text (restores the file)."""
    path = env_dir / "prod.yaml"
    original = path.read_text()
    data = yaml.safe_load(original)
    change(data)
    path.write_text(yaml.safe_dump(data))
    try:
        with pytest.raises(ConfigError) as err:
            load_environment("prod", env_dir)
    finally:
        path.write_text(original)
    return str(err.value)


def _at(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for part in path:
        data = data[part]
    return data


@relaxed
@given(where=st.sampled_from(STRICT_OBJECTS), key=key_names, value=st.integers() | st.text(max_size=5) | st.none())
def test_an_unknown_key_anywhere_names_file_and_full_path(env_dir: Path, where, key: str, value: Any) -> None:
    prod = yaml.safe_load((env_dir / "prod.yaml").read_text())
    if key in _at(prod, where) or (not where and key in yaml.safe_load((env_dir / "base.yaml").read_text())):
        return  # a known key: not what this property is about
    text = _with_prod(env_dir, lambda d: _at(d, where).update({key: value}))
    assert f"{env_dir / 'prod.yaml'}: field '{'.'.join([*where, key])}': Extra inputs are not permitted" in text


@relaxed
@given(
    field=st.sampled_from(TYPED_FIELDS),
    value=st.text(st.characters(categories=("Ll",)), min_size=1, max_size=8)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(key_names, st.integers(), min_size=1, max_size=2),
)
def test_a_wrongly_typed_value_names_file_and_field(env_dir: Path, field: tuple[str, ...], value: Any) -> None:
    text = _with_prod(env_dir, lambda d: _at(d, field[:-1]).update({field[-1]: value}))
    assert f"{env_dir / 'prod.yaml'}: field '{'.'.join(field)}'" in text


json_values = st.recursive(
    st.none() | st.integers() | st.text(max_size=4),
    lambda inner: st.dictionaries(st.sampled_from("abcd"), inner, max_size=3) | st.lists(inner, max_size=2),
    max_leaves=8,
)
mappings = st.dictionaries(st.sampled_from("abcd"), json_values, max_size=4)


def _leaf(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _paths(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for k, v in data.items():
        out += _paths(v, (*prefix, k)) if isinstance(v, dict) and v else [((*prefix, k), v)]
    return out


@settings(deadline=None)
@given(base=mappings, overlay=mappings)
def test_deep_merge_overlay_wins_leaf_by_leaf_and_inputs_stay_untouched(base: dict, overlay: dict) -> None:
    before = (repr(base), repr(overlay))
    merged = deep_merge(base, overlay)
    assert (repr(base), repr(overlay)) == before  # no aliasing into the inputs
    for path, value in _paths(overlay):
        if value != {}:  # an empty mapping merges into the base's mapping (nothing to take from it)
            assert _leaf(merged, path) == value
    for path, value in _paths(base):
        overridden = any(path[: len(p)] == p or p[: len(path)] == path for p, _ in _paths(overlay))
        if not overridden:
            assert _leaf(merged, path) == value
    assert set(merged) == set(base) | set(overlay)
