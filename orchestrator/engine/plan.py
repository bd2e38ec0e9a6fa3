"""From a validated configuration to the exact modules each bucket runs.

This is the second half of configuration checking: module names resolve to
code, parameters validate against each module's own schema, dependencies
exist and have no cycle. ``orchestrator check-config`` runs it too, so a
config that passes the check will start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config.loader import LoadedConfig
from orchestrator.config.models import BucketConfig, ModuleConfig, OrchestratorConfig
from orchestrator.contract import ModuleParams
from orchestrator.engine.pipeline import DependencyError, dependency_order
from orchestrator.errors import ConfigError, ModuleLoadError
from orchestrator.fusion.config import FusionConfig
from orchestrator.plugins.loader import LoadedModule, load_module, validate_params
from orchestrator.plugins.sources import resolve_source
from orchestrator.validation import key_path

_INSTANCE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True, slots=True)
class ModulePlan:
    """One module instance as a bucket will run it."""

    name: str
    loaded: LoadedModule
    params: ModuleParams
    weight: float
    latency_budget_us: float

    @property
    def depends_on(self) -> tuple[str, ...]:
        return self.loaded.contract.depends_on


@dataclass(frozen=True, slots=True)
class BucketPlan:
    name: str
    symbols: tuple[str, ...]
    modules: tuple[ModulePlan, ...]  # in dependency order
    fusion: FusionConfig


@dataclass(frozen=True, slots=True)
class RunPlan:
    loaded_config: LoadedConfig
    buckets: tuple[BucketPlan, ...]
    implementations: Mapping[str, LoadedModule]

    @property
    def config(self) -> OrchestratorConfig:
        return self.loaded_config.config


def _load_implementations(
    config: OrchestratorConfig, label: str, problems: list[str], cache: Mapping[str, LoadedModule]
) -> dict[str, LoadedModule]:
    loaded: dict[str, LoadedModule] = {}
    for name, module in config.enabled_modules().items():
        if not _is_instance_name(name):
            problems.append(f"{label}: {key_path('modules', name)}: instance names are lower_snake_case")
            continue
        implementation = module.implementation(name)
        key = implementation_key(name, module)
        if key in loaded:
            continue
        if key in cache:
            loaded[key] = cache[key]
            continue
        try:
            source = resolve_source(implementation, path=module.path, search_dirs=config.modules_path)
            loaded[key] = load_module(source, label=name)
        except ModuleLoadError as exc:
            where = f" ({exc.file}:{exc.line})" if exc.file and exc.line else f" ({exc.file})" if exc.file else ""
            problems.append(f"{label}: modules.{name}: {exc.message}{where}")
    return loaded


def _is_instance_name(name: str) -> bool:
    return set(name) <= _INSTANCE_NAME_CHARS and name[:1].isalpha()


def implementation_key(name: str, module: ModuleConfig) -> str:
    """What identifies one loaded implementation: its name, and its path if given."""
    implementation = module.implementation(name)
    return f"{implementation}@{module.path}" if module.path else implementation


def _bucket_modules(
    name: str, bucket: BucketConfig, config: OrchestratorConfig, label: str
) -> tuple[list[str], list[str]]:
    enabled = config.enabled_modules()
    problems: list[str] = []
    if bucket.modules is None:
        return list(enabled), problems
    chosen = []
    for index, module in enumerate(bucket.modules):
        if module not in enabled:
            state = "disabled" if module in config.modules else "not configured under modules"
            problems.append(f"{label}: buckets.{name}.modules[{index}]: {module!r} is {state}")
        else:
            chosen.append(module)
    return chosen, problems


def plan_run(loaded_config: LoadedConfig, *, cache: Mapping[str, LoadedModule] | None = None) -> RunPlan:
    """Resolve every module of every bucket; raise ``ConfigError`` listing all problems."""
    config = loaded_config.config
    label = loaded_config.label
    problems: list[str] = []
    implementations = _load_implementations(config, label, problems, cache or {})
    enabled = config.enabled_modules()
    if not enabled:
        problems.append(f"{label}: modules: no module is enabled, so nothing would ever decide")
    seen_symbols: dict[str, str] = {}
    buckets: list[BucketPlan] = []
    single = config.buckets is None
    for bucket_name, bucket in config.bucket_map().items():
        where = "symbols" if single else f"buckets.{bucket_name}.symbols"
        for index, symbol in enumerate(bucket.symbols):
            if symbol in seen_symbols:
                problems.append(f"{label}: {where}[{index}]: {symbol!r} is already in bucket {seen_symbols[symbol]!r}")
            seen_symbols[symbol] = bucket_name
        names, bucket_problems = _bucket_modules(bucket_name, bucket, config, label)
        problems.extend(bucket_problems)
        plans: dict[str, ModulePlan] = {}
        for name in names:
            module = enabled[name]
            loaded = implementations.get(implementation_key(name, module))
            if loaded is None:
                continue  # its load problem is already reported
            params: dict[str, Any] = {**module.params, **bucket.params.get(name, {})}
            key_path = f"modules.{name}.params" if name not in bucket.params else f"buckets.{bucket_name}.params.{name}"
            try:
                validated = validate_params(loaded, params, key_path=key_path)
            except ConfigError as exc:
                problems.extend(f"{label}: {line}" for line in exc.problems)
                continue
            budget = module.latency_budget_us or loaded.contract.latency_budget_us
            plans[name] = ModulePlan(name, loaded, validated, module.weight, budget)
        for name in bucket.params:
            if name not in names:
                problems.append(f"{label}: buckets.{bucket_name}.params.{name}: module is not used in this bucket")
        fusion = bucket.fusion or config.fusion
        fusion_path = "fusion" if bucket.fusion is None else f"buckets.{bucket_name}.fusion"
        for module_name in fusion.weights:
            if module_name not in names:
                problems.append(f"{label}: {fusion_path}.weights.{module_name}: not a module of bucket {bucket_name!r}")
        if fusion.regime_module is not None and fusion.regime_module not in names:
            problems.append(
                f"{label}: {fusion_path}.regime_module: {fusion.regime_module!r} "
                f"is not a module of bucket {bucket_name!r}"
            )
        ordered: list[str] = []
        if len(plans) == len(names):
            try:
                ordered = dependency_order({name: plans[name].depends_on for name in names})
            except DependencyError as exc:
                problems.append(f"{label}: {'modules' if single else f'buckets.{bucket_name}.modules'}: {exc}")
        buckets.append(BucketPlan(bucket_name, tuple(bucket.symbols), tuple(plans[n] for n in ordered), fusion))
    if problems:
        # What this call loaded will never serve: forget it (cached versions stay).
        for key, module_loaded in implementations.items():
            if cache is None or cache.get(key) is not module_loaded:
                module_loaded.unload()
        raise ConfigError(list(dict.fromkeys(problems)))
    return RunPlan(loaded_config, tuple(buckets), implementations)


def module_state_dir(config: OrchestratorConfig, bucket: str, module: str) -> Path:
    return config.state_dir / "modules" / bucket / module


def module_problems(raw: Mapping[str, Any], label: str) -> list[str]:
    """Module problems found in a raw (possibly otherwise invalid) config, so
    ``check-config`` can list them next to the schema errors in one pass."""
    from pydantic import ValidationError

    modules = raw.get("modules")
    if not isinstance(modules, dict):
        return []
    search = raw.get("modules_path")
    search_dirs = (
        [Path(p) for p in search] if isinstance(search, list) and all(isinstance(p, str) for p in search) else []
    )
    problems: list[str] = []
    for name, entry in modules.items():
        if not isinstance(name, str):
            continue  # the schema errors name the key
        try:
            module = ModuleConfig.model_validate(entry if entry is not None else {})
        except ValidationError:
            continue  # the schema errors already name it
        if not module.enabled:
            continue
        if not _is_instance_name(name):
            problems.append(f"{label}: {key_path('modules', name)}: instance names are lower_snake_case")
            continue
        try:
            source = resolve_source(module.implementation(name), path=module.path, search_dirs=search_dirs)
            loaded = load_module(source, label=name)
        except ModuleLoadError as exc:
            where = f" ({exc.file}:{exc.line})" if exc.file and exc.line else f" ({exc.file})" if exc.file else ""
            problems.append(f"{label}: modules.{name}: {exc.message}{where}")
            continue
        try:
            validate_params(loaded, module.params, key_path=f"modules.{name}.params")
        except ConfigError as exc:
            problems.extend(f"{label}: {line}" for line in exc.problems)
        finally:
            loaded.unload()
    return problems
