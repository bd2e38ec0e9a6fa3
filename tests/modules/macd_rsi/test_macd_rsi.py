"""MACD and Wilder RSI against pandas ewm, the confluence rule, no look-ahead, state hand-over."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.contract import ModuleState
from orchestrator.errors import ConfigError
from orchestrator.events import Bar
from orchestrator.feeds.config import SimulatedMarketConfig
from orchestrator.feeds.simulated import SimulatedMarket
from orchestrator.signals import ModuleOutput
from orchestrator.testing import ModuleHarness, load_named

MINUTE = 60_000
START = 1_735_689_600_000


def close_bars(closes: Sequence[float], symbol: str = "X") -> list[Bar]:
    return [Bar(symbol, START + (i + 1) * MINUTE, c, c, c, c, 1.0, MINUTE) for i, c in enumerate(closes)]


def random_closes(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Alternating drifts give long trends both ways, so RSI visits both extremes.
    drift = 0.002 * np.sign(np.sin(np.arange(count) / 60.0))
    return 100.0 * np.exp(np.cumsum(drift + rng.normal(0.0, 0.006, count)))


def run(
    params: Mapping[str, object], bars: Sequence[Bar], symbols: Sequence[str] = ("X",)
) -> list[ModuleOutput | None]:
    return ModuleHarness({"macd_rsi": params}, symbols=list(symbols)).run(bars, "macd_rsi")


def pandas_reference(closes: np.ndarray, fast: int, slow: int, signal: int, window: int) -> pd.DataFrame:
    close = pd.Series(closes)
    macd = close.ewm(span=fast, adjust=False).mean() - close.ewm(span=slow, adjust=False).mean()
    macd_signal = macd.ewm(span=signal, adjust=False).mean()
    delta = close.diff()
    avg_gain = delta.clip(lower=0).ewm(alpha=1 / window, adjust=False).mean()
    avg_loss = (-delta).clip(lower=0).ewm(alpha=1 / window, adjust=False).mean()
    rsi = 100 - 100 / (1 + avg_gain / avg_loss)
    return pd.DataFrame({"macd": macd, "signal": macd_signal, "hist": macd - macd_signal, "rsi": rsi})


@pytest.mark.parametrize(("fast", "slow", "signal", "window"), [(12, 26, 9, 14), (5, 35, 5, 7)])
def test_macd_and_rsi_match_pandas(fast: int, slow: int, signal: int, window: int) -> None:
    closes = random_closes(2000, seed=fast)
    params = {"fast": fast, "slow": slow, "signal": signal, "rsi_window": window}
    trace = run(params, close_bars(closes.tolist()))
    reference = pandas_reference(closes, fast, slow, signal, window)
    assert trace[0] is None
    for i in range(1, len(closes)):
        f = trace[i].features  # type: ignore[union-attr]
        assert f["macd"] == pytest.approx(reference["macd"].iloc[i], abs=1e-9)
        assert f["macd_signal"] == pytest.approx(reference["signal"].iloc[i], abs=1e-9)
        assert f["macd_hist"] == pytest.approx(reference["hist"].iloc[i], abs=1e-9)
        assert f["rsi"] == pytest.approx(reference["rsi"].iloc[i], abs=1e-9)
    rsi = reference["rsi"].iloc[100:]
    assert rsi.max() > 70
    assert rsi.min() < 30


def test_rsi_edge_cases_by_hand() -> None:
    trace = run({}, close_bars([10.0, 10.0, 11.0, 12.0]))
    assert trace[1].features["rsi"] == 50.0  # type: ignore[union-attr]  # nothing moved yet
    assert trace[3].features["rsi"] == 100.0  # type: ignore[union-attr]  # only gains
    # One loss of 1 after a gain of 2: avg_gain = 2 (13/14), avg_loss = 1/14.
    trace = run({}, close_bars([10.0, 12.0, 11.0]))
    gain, loss = 2.0 * 13 / 14, 1.0 / 14
    assert trace[2].features["rsi"] == pytest.approx(100 - 100 / (1 + gain / loss))  # type: ignore[union-attr]


def test_confluence_rule() -> None:
    closes = random_closes(3000, seed=3)
    params = {"warmup_bars": 40, "agreement_band": 8.0, "hist_scale": 0.7, "overbought": 75.0, "oversold": 25.0}
    trace = run(params, close_bars(closes.tolist()))
    log_returns = pd.Series(np.log(closes)).diff()
    volatility = np.sqrt((log_returns**2).ewm(alpha=2 / 21, adjust=False).mean())
    seen = {"long": 0, "short": 0, "damped": 0, "disagree": 0}
    for i, output in enumerate(trace):
        if i < 39:
            assert output is None or output.prediction is None
            continue
        assert output is not None
        assert output.prediction is not None
        f, prediction = output.features, output.prediction
        assert f["volatility"] == pytest.approx(volatility.iloc[i], rel=1e-12)
        assert f["hist_z"] == pytest.approx(f["macd_hist"] / (closes[i] * volatility.iloc[i]), rel=1e-9)
        direction = math.copysign(1.0, f["macd_hist"])
        agreement = min(1.0, max(0.0, direction * (f["rsi"] - 50) / 8.0))
        damping = 1.0
        if direction > 0 and f["rsi"] > 75:
            damping = (100 - f["rsi"]) / 25
        elif direction < 0 and f["rsi"] < 25:
            damping = f["rsi"] / 25
        expected = direction * math.tanh(abs(f["hist_z"]) / 0.7) * agreement * damping
        assert prediction.alpha == pytest.approx(expected, abs=1e-12)
        assert prediction.confidence == pytest.approx(abs(expected) * (1.0 if f["expanding"] else 0.5))
        seen["long" if prediction.alpha > 0 else "short" if prediction.alpha < 0 else "disagree"] += 1
        seen["damped"] += damping < 1.0
    assert min(seen.values()) > 20, seen


def test_histogram_up_with_rsi_between_50_and_70_is_long() -> None:
    # A see-saw, then a steady climb with pullbacks: gains twice the losses put RSI near 60.
    returns = np.r_[0.003 * np.tile([1.0, -1.0], 30), np.tile([0.004, -0.002], 8)]
    closes = 100.0 * np.exp(np.cumsum(returns))
    output = run({}, close_bars(closes.tolist()))[-1]
    assert output is not None
    assert output.prediction is not None
    assert output.features["macd_hist"] > 0
    assert 50 < output.features["rsi"] < 70
    assert output.prediction.alpha > 0
    assert output.prediction.mu > 0


# ------------------------------------------------------------------ properties

close_steps = st.lists(st.tuples(st.floats(-0.05, 0.05), st.sampled_from(["A", "B"])), min_size=2, max_size=80)


def bars_from_steps(steps: list[tuple[float, str]]) -> list[Bar]:
    closes = {"A": 100.0, "B": 20.0}
    bars = []
    for i, (change, symbol) in enumerate(steps):
        closes[symbol] *= math.exp(change)
        c = closes[symbol]
        bars.append(Bar(symbol, START + (i + 1) * MINUTE, c, c, c, c, 1.0, MINUTE))
    return bars


PROPERTY_PARAMS = {"fast": 2, "slow": 5, "signal": 3, "rsi_window": 4, "warmup_bars": 5, "volatility_window": 3}


@settings(max_examples=40, deadline=None)
@given(steps=close_steps, cut=st.floats(0.0, 1.0))
def test_no_look_ahead(steps: list[tuple[float, str]], cut: float) -> None:
    bars = bars_from_steps(steps)
    prefix = bars[: int(cut * len(bars))]
    assert repr(run(PROPERTY_PARAMS, bars, ("A", "B"))[: len(prefix)]) == repr(run(PROPERTY_PARAMS, prefix, ("A", "B")))


@settings(max_examples=40, deadline=None)
@given(steps=close_steps, cut=st.floats(0.0, 1.0))
def test_state_round_trip_continues_exactly(steps: list[tuple[float, str]], cut: float) -> None:
    bars = bars_from_steps(steps)
    split = int(cut * len(bars))
    uninterrupted = run(PROPERTY_PARAMS, bars, ("A", "B"))
    first = ModuleHarness({"macd_rsi": PROPERTY_PARAMS}, symbols=["A", "B"])
    first.run(bars[:split])
    second = ModuleHarness({"macd_rsi": PROPERTY_PARAMS}, symbols=["A", "B"], states=first.export_states())
    # From a symbol's second bar on every bar produces, so outputs agree event by event.
    assert repr(second.run(bars[split:], "macd_rsi")) == repr(uninterrupted[split:])


def test_state_survives_json_on_the_simulated_market() -> None:
    market = SimulatedMarket(SimulatedMarketConfig(seed=8, bar_ms=5_000), ["BTC", "ETH"])
    bars = [e for e in market.take(100_000) if isinstance(e, Bar)]
    uninterrupted = run({}, bars, ("BTC", "ETH"))
    split = len(bars) // 2
    first = ModuleHarness({"macd_rsi": {}}, symbols=["BTC", "ETH"])
    first.run(bars[:split])
    state = first.export_states()["macd_rsi"]
    revived = ModuleState(state.module, state.version, state.state_version, json.loads(json.dumps(state.data)))
    second = ModuleHarness({"macd_rsi": {}}, symbols=["BTC", "ETH"], states={"macd_rsi": revived})
    assert second.adopted["macd_rsi"]
    assert repr(second.run(bars[split:], "macd_rsi")) == repr(uninterrupted[split:])
    assert sum(o is not None and o.prediction is not None for o in uninterrupted) > 100


def test_state_from_other_params_is_rejected() -> None:
    first = ModuleHarness({"macd_rsi": {}}, symbols=["X"])
    first.run(close_bars(random_closes(60, seed=1).tolist()))
    states = first.export_states()
    assert not ModuleHarness({"macd_rsi": {"rsi_window": 21}}, symbols=["X"], states=states).adopted["macd_rsi"]
    assert not ModuleHarness({"macd_rsi": {"fast": 8}}, symbols=["X"], states=states).adopted["macd_rsi"]
    assert ModuleHarness({"macd_rsi": {"overbought": 80.0}}, symbols=["X"], states=states).adopted["macd_rsi"]


# ------------------------------------------------------------------ contract


def test_loads_through_the_real_loader_and_passes_self_check() -> None:
    loaded = load_named("macd_rsi")
    assert loaded.contract.name == "macd_rsi"
    instance = loaded.cls(loaded.contract.params_model.model_validate({"warmup_bars": 10}))
    assert instance.self_check(close_bars(random_closes(80, seed=4).tolist())) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rsi_period": 14}, "modules.macd_rsi.params.rsi_period: unknown key"),
        ({"fast": 30}, "fast (30) must be smaller than slow (26)"),
        ({"overbought": 45.0}, "need oversold (30.0) < 50 < overbought (45.0)"),
        ({"rsi_window": 1}, "modules.macd_rsi.params.rsi_window: must be > 1"),
    ],
)
def test_bad_params_are_rejected_clearly(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ModuleHarness({"macd_rsi": params}, symbols=["X"])
    assert message in str(caught.value)
