"""Read a YAML profile, apply environment overrides, validate.

Overrides: ``ORCHESTRATOR__SECTION__KEY=value`` sets ``section.key`` (double
underscores between levels, names lower-cased; the value is parsed as YAML,
so ``5``, ``true`` and ``[a, b]`` have their types). Secrets never live in
the file: a key that looks like one (password, secret, api_key, token) is
refused, and the sections that need secrets name environment variables.

Every problem becomes one line, ``file: key.path: message``; a problem in an
overridden key also names the variable that set it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orchestrator.config.models import OrchestratorConfig
from orchestrator.errors import ConfigError
from orchestrator.validation import format_validation_error

ENV_PREFIX = "ORCHESTRATOR__"
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|api_?key|token|private_?key)$", re.IGNORECASE)


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys instead of keeping the last."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return dict(loader.construct_mapping(node, deep=deep))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated configuration and where its values came from."""

    config: OrchestratorConfig
    path: Path | None
    raw: Mapping[str, Any]
    env_overrides: Mapping[str, str] = field(default_factory=dict)  # dotted key -> variable

    @property
    def label(self) -> str:
        return str(self.path) if self.path else "<config>"

    def origin_of(self, dotted: str) -> str | None:
        """The environment variable that set ``dotted`` or one of its parents."""
        for key, variable in self.env_overrides.items():
            if dotted == key or dotted.startswith(key + ".") or dotted.startswith(key + "["):
                return variable
        return None


def read_yaml(path: Path) -> dict[str, Any]:
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{label}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{label}: cannot read: {exc}"]) from None
    return parse_yaml(text, label)


def parse_yaml(text: str, label: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{label}: {where}{exc.problem or exc.context or 'invalid YAML'}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{label}: invalid YAML: {exc}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{label}: the top level must be a mapping of sections, not {type(data).__name__}"])
    return data


def _secret_keys(node: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            dotted = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _SECRET_KEY.search(key) and not isinstance(value, dict):
                found.append(dotted)
            found.extend(_secret_keys(value, dotted))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_secret_keys(value, f"{path}[{index}]"))
    return found


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """A copy of ``raw`` with every ``ORCHESTRATOR__A__B`` variable applied."""
    merged: dict[str, Any] = _deep_copy(raw)
    origins: dict[str, str] = {}
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in variable[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            continue
        try:
            value = yaml.safe_load(env[variable]) if env[variable].strip() else ""
        except yaml.YAMLError:
            value = env[variable]
        node = merged
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
        origins[".".join(parts)] = variable
    return merged, origins


def _deep_copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _deep_copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_deep_copy(v) for v in node]
    return node


def _non_finite(node: Any, path: str = "") -> list[str]:
    """Keys holding ``.inf`` or ``.nan``: YAML has them and pydantic lets them
    through (an infinite ``max_position_notional`` would be no limit at all)."""
    if isinstance(node, float) and not math.isfinite(node):
        return [path]
    if isinstance(node, dict):
        return [
            key for name, value in node.items() for key in _non_finite(value, f"{path}.{name}" if path else str(name))
        ]
    if isinstance(node, list):
        return [key for index, value in enumerate(node) for key in _non_finite(value, f"{path}[{index}]")]
    return []


def _covers(key: str, dotted: str) -> bool:
    return dotted == key or dotted.startswith((key + ".", key + "["))


def validate_config(
    raw: Mapping[str, Any], *, label: str, origins: Mapping[str, str] | None = None
) -> OrchestratorConfig:
    """The typed configuration, or ``ConfigError`` listing every problem once, one line each."""
    origins = origins or {}

    def variable_of(dotted: str) -> str | None:
        return next((v for k, v in origins.items() if _covers(k, dotted)), None)

    flagged: dict[str, str] = {}  # key -> problem, found before the schema sees the values
    for key in _secret_keys(raw):
        variable = variable_of(key)
        flagged[key] = (
            f"secrets are not settings, not even as overrides: its section names the variable to read (a *_env key)"
            f" (set by {variable})"
            if variable
            else "secrets come from the environment only, not the file"
        )
    for key in _non_finite(raw):
        variable = variable_of(key)
        flagged.setdefault(key, "must be a finite number" + (f" (set by {variable})" if variable else ""))
    lines = [f"{label}: {key}: {problem}" for key, problem in flagged.items()]
    try:
        config = OrchestratorConfig.model_validate(raw)
    except ValidationError as exc:
        for line in format_validation_error(exc, file=label):
            dotted = line[len(label) + 2 :].split(": ", 1)[0]
            if any(_covers(key, dotted) for key in flagged):
                continue  # already said better above (a NaN is not "must be >= 0")
            variable = variable_of(dotted)
            lines.append(f"{line} (set by {variable})" if variable else line)
    else:
        if not lines:
            return config
    raise ConfigError(lines, raw=raw)


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, override and validate; raises ``ConfigError`` with one line per problem."""
    env = os.environ if env is None else env
    raw = read_yaml(path) if path is not None else {}
    merged, origins = apply_env_overrides(raw, env)
    label = str(path) if path is not None else "<environment>"
    config = validate_config(merged, label=label, origins=origins)
    return LoadedConfig(config=config, path=path, raw=merged, env_overrides=origins)
