"""Which configuration changes apply to a running daemon, and which wait for a restart.

Live: ``modules`` (enable, disable, parameters, weights, budgets),
``fusion``, ``decision``, ``engine``, ``log``, ``hot_swap``, and per-bucket
module lists, parameters and fusion. Everything else (the instance name,
the state directory, the feed, execution venues and their credentials,
risk limits, the MQTT connection, the symbols traded and how they are
bucketed, and any section added later) needs a restart: a reload keeps
the running value, and reports the change as waiting for a restart,
never drops it silently.

Operator commands (enable, disable, set a parameter) are edits of the
running configuration, validated exactly like a file: they last until the
file is next reloaded, which says so.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from orchestrator.config.loader import LoadedConfig, validate_config
from orchestrator.config.models import OrchestratorConfig

LIVE_SECTIONS = frozenset({"modules", "fusion", "decision", "engine", "log", "hot_swap"})
TOPOLOGY_SECTIONS = ("symbols", "buckets")


def topology(config: OrchestratorConfig) -> dict[str, tuple[str, ...]]:
    """Bucket name -> its symbols: what the feed and the pipelines were built for."""
    return {name: tuple(bucket.symbols) for name, bucket in config.bucket_map().items()}


def _pin(raw: dict[str, Any], current: Mapping[str, Any], key: str) -> None:
    if key in current:
        raw[key] = copy.deepcopy(current[key])
    else:
        raw.pop(key, None)


def effective_config(current: LoadedConfig, new: LoadedConfig) -> tuple[LoadedConfig, list[str]]:
    """``new`` with every change that needs a restart reverted to the running
    value, and one line per such change."""
    waiting: list[str] = []
    raw = copy.deepcopy(dict(new.raw))
    for key in OrchestratorConfig.model_fields:
        if key in LIVE_SECTIONS or key in TOPOLOGY_SECTIONS:
            continue
        if getattr(current.config, key) != getattr(new.config, key):
            waiting.append(f"{key}: changed; takes effect after a restart")
            _pin(raw, current.raw, key)
    if topology(current.config) != topology(new.config):
        waiting.append(
            "symbols/buckets: the traded symbols or buckets changed; the bucket settings take effect after a restart"
        )
        for key in TOPOLOGY_SECTIONS:
            _pin(raw, current.raw, key)
    if not waiting:
        return new, []
    config = validate_config(raw, label=new.label, origins=new.env_overrides)
    return LoadedConfig(config, new.path, raw, new.env_overrides), waiting


def _module_entry(raw: dict[str, Any], name: str) -> dict[str, Any]:
    modules = raw.get("modules")
    if not isinstance(modules, dict) or name not in modules:
        raise KeyError(name)
    entry = modules[name]
    entry = dict(entry) if isinstance(entry, dict) else {}
    modules[name] = entry
    return entry


def edited(
    current: LoadedConfig, name: str, *, enabled: bool | None = None, param: tuple[str, Any] | None = None
) -> LoadedConfig:
    """The running configuration with one module entry changed, validated.
    Raises ``KeyError`` for a module the configuration does not name and
    ``ConfigError`` for an edit the schema refuses."""
    raw = copy.deepcopy(dict(current.raw))
    entry = _module_entry(raw, name)
    if enabled is not None:
        entry["enabled"] = enabled
    if param is not None:
        key, value = param
        params = entry.get("params")
        params = dict(params) if isinstance(params, dict) else {}
        params[key] = value
        entry["params"] = params
    config = validate_config(raw, label=current.label, origins=current.env_overrides)
    return LoadedConfig(config, current.path, raw, current.env_overrides)


def shadowing_buckets(config: OrchestratorConfig, name: str, key: str) -> list[str]:
    """Buckets whose own ``params`` override ``key`` of module ``name``."""
    return [bucket for bucket, spec in config.bucket_map().items() if key in spec.params.get(name, {})]
