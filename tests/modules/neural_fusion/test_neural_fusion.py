"""Neural fusion: the contract (loading, parameters, self-check), references
for its pieces (forward pass vs MLPRegressor.predict, scaler and skill vs
numpy) and fusion behaviour (warm-up deferral, skill gate, bounds and
attribution, caching, regime encoding, a diverged network started over).

No look-ahead, state hand-over, layout changes and the out-of-sample
comparison: test_neural_fusion_lookahead_and_state.py."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from neural_fusion_support import (
    MA,
    MINUTE,
    SMALL,
    SYMBOLS,
    fuse_trace,
    harness,
    market_events,
    part,
    trained,
    walk_bars,
)
from structlog.testing import capture_logs

from orchestrator.errors import ConfigError
from orchestrator.events import Bar
from orchestrator.fusion.request import FusionRequest
from orchestrator.plugins.loader import validate_params
from orchestrator.signals import ModuleOutput, Prediction
from orchestrator.testing import load_named

# ------------------------------------------------------------------ contract


def test_loads_through_the_loader_as_the_first_fusion_provider() -> None:
    loaded = load_named("neural_fusion")
    assert loaded.contract.name == "neural_fusion"
    assert loaded.contract.provides_fusion
    h = harness(SMALL)
    impls = {impl.plugin_name: impl for impl in h.pipeline.pm.hook.fuse.get_hookimpls()}
    assert impls["neural_fusion"].tryfirst
    assert impls["builtin_fusion"].trylast


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hiden_layers": [8]}, "hiden_layers"),
        ({"horizon_ms": 0}, "horizon_ms"),
        ({"hidden_layers": [0]}, "hidden_layers"),
        ({"hidden_layers": []}, "hidden_layers"),
        ({"activation": "sigmoid"}, "activation"),
        ({"minibatch": 128, "train_batch": 64}, "minibatch (128) must not exceed train_batch (64)"),
        ({"target_clip": -1.0}, "target_clip"),
    ],
)
def test_params_reject_unknown_keys_and_bad_values(params: dict[str, Any], message: str) -> None:
    loaded = load_named("neural_fusion")
    with pytest.raises(ConfigError) as error:
        validate_params(loaded, params, key_path="modules.neural_fusion.params")
    assert message in str(error.value)
    assert "modules.neural_fusion.params" in str(error.value)


def test_self_check_passes_on_a_sample() -> None:
    loaded = load_named("neural_fusion")
    instance = loaded.cls(loaded.contract.params_model())
    assert instance.self_check(market_events(3000)) == []


# ------------------------------------------------------------------ references


def test_forward_pass_and_ablations_match_mlpregressor_predict() -> None:
    h = trained(walk_bars(400, seed=3))
    module = h.instance("neural_fusion")
    network, layout = module._network, module._layout
    rows = np.random.default_rng(0).standard_normal((50, layout.width))
    assert np.allclose(network.forward(rows), network.mlp.predict(rows), rtol=1e-12, atol=1e-14)
    # Leave-one-out: each ablation row is the input with that module's columns blanked.
    row = rows[0]
    ablated = network.forward(row * layout.ablation_masks)
    for index, name in enumerate(layout.modules, start=1):
        blank = row.copy()
        blank[[i for i, column in enumerate(layout.columns) if column.startswith(f"{name}:")]] = 0.0
        assert ablated[index] == pytest.approx(network.mlp.predict(blank[None, :])[0], rel=1e-12, abs=1e-14)


def test_scaler_is_numpy_mean_and_variance_while_within_its_window() -> None:
    layout_module = part("layout")
    # Columns: a:present (passes through), a:alpha, a:z, a:confidence (scaled), regime:up (passes through).
    layout = layout_module.InputLayout(["a"], {}, ["up"])
    rng = np.random.default_rng(1)
    data = rng.normal(3.0, 2.0, (200, 5))
    data[rng.random((200, 5)) < 0.2] = np.nan  # missing values are skipped
    scaler = layout_module.RunningScaler(layout, window=1000)
    for row in data:
        scaler.update(row)
    assert np.allclose(scaler.mean[1:4], np.nanmean(data[:, 1:4], axis=0))
    assert np.allclose(scaler.var[1:4], np.nanvar(data[:, 1:4], axis=0))
    assert scaler.mean[[0, 4]].tolist() == [0.0, 0.0]
    assert scaler.var[[0, 4]].tolist() == [0.0, 0.0]
    # A row with alpha missing, filled as encode fills it: exactly 0 once standardised.
    row = np.array([1.0, scaler.fill[1], 0.5, 0.25, 1.0])
    expected = [1.0, 0.0, *((np.array([0.5, 0.25]) - scaler.mean[2:4]) / np.sqrt(scaler.var[2:4])), 1.0]
    standardised = scaler.standardise(row)
    assert np.allclose(standardised[0], expected)
    assert standardised[0][1] == 0.0
    assert standardised[1].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]  # the ablation without module a: the regime is left


def test_scaler_forgets_with_weight_one_over_window_by_hand() -> None:
    layout_module = part("layout")
    scaler = layout_module.RunningScaler(layout_module.InputLayout(["a"], {}, []), window=2)
    for value in (1.0, 3.0, 7.0):
        scaler.update(np.array([1.0, value, np.nan, np.nan]))
    # n=1: mean 1, var 0; n=2: mean 2, var 1; n=3 (weight 1/2): delta 5, mean 4.5, var (1/2)(1 + 25/2) = 6.75
    assert scaler.mean[1] == 4.5
    assert scaler.var[1] == 6.75
    assert scaler.count[2] == 0.0


def test_skill_is_the_correlation_and_mean_squared_error() -> None:
    SkillTracker = part("tracking").SkillTracker

    rng = np.random.default_rng(2)
    predicted = rng.standard_normal(300)
    realised = 0.3 * predicted + rng.standard_normal(300)
    skill = SkillTracker(window=1000)
    for p, y in zip(predicted, realised, strict=True):
        skill.observe(float(p), float(y))
    assert skill.correlation == pytest.approx(np.corrcoef(predicted, realised)[0, 1], rel=1e-9)
    assert skill.error == pytest.approx(np.mean((realised - predicted) ** 2), rel=1e-9)


# ------------------------------------------------------------------ fusion behaviour


def test_defers_to_the_builtin_method_until_warm_then_answers_itself() -> None:
    h = harness(SMALL)
    module = h.instance("neural_fusion")
    providers = []
    for event in walk_bars(300, seed=4):
        if h.push(event):
            fused = h.pipeline.fuse(event.symbol, event.ts)
            assert fused is not None
            providers.append((fused[1], module.trained_samples))
    first = next(i for i, (provider, _) in enumerate(providers) if provider == "neural_fusion")
    assert first > 0
    assert {provider for provider, _ in providers[:first]} == {"builtin_fusion"}
    assert providers[first][1] >= SMALL["warmup_samples"]
    assert {provider for provider, _ in providers[first:]} == {"neural_fusion"}


def test_without_out_of_sample_skill_the_builtin_method_decides() -> None:
    h = harness({**SMALL, "min_skill": 0.0})
    module = h.instance("neural_fusion")
    seen = []
    for event in walk_bars(600, seed=13):
        if h.push(event):
            fused = h.pipeline.fuse(event.symbol, event.ts)
            assert fused is not None
            if module.trained_samples >= SMALL["warmup_samples"]:
                seen.append((fused[1], module._skill.correlation))
    assert {provider for provider, skill in seen if skill < 0.0} == {"builtin_fusion"}
    assert {provider for provider, skill in seen if skill >= 0.0} == {"neural_fusion"}


def test_result_is_bounded_and_contributions_sum_to_the_target() -> None:
    h = harness(SMALL, modules={"ma_crossover": MA, "bollinger": {"window": 10}})
    results = [fused[0] for fused in fuse_trace(h, walk_bars(400, seed=5)) if fused and fused[1] == "neural_fusion"]
    assert len(results) > 100
    gain = 2.0  # target_gain default
    for result in results:
        assert -1.0 <= result.target <= 1.0
        assert 0.0 <= result.confidence <= 1.0
        assert result.sigma > 0.0
        assert result.target == pytest.approx(math.tanh(gain * result.mu / result.sigma), rel=1e-9, abs=1e-12)
        assert set(result.contributions) <= {"ma_crossover", "bollinger"}
        assert sum(result.contributions.values()) == pytest.approx(result.target, abs=1e-12)


def test_result_is_cached_between_refreshes_and_renewed_after_a_bar() -> None:
    neural = {**SMALL, "refresh_ms": 10_000}
    h = harness(neural)
    bars = walk_bars(300, seed=6, symbols=SYMBOLS[:1])
    fuse_trace(h, bars)
    module = h.instance("neural_fusion")
    symbol, last = SYMBOLS[0], bars[-1]
    request = FusionRequest(
        symbol, "harness", last.ts, h.pipeline.latest[symbol], {"ma_crossover": 1.0}, None, "weighted"
    )
    cached = module.fuse(request)
    assert cached is not None
    later = FusionRequest(symbol, "harness", last.ts + 9_999, request.outputs, request.weights, None, "weighted")
    assert module.fuse(later) is cached
    h.push(Bar(symbol, last.ts + MINUTE, last.close, last.close, last.close, last.close, 1.0, MINUTE))
    after_bar = FusionRequest(symbol, "harness", last.ts + MINUTE, request.outputs, request.weights, None, "weighted")
    assert module.fuse(after_bar) is not cached


def test_regime_label_is_one_hot_encoded() -> None:
    InputLayout = part("layout").InputLayout

    layout = InputLayout(["b", "a"], {"a": ["x"]}, ["trend_up", "range"])
    output = ModuleOutput(Prediction(mu=0.002, sigma=0.01, horizon=60.0, confidence=0.5, alpha=0.3), {"x": math.inf})
    request = FusionRequest("S", "bucket", 0, {"a": output}, {}, "range", "weighted")
    assert layout.columns == (
        "a:present", "a:alpha", "a:z", "a:confidence", "a:feature:x",
        "b:present", "b:alpha", "b:z", "b:confidence",
        "regime:trend_up", "regime:range",
    )  # fmt: skip
    encoded, present = layout.encode(request)
    expected = [1.0, 0.3, 0.2, 0.5, math.nan, 0.0, math.nan, math.nan, math.nan, 0.0, 1.0]
    assert np.array_equal(encoded, expected, equal_nan=True)
    assert present == [True, False]
    fill = [float(i) for i in range(len(layout.columns))]
    filled, _ = layout.encode(request, fill)
    assert filled.tolist() == [1.0, 0.3, 0.2, 0.5, 4.0, 0.0, 6.0, 7.0, 8.0, 0.0, 1.0]


def test_a_diverged_network_is_started_over_and_the_builtin_method_decides_meanwhile() -> None:
    bars = walk_bars(300, seed=12)
    h = harness(SMALL)
    fuse_trace(h, bars[:300])
    module = h.instance("neural_fusion")
    assert module.trained_samples >= SMALL["warmup_samples"]

    class Diverging(type(module._network)):
        __slots__ = ()

        def partial_fit(self, inputs: Any, targets: Any) -> None:
            raise ValueError("Solver produced non-finite parameter weights.")

    module._network.__class__ = Diverging
    with capture_logs() as logs:
        trace = fuse_trace(h, bars[300:340])
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == ["neural_fusion_network_reset"]
    assert type(module._network) is not Diverging
    assert module.trained_samples < SMALL["warmup_samples"]
    assert trace[-1] is not None
    assert trace[-1][1] == "builtin_fusion"
    assert h.errors("neural_fusion") == 0
