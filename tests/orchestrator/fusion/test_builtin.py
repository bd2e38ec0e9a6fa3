"""The built-in fusion provider inside a bucket: weights, regimes, min_confidence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Bar, FusionRequest, ModuleOutput, Prediction
from orchestrator.engine.listener import EngineListener
from orchestrator.engine.orchestrator import TradingOrchestrator
from orchestrator.fusion.builtin import BuiltinFusion
from orchestrator.signals import Decision


def output(alpha: float, confidence: float = 1.0) -> ModuleOutput:
    return ModuleOutput(Prediction(mu=0.0, sigma=0.01, horizon=1.0, confidence=confidence, alpha=alpha))


def request(outputs: dict[str, ModuleOutput], weights: dict[str, float], method: str) -> FusionRequest:
    return FusionRequest("X", "b", 0, outputs, weights, None, method)


def test_outputs_without_prediction_or_weight_are_left_out() -> None:
    fusion = BuiltinFusion()
    outputs = {"a": output(0.6), "b": output(-1.0), "c": ModuleOutput(None, label="trend"), "d": output(1.0)}
    result = fusion.fuse(request(outputs, {"a": 1.0, "b": 0.0, "d": 3.0}, "weighted"))
    assert result is not None
    assert set(result.contributions) == {"a", "d"}
    assert result.target == pytest.approx((0.6 + 3.0) / 4)


def test_modules_without_a_weight_count_once() -> None:
    result = BuiltinFusion().fuse(request({"a": output(0.6), "b": output(0.2)}, {}, "weighted"))
    assert result is not None
    assert result.target == pytest.approx(0.4)


@pytest.mark.parametrize("method", ["weighted", "confidence", "precision", "rank", "best"])
def test_every_configured_method_is_served(method: str) -> None:
    result = BuiltinFusion(rank_window=8).fuse(request({"a": output(0.5, 0.5)}, {"a": 1.0}, method))
    assert result is not None
    assert -1.0 <= result.target <= 1.0


def test_an_unknown_method_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown fusion method 'vote'"):
        BuiltinFusion().fuse(request({}, {}, "vote"))


class Recorder(EngineListener):
    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def on_decision(self, decision: Decision) -> None:
        self.decisions.append(decision)


def run(engine: TradingOrchestrator, make_bar: Callable[..., Bar], seconds: int) -> list[Decision]:
    recorder = Recorder()
    engine.listeners.append(recorder)
    for second in range(1, seconds + 1):
        engine.on_event(make_bar(second * 1000, 100.0))
    return recorder.decisions


def test_regime_weights_reweight_modules_for_the_regime_label(
    scripted_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
) -> None:
    regime = scripted_module("regime", {1000: ("label", "trend"), 2000: ("label", "range"), 3000: ("label", "calm")})
    follower = scripted_module("follower", default=(0.8, 1.0))
    reverter = scripted_module("reverter", default=(-0.4, 1.0))
    fusion = {
        "method": "weighted",
        "regime_module": "regime",
        "regime_weights": {"trend": {"reverter": 0.0}, "range": {"follower": 0.0, "reverter": 2.0}},
        "weights": {"follower": 1.0, "reverter": 1.0},
    }
    engine = build_engine(make_config({"regime": regime, "follower": follower, "reverter": reverter}, fusion=fusion))
    decisions = run(engine, make_bar, 4)
    assert [d.regime for d in decisions] == ["trend", "range", "calm", "calm"]
    assert [d.target for d in decisions] == pytest.approx([0.8, -0.4, 0.2, 0.2])
    assert set(decisions[0].contributions) == {"follower"}
    assert set(decisions[1].contributions) == {"reverter"}


def test_configured_weights_override_module_weights(
    scripted_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
) -> None:
    modules = {
        "up": {"path": str(scripted_module("up", default=(1.0, 1.0))), "weight": 3.0},
        "down": {"path": str(scripted_module("down", default=(-1.0, 1.0))), "weight": 1.0},
    }
    by_module = run(build_engine(make_config(modules)), make_bar, 1)
    by_fusion = run(build_engine(make_config(modules, fusion={"weights": {"down": 3.0}})), make_bar, 1)
    assert by_module[0].target == pytest.approx(0.5)
    assert by_fusion[0].target == pytest.approx(0.0)


def test_min_confidence_zeroes_the_target(
    scripted_module: Callable[..., Path],
    build_engine: Callable[..., Any],
    make_config: Callable[..., Any],
    make_bar: Callable[..., Bar],
) -> None:
    signal = scripted_module("signal", {1000: (0.8, 0.9), 2000: (0.8, 0.3), 3000: (0.6, 0.6)})
    engine = build_engine(make_config({"signal": signal}, fusion={"min_confidence": 0.5}))
    decisions = run(engine, make_bar, 3)
    assert [d.target for d in decisions] == [0.8, 0.0, 0.6]
    assert [d.confidence for d in decisions] == [0.9, 0.3, 0.6]
    assert engine.portfolio.position("BTC/USDT") == pytest.approx(0.6 * 100_000 / 100.0)
