"""Load `environments/<env>.yaml` on top of `environments/base.yaml` into the typed model.

Errors name the file and the dotted field path, the way an engineer fixes them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from finsight.config.merge import deep_merge
from finsight.config.models import ApiSource, Connection, Environment

ENVIRONMENTS = ("local", "dev", "staging", "prod")
BASE_FILE = "base.yaml"


class ConfigError(Exception):
    """A configuration file is wrong; the message names the file and the field."""


def repo_root() -> Path:
    """The repository root: FINSIGHT_ROOT, or the first parent holding `environments/`."""
    if env_root := os.environ.get("FINSIGHT_ROOT"):
        return Path(env_root).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "environments" / BASE_FILE).is_file():
            return parent
    raise ConfigError(f"cannot find environments/{BASE_FILE} above {here}; set FINSIGHT_ROOT")


def environments_dir() -> Path:
    return repo_root() / "environments"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _apply_source_templates(data: dict[str, Any]) -> None:
    """Expand per-source templates; `{source}` and the keys of `local:` (ports) are substituted.

    `postgres_defaults` fills what each PostgreSQL source's `connection` leaves out;
    `api_overrides` replaces fields of every API source (e.g. the local stack points them at the mock server).
    """
    values = dict(data.get("local") or {})
    for template_key, sources_key, into, overlay_wins in (
        ("postgres_defaults", "postgres_sources", "connection", False),
        ("api_overrides", "api_sources", None, True),
    ):
        template = data.pop(template_key, None) or {}
        for name, src in (data.get(sources_key) or {}).items():
            if not isinstance(src, dict):
                continue
            filled = {k: v.format(source=name, **values) if isinstance(v, str) else v for k, v in template.items()}
            if into is None:
                src.update(deep_merge(src, filled) if overlay_wins else deep_merge(filled, src))
            else:
                src[into] = deep_merge(filled, src.get(into) or {})


def _check_template_keys(data: dict[str, Any], overlay: dict[str, Any], base_path: Path, env_path: Path) -> None:
    """An unknown key in a template is reported where it was written, not at every source it was copied into."""
    for template_key, model in (("postgres_defaults", Connection), ("api_overrides", ApiSource)):
        for key in (data.get(template_key) or {}) if isinstance(data.get(template_key), dict) else ():
            if key not in model.model_fields:
                blamed = env_path if _has_path(overlay, (template_key, key)) else base_path
                raise ConfigError(f"{blamed}: field '{template_key}.{key}': Extra inputs are not permitted")


PORT_OFFSET_VARIABLE = "FINSIGHT_LOCAL_PORT_OFFSET"


def _apply_port_offset(data: dict[str, Any]) -> None:
    """FINSIGHT_LOCAL_PORT_OFFSET=N moves every port of the local stack by N (two checkouts side by side)."""
    raw = os.environ.get(PORT_OFFSET_VARIABLE, "").strip()
    local = data.get("local")
    if not raw or not isinstance(local, dict):
        return
    try:
        offset = int(raw)
    except ValueError:
        raise ConfigError(f"{PORT_OFFSET_VARIABLE}: {raw!r} is not a whole number") from None
    for key, value in local.items():
        if key.endswith("_port") and isinstance(value, int):
            local[key] = value + offset


def _has_path(data: Any, path: tuple[Any, ...]) -> bool:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return False
    return True


def _format_error(exc: ValidationError, base_path: Path, env_path: Path, overlay: dict[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc) or "<top level>"
        # blame the file that sets the deepest part of this path
        blamed = env_path
        for depth in range(len(loc), 0, -1):
            if _has_path(overlay, loc[:depth]):
                break
        else:
            blamed = base_path if loc else env_path
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{blamed}: field '{field}': {msg}")
    return "\n".join(lines)


def load_environment(name: str, directory: Path | None = None) -> Environment:
    directory = directory or environments_dir()
    env_path = directory / f"{name}.yaml"
    base_path = directory / BASE_FILE
    if not env_path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml") if p.name != BASE_FILE))
        raise ConfigError(f"{env_path}: no such environment file (known: {known})")
    overlay = _read_yaml(env_path)
    merged = deep_merge(_read_yaml(base_path), overlay)
    merged.setdefault("name", name)
    if merged["name"] != name:
        raise ConfigError(f"{env_path}: field 'name': says {merged['name']!r} but the file is for {name!r}")
    _apply_port_offset(merged)
    _check_template_keys(merged, overlay, base_path, env_path)
    _apply_source_templates(merged)
    try:
        return Environment.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, base_path, env_path, overlay)) from None
