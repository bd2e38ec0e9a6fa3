"""A module class's declared contract, checked once at load time."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

import pluggy
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from orchestrator.contract import AnalysisModule, ModuleParams
from orchestrator.errors import ContractError
from orchestrator.events import EventKind
from orchestrator.plugins.manager import OrchestratorPluginManager

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_HANDLER_OF_KIND = {EventKind.BAR: "on_bar", EventKind.TRADE: "on_trade", EventKind.BOOK: "on_book"}


@dataclass(frozen=True, slots=True)
class ParamInfo:
    name: str
    type: str
    default: Any
    description: str
    required: bool


@dataclass(frozen=True, slots=True)
class ModuleContract:
    """What a module class declares about itself, validated."""

    name: str
    version: str
    consumes: frozenset[EventKind]
    depends_on: tuple[str, ...]
    params_model: type[ModuleParams]
    latency_budget_us: float
    provides_fusion: bool
    summary: str

    @classmethod
    def of(cls, module_cls: object, *, label: str) -> ModuleContract:
        """Validate ``module_cls``; raise ``ContractError`` listing every problem."""
        problems: list[str] = []
        if not (inspect.isclass(module_cls) and issubclass(module_cls, AnalysisModule)):
            raise ContractError(label, f"{module_cls!r} is not a subclass of orchestrator.AnalysisModule")
        name = getattr(module_cls, "name", None)
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"name must be a lower_snake_case string, got {name!r}")
        version = getattr(module_cls, "version", None)
        if not isinstance(version, str) or not version.strip():
            problems.append(f"version must be a non-empty string, got {version!r}")
        consumes = getattr(module_cls, "consumes", None)
        if not isinstance(consumes, frozenset | set) or not all(isinstance(k, EventKind) for k in consumes):
            problems.append("consumes must be a frozenset of EventKind")
            consumes = frozenset()
        for kind in consumes:
            if not callable(getattr(module_cls, _HANDLER_OF_KIND[kind], None)):
                problems.append(f"consumes {kind.value} but defines no {_HANDLER_OF_KIND[kind]}()")
        provides_fusion = callable(getattr(module_cls, "fuse", None))
        if not consumes and not provides_fusion:
            problems.append("consumes no event kind and provides no fuse(): it would never run")
        depends_on = module_cls.depends_on
        if not isinstance(depends_on, tuple) or not all(isinstance(d, str) for d in depends_on):
            problems.append("depends_on must be a tuple of module names")
            depends_on = ()
        params_model = module_cls.Params
        if not (inspect.isclass(params_model) and issubclass(params_model, ModuleParams)):
            problems.append("Params must be a subclass of orchestrator.ModuleParams")
            params_model = ModuleParams
        elif params_model.model_config.get("extra") != "forbid":
            problems.append("Params must reject unknown keys (model_config extra='forbid')")
        budget = module_cls.latency_budget_us
        if not isinstance(budget, int | float) or not budget > 0:
            problems.append(f"latency_budget_us must be > 0, got {budget!r}")
        problems.extend(_hook_signature_problems(module_cls))
        if problems:
            raise ContractError(label, "; ".join(problems))
        doc = _own_docstring(module_cls)
        return cls(
            name=str(name),
            version=str(version),
            consumes=frozenset(consumes),
            depends_on=tuple(depends_on),
            params_model=params_model,
            latency_budget_us=float(budget),
            provides_fusion=provides_fusion,
            summary=doc.split("\n\n", 1)[0].replace("\n", " "),
        )

    def params(self) -> list[ParamInfo]:
        return describe_params(self.params_model)


def _own_docstring(module_cls: type[AnalysisModule[Any]]) -> str:
    """The module's docstring, or an ancestor module's, but never the base
    class's (``inspect.getdoc`` would hand every undocumented module the
    ``AnalysisModule`` docstring as its summary)."""
    for klass in module_cls.__mro__:
        if klass is AnalysisModule:
            break
        doc = klass.__dict__.get("__doc__")
        if isinstance(doc, str) and doc.strip():
            return inspect.cleandoc(doc)
    return ""


def _hook_signature_problems(module_cls: type[AnalysisModule[Any]]) -> list[str]:
    """Register an uninitialised instance in a scratch manager so pluggy checks
    every hook's arguments against the spec, without running any module code."""
    probe = object.__new__(module_cls)
    try:
        OrchestratorPluginManager().register(probe, name="probe")
    except pluggy.PluginValidationError as exc:
        return [str(exc).replace("\n", " ")]
    return []


def describe_params(model: type[BaseModel]) -> list[ParamInfo]:
    infos = []
    for field_name, info in model.model_fields.items():
        annotation = info.annotation
        type_name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        default = None if info.default is PydanticUndefined else info.default
        infos.append(
            ParamInfo(
                name=field_name,
                type=type_name,
                default=default,
                description=info.description or "",
                required=info.is_required(),
            )
        )
    return infos
