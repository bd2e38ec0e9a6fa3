"""Turn a module's source file into a validated class, as a fresh module object.

Every load executes the file anew under a unique name
(``spec_from_file_location`` + ``exec_module``), never ``importlib.reload``:
a reload mutates the running module in place and leaves it half-updated when
the new code raises. If anything fails, the half-loaded entry is removed from
``sys.modules`` and the caller still holds the previous version untouched.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import threading
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from orchestrator.contract import AnalysisModule, ModuleParams
from orchestrator.errors import ConfigError, ModuleLoadError
from orchestrator.plugins.contract import ModuleContract
from orchestrator.plugins.sources import ModuleSource
from orchestrator.validation import format_validation_error

_sequence = itertools.count(1)
_sequence_lock = threading.Lock()  # loads may run in a worker thread during a hot swap


@dataclass(frozen=True, slots=True)
class LoadedModule:
    """A module class loaded from one version of its source."""

    source: ModuleSource
    module_name: str  # the unique name in sys.modules
    module: ModuleType
    cls: type[AnalysisModule[Any]]
    contract: ModuleContract
    source_hash: str

    def unload(self) -> None:
        """Forget this version's module objects (after it left service)."""
        forget_module(self.module_name)


def forget_module(module_name: str) -> None:
    prefix = module_name + "."
    for name in [n for n in sys.modules if n == module_name or n.startswith(prefix)]:
        del sys.modules[name]


def _unique_name(implementation: str) -> str:
    with _sequence_lock:
        number = next(_sequence)
    return f"orchestrator_loaded.{implementation}_v{number}"


def _error_location(exc: BaseException, files: list[Path]) -> tuple[str | None, int | None]:
    """The deepest traceback frame inside the module's own files."""
    if isinstance(exc, SyntaxError):
        return exc.filename, exc.lineno
    own = {str(f) for f in files}
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if frame.filename in own:
            return frame.filename, frame.lineno
    return (frames[-1].filename, frames[-1].lineno) if frames else (None, None)


def load_module(source: ModuleSource, *, label: str | None = None) -> LoadedModule:
    """Execute ``source`` as a fresh module and return its validated class."""
    label = label or source.implementation
    files = source.files()
    try:
        source_hash = source.source_hash()
    except OSError as exc:
        raise ModuleLoadError(label, f"cannot read source: {exc}", file=str(source.origin)) from exc
    module_name = _unique_name(source.implementation)
    spec = importlib.util.spec_from_file_location(
        module_name,
        source.origin,
        submodule_search_locations=[str(source.origin.parent)] if source.is_package else None,
    )
    if spec is None or spec.loader is None:
        raise ModuleLoadError(label, "not loadable as a Python module", file=str(source.origin))
    module = importlib.util.module_from_spec(spec)
    if source.package and not source.is_package:
        # A file inside an installed package keeps its relative imports working.
        module.__package__ = source.package
    # The parent of our unique names must exist for dataclasses/pydantic, which
    # look classes' modules up in sys.modules while the file executes.
    sys.modules.setdefault("orchestrator_loaded", ModuleType("orchestrator_loaded"))
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        cls = getattr(module, source.attribute, None)
        if cls is None:
            raise ModuleLoadError(
                label,
                f"defines no {source.attribute} (add `{source.attribute} = YourModuleClass`)",
                file=str(source.origin),
            )
        contract = ModuleContract.of(cls, label=label)
    except ModuleLoadError:
        forget_module(module_name)
        raise
    except BaseException as exc:
        forget_module(module_name)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        file, line = _error_location(exc, files)
        raise ModuleLoadError(label, f"{type(exc).__name__}: {exc}", file=file, line=line) from exc
    return LoadedModule(source, module_name, module, cls, contract, source_hash)


def validate_params(loaded: LoadedModule, params: Mapping[str, Any], *, key_path: str) -> ModuleParams:
    """Validate ``params`` against the module's schema; errors name ``key_path``.

    Pydantic turns only ``ValueError`` and ``AssertionError`` from a module's
    validators into validation errors; anything else a validator raises (a
    bug in the module) is reported the same way, one line, with its place."""
    try:
        return loaded.contract.params_model.model_validate(dict(params))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix=key_path)) from None
    except Exception as exc:
        file, line = _error_location(exc, loaded.source.files())
        where = f" ({file}:{line})" if file and line else ""
        raise ConfigError(
            [f"{key_path}: the module's parameter check raised {type(exc).__name__}: {exc}{where}"]
        ) from exc


def instantiate(loaded: LoadedModule, params: ModuleParams) -> AnalysisModule[Any]:
    """Construct the module; a constructor that raises is a load error."""
    try:
        return loaded.cls(params)
    except Exception as exc:
        file, line = _error_location(exc, loaded.source.files())
        raise ModuleLoadError(
            loaded.contract.name, f"constructor raised {type(exc).__name__}: {exc}", file=file, line=line
        ) from exc
