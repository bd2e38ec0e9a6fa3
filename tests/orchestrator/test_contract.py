"""What the core hands a module: its context, its clock, its parameters, and
the default self-check."""

from __future__ import annotations

import math

import pytest
from pydantic import Field, ValidationError

from orchestrator import (
    AnalysisModule,
    Bar,
    EventClock,
    EventKind,
    ModuleContext,
    ModuleOutput,
    ModuleParams,
    Prediction,
    Trade,
)


def context(latest: dict[str, dict[str, ModuleOutput]], readable: frozenset[str]) -> ModuleContext:
    return ModuleContext(name="me", bucket="b", symbols=["X"], clock=EventClock(42), latest=latest, readable=readable)


def test_a_context_reads_only_declared_dependencies() -> None:
    prediction = Prediction(mu=0.01, sigma=0.02, horizon=60.0, confidence=0.5, alpha=0.3)
    latest = {"X": {"dep": ModuleOutput(prediction, features={"z": 1.5}, label="trend"), "other": ModuleOutput(None)}}
    ctx = context(latest, frozenset({"dep"}))
    assert ctx.now == 42
    assert ctx.symbols == ("X",)
    assert ctx.prediction("dep", "X") is prediction
    assert ctx.feature("dep", "X", "z") == 1.5
    assert math.isnan(ctx.feature("dep", "X", "missing"))
    assert ctx.feature("dep", "X", "missing", default=0.0) == 0.0
    assert ctx.label("dep", "X") == "trend"
    assert ctx.output("dep", "Y") is None
    assert ctx.prediction("dep", "Y") is None
    assert ctx.label("dep", "Y") is None
    with pytest.raises(KeyError, match="me reads 'other', which is not in its depends_on"):
        ctx.output("other", "X")


def test_the_context_sees_the_clock_move() -> None:
    clock = EventClock()
    ctx = ModuleContext(name="m", bucket="b", symbols=[], clock=clock, latest={}, readable=frozenset())
    clock.now = 7
    assert ctx.now == 7


class WindowParams(ModuleParams):
    window: int = Field(5, gt=1)


def test_module_params_are_frozen_and_strict() -> None:
    params = WindowParams()
    assert params.window == 5
    with pytest.raises(ValidationError):
        params.window = 6  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        WindowParams.model_validate({"window": 3, "widow": 3})
    with pytest.raises(ValidationError):
        WindowParams(window=1)


class Checked(AnalysisModule[ModuleParams]):
    name = "checked"
    version = "1"
    consumes = frozenset({EventKind.BAR})

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        if bar.close < 0:
            raise ArithmeticError("negative close")
        if bar.close == 0:
            return "zero"  # type: ignore[return-value]
        return ModuleOutput(None, features={"now": float(ctx.now)})


def bar(ts: int, close: float) -> Bar:
    return Bar("X", ts, 1.0, 1.0, 1.0, close, 1.0, 1)


def test_the_default_self_check_runs_the_sample_through_the_handlers() -> None:
    module = Checked(ModuleParams())
    assert module.self_check([bar(1, 1.0), Trade("X", 2, 1.0, 1.0, 1), bar(3, 2.0)]) == []
    assert module.ctx.now == 3
    (problem,) = Checked(ModuleParams()).self_check([bar(1, 1.0), bar(2, -1.0), bar(3, -1.0)])
    assert problem.startswith("event 1 (bar): ArithmeticError: negative close at ")
    assert problem.endswith(f"{__file__}:{Checked.on_bar.__code__.co_firstlineno + 2}")
    assert Checked(ModuleParams()).self_check([bar(1, 0.0)]) == ["event 0: returned str, not ModuleOutput"]


def test_default_state_hooks_keep_nothing() -> None:
    module = Checked(ModuleParams())
    assert module.export_state() is None
    from orchestrator import ModuleState

    assert module.import_state(ModuleState("checked", "1", 1, {})) is False
    assert module.on_stop() is None
