"""The plugin manager: methods named like hooks are hooks, markers only add options."""

from __future__ import annotations

import pluggy._manager
import pytest

from orchestrator import (
    AnalysisModule,
    Bar,
    EventKind,
    FusionRequest,
    FusionResult,
    ModuleContext,
    ModuleParams,
    hookimpl,
)
from orchestrator.plugins.manager import HOOK_NAMES, OrchestratorPluginManager

REQUEST = FusionRequest("X", "b", 0, {}, {}, None, "weighted")


def result(target: float) -> FusionResult:
    return FusionResult(target=target, confidence=1.0, mu=0.0, sigma=0.0)


class Unmarked(AnalysisModule[ModuleParams]):
    name = "unmarked"
    version = "1"
    consumes = frozenset({EventKind.BAR})

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> None:
        return None

    def fuse(self, request: FusionRequest) -> FusionResult | None:
        return result(0.1)

    def helper(self) -> None:  # not a hook name: never registered
        return None


class MarkedBase(Unmarked):
    @hookimpl(tryfirst=True)
    def fuse(self, request: FusionRequest) -> FusionResult | None:
        return result(0.2)


class OverridesMarked(MarkedBase):
    def fuse(self, request: FusionRequest) -> FusionResult | None:  # no marker on the override
        return result(0.3)


def test_hook_names_are_the_spec() -> None:
    assert {
        "on_start",
        "on_bar",
        "on_trade",
        "on_book",
        "on_stop",
        "export_state",
        "import_state",
        "self_check",
        "fuse",
    } == HOOK_NAMES


def test_methods_named_like_hooks_are_picked_up_without_a_marker() -> None:
    pm = OrchestratorPluginManager()
    plugin = Unmarked(ModuleParams())
    pm.register(plugin, name="unmarked")
    assert [impl.plugin for impl in pm.hook.on_bar.get_hookimpls()] == [plugin]
    assert [impl.plugin for impl in pm.hook.fuse.get_hookimpls()] == [plugin]
    # Inherited defaults from AnalysisModule count as implementations too.
    assert [impl.plugin for impl in pm.hook.export_state.get_hookimpls()] == [plugin]
    assert not hasattr(pm.hook, "helper")
    assert pm.hook.fuse(request=REQUEST).target == 0.1


def test_tryfirst_from_the_marker_orders_the_calls() -> None:
    pm = OrchestratorPluginManager()
    # pluggy calls later registrations first; the marker must override that.
    pm.register(MarkedBase(ModuleParams()), name="marked")
    pm.register(Unmarked(ModuleParams()), name="unmarked")
    assert pm.hook.fuse(request=REQUEST).target == 0.2
    impl = next(i for i in pm.hook.fuse.get_hookimpls() if i.plugin_name == "marked")
    assert impl.tryfirst


def test_an_unmarked_override_of_a_marked_method_stays_a_hook() -> None:
    pm = OrchestratorPluginManager()
    pm.register(OverridesMarked(ModuleParams()), name="override")
    assert pm.hook.fuse(request=REQUEST).target == 0.3


class DunderMarked(Unmarked):
    @hookimpl
    def __fuse__(self, request: FusionRequest) -> FusionResult | None:  # a dunder is never a hook
        return result(0.4)


def test_registration_does_not_examine_dunder_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    examined: list[str] = []
    static_hook_attr = pluggy._manager._static_hook_attr  # what parse_hookimpl_opts looks an attribute up with

    def recording(plugin: object, name: str) -> object:
        examined.append(name)
        return static_hook_attr(plugin, name)

    pm = OrchestratorPluginManager()
    monkeypatch.setattr(pluggy._manager, "_static_hook_attr", recording)
    plugin = DunderMarked(ModuleParams())
    pm.register(plugin, name="dunder")
    assert {"on_bar", "fuse", "helper"} <= set(examined)
    assert [name for name in examined if name.startswith("__")] == []
    assert not hasattr(pm.hook, "__fuse__")
    assert [impl.plugin for impl in pm.hook.on_bar.get_hookimpls()] == [plugin]
    assert pm.hook.fuse(request=REQUEST).target == 0.1
