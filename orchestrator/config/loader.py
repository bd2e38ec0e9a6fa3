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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.config import strict_yaml
from orchestrator.config.models import OrchestratorConfig
from orchestrator.config.references import reference_problems
from orchestrator.errors import ConfigError
from orchestrator.validation import MappingKey, key_path, validation_problems

ENV_PREFIX = "ORCHESTRATOR__"
MAX_FILE_BYTES = 16 * 1024 * 1024  # a configuration is kilobytes; this is something else
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|api_?key|token|private_?key)$", re.IGNORECASE)


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
        return variable_of(self.env_overrides, dotted)


def read_yaml(path: Path) -> dict[str, Any]:
    label = str(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([f"{label}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{label}: is a directory, not a configuration file"]) from None
    except PermissionError:
        raise ConfigError([f"{label}: cannot read: permission denied"]) from None
    except OSError as exc:
        raise ConfigError([f"{label}: cannot read: {exc.strerror or exc}"]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError([f"{label}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: not a configuration file"])
    return parse_yaml(_decode(data, label), label)


def _decode(data: bytes, label: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError([f"{label}: the file is UTF-16 text: save it as UTF-8"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = data[exc.start]
        raise ConfigError([f"{label}: line {line}, column {column}: not UTF-8 text (byte {byte:#04x})"]) from None


def parse_yaml(text: str, label: str) -> dict[str, Any]:
    try:
        data = strict_yaml.load(text)
    except strict_yaml.YAMLProblem as exc:
        raise ConfigError([f"{label}: {exc.message}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{label}: the top level must be a mapping of sections, not {type(data).__name__}"])
    return data


def _walk(node: Any, parts: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any, Any]]:
    """Every (path, key, value) below ``node``; ``key`` is None for list items."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = (*parts, key if isinstance(key, str) else MappingKey(key))
            yield here, key, value
            yield from _walk(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*parts, index), None, value
            yield from _walk(value, (*parts, index))


def _secret_keys(node: Any) -> list[str]:
    return [
        key_path(*parts)
        for parts, key, value in _walk(node)
        if isinstance(key, str) and _SECRET_KEY.search(key) and not isinstance(value, dict)
    ]


@dataclass(frozen=True, slots=True)
class _Override:
    variable: str
    parts: tuple[str, ...]
    value: Any = None
    problem: str | None = None  # why it cannot be applied


def _overrides(env: Mapping[str, str]) -> Iterator[_Override]:
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX):
            continue
        parts = tuple(p.lower() for p in variable[len(ENV_PREFIX) :].split("__"))
        if not all(parts):
            yield _Override(variable, (), problem="not a key path: name a key between every two '__'")
            continue
        text = env[variable]
        if not text.strip():
            yield _Override(variable, parts, "")
            continue
        try:
            value = strict_yaml.load(text)
        except strict_yaml.YAMLProblem as exc:
            if exc.refused:  # YAML, but not acceptable YAML: a duplicate key, a tag, too deep...
                yield _Override(variable, parts, problem=f"its value is refused: {exc.message}")
                continue
            value = text  # not YAML at all: the text as it is
        yield _Override(variable, parts, value)


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """A copy of ``raw`` with every ``ORCHESTRATOR__A__B`` variable applied.
    Variables that cannot be applied are skipped here; ``env_override_problems``
    says why."""
    merged: dict[str, Any] = _deep_copy(raw)
    origins: dict[str, str] = {}
    for override in _overrides(env):
        if override.problem is not None:
            continue
        parts = override.parts
        node = merged
        for depth, part in enumerate(parts[:-1], start=1):
            child = node.get(part)
            if not isinstance(child, dict):
                if child is not None:  # a list or a value gave way to a section: say who did it
                    origins.setdefault(key_path(*parts[:depth]), override.variable)
                child = node[part] = {}
            node = child
        node[parts[-1]] = override.value
        origins[key_path(*parts)] = override.variable
    return merged, origins


def env_override_problems(env: Mapping[str, str], label: str) -> list[str]:
    """One line per ``ORCHESTRATOR__...`` variable that cannot be applied."""
    lines = []
    for override in _overrides(env):
        if override.problem is None:
            continue
        if override.parts:
            lines.append(f"{label}: {key_path(*override.parts)}: {override.problem} (set by {override.variable})")
        else:
            lines.append(f"{label}: {override.variable}: {override.problem}")
    return lines


def _deep_copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _deep_copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_deep_copy(v) for v in node]
    return node


def _non_finite(node: Any) -> list[str]:
    """Keys holding ``.inf`` or ``.nan``: YAML has them and pydantic lets them
    through (an infinite ``max_position_notional`` would be no limit at all)."""
    return [
        key_path(*parts) for parts, _, value in _walk(node) if isinstance(value, float) and not math.isfinite(value)
    ]


def _nul_characters(node: Any) -> list[str]:
    """Keys and values with a NUL character ("\\0" in YAML): no file name,
    symbol or name can hold one, and the operating system refuses paths with it."""
    return [
        key_path(*parts)
        for parts, key, value in _walk(node)
        if (isinstance(value, str) and "\0" in value) or (isinstance(key, str) and "\0" in key)
    ]


def _covers(key: str, dotted: str) -> bool:
    return dotted == key or dotted.startswith((key + ".", key + "["))


def variable_of(origins: Mapping[str, str], dotted: str) -> str | None:
    """The variable that set ``dotted``: the one naming it, or its nearest parent
    (``ORCHESTRATOR__RISK__ALLOCATION`` over ``ORCHESTRATOR__RISK``)."""
    covering = [key for key in origins if _covers(key, dotted)]
    return origins[max(covering, key=len)] if covering else None


def validate_config(
    raw: Mapping[str, Any],
    *,
    label: str,
    origins: Mapping[str, str] | None = None,
    check_references: bool = True,
) -> OrchestratorConfig:
    """The typed configuration, or ``ConfigError`` listing every problem once, one line each.

    ``check_references``: also refuse per-symbol and per-bucket entries
    (routes, limits) naming symbols or buckets that are not traded (a typo
    there would silently leave a limit or a route unapplied)."""
    origins = origins or {}

    def line(dotted: str, problem: str) -> str:
        variable = variable_of(origins, dotted)
        return f"{label}: {dotted}: {problem}" + (f" (set by {variable})" if variable else "")

    flagged: dict[str, str] = {}  # key -> line, found before the schema sees the values
    for key in _secret_keys(raw):
        flagged[key] = (
            line(
                key,
                "secrets are not settings, not even as overrides: its section names the variable to read (a *_env key)",
            )
            if variable_of(origins, key)
            else line(key, "secrets come from the environment only, not the file")
        )
    for key in _non_finite(raw):
        flagged.setdefault(key, line(key, "must be a finite number"))
    for key in _nul_characters(raw):
        flagged.setdefault(key, line(key, "contains a NUL character"))
    lines = list(flagged.values())
    try:
        config = OrchestratorConfig.model_validate(raw)
    except ValidationError as exc:
        for dotted, problem in validation_problems(exc):
            if any(_covers(key, dotted) for key in flagged):
                continue  # already said better above (a NaN is not "must be >= 0")
            lines.append(line(dotted, problem))
    else:
        if check_references:
            lines.extend(line(dotted, problem) for dotted, problem in reference_problems(config))
        if not lines:
            return config
    raise ConfigError(lines, raw=raw)


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, override and validate; raises ``ConfigError`` with one line per problem."""
    env = os.environ if env is None else env
    raw = read_yaml(path) if path is not None else {}
    merged, origins = apply_env_overrides(raw, env)
    label = str(path) if path is not None else "<environment>"
    env_problems = env_override_problems(env, label)
    try:
        config = validate_config(merged, label=label, origins=origins)
    except ConfigError as exc:
        raise ConfigError([*env_problems, *exc.problems], raw=exc.raw) from None
    if env_problems:
        raise ConfigError(env_problems, raw=merged)
    return LoadedConfig(config=config, path=path, raw=merged, env_overrides=origins)
