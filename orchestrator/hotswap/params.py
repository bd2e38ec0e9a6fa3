"""Checks of one parameter an operator sets (``set-param``), before the edited
configuration is planned.

Two things the plan alone would let through:

- **a boolean taken for a number, or a number for a boolean.** The module's
  schema validates in lax mode, as it must for a YAML file: ``"5"`` passes
  for an integer (the same number, written as text: accepted, like the
  file), but ``true`` also passes for a float (as 1.0) and ``0`` for a flag
  (as false). Those change what the value means: the operator meant
  something else (often another key), so they are refused. Only the key
  being set is judged this way, and an integral float counts as an integer
  (JSON has one kind of number).
- **a module that does not serve.** The plan validates only the modules
  that run: set on a disabled module (or one no bucket uses), any key or
  value would be accepted, and the module could then not be enabled again
  until the file is reloaded (a parameter cannot be unset). Such a module's
  parameters are validated against its schema here.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails

from orchestrator.config.loader import LoadedConfig
from orchestrator.contract import ModuleParams
from orchestrator.engine.plan import implementation_key
from orchestrator.errors import ConfigError
from orchestrator.plugins.loader import LoadedModule, load_module, validate_params
from orchestrator.plugins.sources import resolve_source
from orchestrator.validation import format_validation_error

_JSON_KIND = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
}
_EXACT_INTS = 2**53  # beyond it a float holds no exact integer anyway


def check_param(
    loaded: LoadedConfig, name: str, key: str, cache: Mapping[str, LoadedModule], serving: Collection[str]
) -> None:
    """Raise ``ConfigError`` when ``key`` as set in ``loaded`` (the edited
    configuration) is not acceptable for module ``name``. ``cache``: the
    serving implementations; ``serving``: the instance names that run (their
    parameters the plan validates, bucket overrides included). Runs in a
    worker thread: it may load the module's code."""
    config = loaded.config
    module = config.modules[name]
    implementation = cache.get(implementation_key(name, module))
    fresh = implementation is None
    if implementation is None:
        source = resolve_source(module.implementation(name), path=module.path, search_dirs=config.modules_path)
        implementation = load_module(source, label=name)  # a ModuleLoadError refuses the change
    try:
        where = f"modules.{name}.params"
        problems = converted(implementation.contract.params_model, module.params, key, where)
        if not problems and name not in serving:
            try:
                validate_params(implementation, module.params, key_path=where)
            except ConfigError as exc:
                problems = list(exc.problems)
    finally:
        if fresh:
            implementation.unload()
    if problems:
        raise ConfigError([f"{loaded.label}: {line}" for line in problems])


def converted(model: type[ModuleParams], params: Mapping[str, Any], key: str, where: str) -> list[str]:
    """Problems of ``params[key]`` that validate only by converting a boolean
    into a number or a number into a boolean (empty when none; what fails
    either way is left to the plan's check)."""
    if key not in model.model_fields or key not in params:
        return []
    value = params[key]
    try:
        model.model_validate(dict(params))
    except ValidationError as exc:
        if any(error["loc"][:1] == (key,) for error in exc.errors()):
            return []  # wrong whatever the mode: the plan reports it in its own words
    try:
        text = json.dumps(_integral(dict(params)), default=str)
    except (TypeError, ValueError, RecursionError):
        return []
    try:
        model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        swapped: list[InitErrorDetails] = [
            {"type": error["type"], "loc": error["loc"], "input": error["input"]}
            for error in exc.errors()
            if error["loc"][:1] == (key,) and _swaps_meaning(error)
        ]
        if swapped:
            kind = _JSON_KIND.get(type(value), type(value).__name__)
            why = f"got {kind}, {shown(value)}; a boolean is not read as a number, nor a number as a boolean"
            lines = format_validation_error(ValidationError.from_exception_data(exc.title, swapped), prefix=where)
            return [f"{line} ({why})" for line in lines]
    return []


def _swaps_meaning(error: ErrorDetails) -> bool:
    """A strict error where lax mode would turn a boolean into a number or a number into a boolean."""
    given = error.get("input")
    if isinstance(given, bool):
        return True  # strict takes a boolean only where the schema has one
    return error["type"] == "bool_type" and isinstance(given, int | float)


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message names a value, it does not carry it."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _integral(value: Any) -> Any:
    """``value`` with integral floats as ints: 3.0 is JSON's 3."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_INTS:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_integral(v) for v in value]
    return value
