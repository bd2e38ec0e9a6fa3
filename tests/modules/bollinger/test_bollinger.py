"""Bollinger Bands against pandas rolling mean/std (ddof 0 and 1), drift, no look-ahead, state hand-over."""

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


def random_closes(count: int, seed: int, level: float = 100.0, step: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return level * np.exp(np.cumsum(rng.normal(0.0, step, count)))


def run(
    params: Mapping[str, object], bars: Sequence[Bar], symbols: Sequence[str] = ("X",)
) -> list[ModuleOutput | None]:
    return ModuleHarness({"bollinger": params}, symbols=list(symbols)).run(bars, "bollinger")


def test_small_case_by_hand() -> None:
    trace = run({"window": 4, "num_std": 2.0}, close_bars([1.0, 2.0, 3.0, 4.0, 10.0]))
    assert trace[:3] == [None, None, None]
    f = trace[3].features  # type: ignore[union-attr]
    std = math.sqrt(1.25)  # population std of 1, 2, 3, 4
    assert f["middle"] == pytest.approx(2.5)
    assert f["std"] == pytest.approx(std)
    assert f["upper"] == pytest.approx(2.5 + 2 * std)
    assert f["percent_b"] == pytest.approx((4.0 - (2.5 - 2 * std)) / (4 * std))
    assert f["bandwidth"] == pytest.approx(4 * std / 2.5)
    f = trace[4].features  # type: ignore[union-attr]
    assert f["middle"] == pytest.approx(4.75)  # 2, 3, 4, 10
    assert f["std"] == pytest.approx(float(np.std([2.0, 3.0, 4.0, 10.0])))
    assert f["zscore"] == pytest.approx((10.0 - 4.75) / float(np.std([2.0, 3.0, 4.0, 10.0])))


@pytest.mark.parametrize(("ddof", "window", "num_std"), [(0, 20, 2.0), (1, 20, 2.0), (0, 7, 1.5), (1, 50, 2.5)])
def test_bands_match_pandas_rolling(ddof: int, window: int, num_std: float) -> None:
    closes = random_closes(3000, seed=window + ddof)
    trace = run({"window": window, "num_std": num_std, "ddof": ddof}, close_bars(closes.tolist()))
    series = pd.Series(closes)
    middle = series.rolling(window).mean()
    std = series.rolling(window).std(ddof=ddof)
    upper, lower = middle + num_std * std, middle - num_std * std
    percent_b = (series - lower) / (upper - lower)
    bandwidth = (upper - lower) / middle
    assert all(output is None for output in trace[: window - 1])
    for i in range(window - 1, len(closes)):
        f = trace[i].features  # type: ignore[union-attr]
        assert f["middle"] == pytest.approx(middle.iloc[i], rel=1e-12)
        assert f["std"] == pytest.approx(std.iloc[i], rel=1e-9)
        # pandas' own rolling std drifts by up to ~3e-10 (relative) on this series; hence the tolerances.
        assert f["upper"] == pytest.approx(upper.iloc[i], rel=1e-10)
        assert f["lower"] == pytest.approx(lower.iloc[i], rel=1e-10)
        assert f["percent_b"] == pytest.approx(percent_b.iloc[i], rel=1e-8, abs=1e-9)
        assert f["bandwidth"] == pytest.approx(bandwidth.iloc[i], rel=1e-9)
        # Against the exactly rounded moments of the window the module is closer than pandas.
        values = closes[i - window + 1 : i + 1]
        exact_mean = math.fsum(values) / window
        exact_std = math.sqrt(math.fsum((x - exact_mean) ** 2 for x in values) / (window - ddof))
        assert f["middle"] == pytest.approx(exact_mean, rel=1e-15)
        assert f["std"] == pytest.approx(exact_std, rel=1e-11)


def test_rolling_moments_do_not_drift_on_a_long_series_far_from_zero() -> None:
    # A high price level with tiny moves is where running sums lose digits.
    closes = 1e6 + np.cumsum(np.random.default_rng(1).normal(0.0, 0.01, 30_000))
    closes[::997] += 500.0  # occasional jumps leave large values entering and leaving the window
    trace = run({"window": 20, "ddof": 1}, close_bars(closes.tolist()))
    for i in (5_000, 12_345, len(closes) - 1):
        window = closes[i - 19 : i + 1]
        f = trace[i].features  # type: ignore[union-attr]
        assert f["middle"] == pytest.approx(float(np.mean(window)), rel=1e-13)
        assert f["std"] == pytest.approx(float(np.std(window, ddof=1)), rel=1e-9)


def test_a_long_trend_away_from_the_shift_stays_exact() -> None:
    # Prices grow 1000-fold, then calm down, within one recompute period: the shift must follow the mean.
    trend = 10.0 * np.exp(np.arange(450) * 0.0154)
    calm = trend[-1] * (1.0 + 1e-7 * np.sin(np.arange(450)))
    closes = np.concatenate([trend, calm])
    trace = run({"window": 10}, close_bars(closes.tolist()))
    for i in range(9, len(closes)):
        values = closes[i - 9 : i + 1]
        exact_mean = math.fsum(values) / 10
        exact_std = math.sqrt(math.fsum((x - exact_mean) ** 2 for x in values) / 10)
        f = trace[i].features  # type: ignore[union-attr]
        assert f["middle"] == pytest.approx(exact_mean, rel=1e-14)
        assert f["std"] == pytest.approx(exact_std, rel=1e-9)


def test_flat_prices_give_zero_width_bands_and_no_prediction() -> None:
    trace = run({"window": 5}, close_bars([50.0] * 12))
    f = trace[-1].features  # type: ignore[union-attr]
    assert (f["std"], f["bandwidth"], f["zscore"], f["percent_b"]) == (0.0, 0.0, 0.0, 0.5)
    assert trace[-1].prediction is None  # type: ignore[union-attr]


def test_prediction_follows_the_documented_rule() -> None:
    closes = random_closes(2000, seed=8, step=0.005)
    trace = run({"window": 20, "max_confidence": 0.5}, close_bars(closes.tolist()))
    bandwidth = pd.Series([o.features["bandwidth"] if o else np.nan for o in trace])
    typical = bandwidth.dropna().ewm(span=100, adjust=False).mean().reindex(bandwidth.index)
    predicted = 0
    for i, output in enumerate(trace):
        if output is None or output.prediction is None:
            continue
        f, prediction = output.features, output.prediction
        assert prediction.alpha == pytest.approx(max(-1.0, min(1.0, -f["zscore"] / 2.0)))
        assert f["bandwidth_ratio"] == pytest.approx(f["bandwidth"] / typical.iloc[i])
        expected = 0.5 * abs(prediction.alpha) * min(1.0, 2.0 / (1.0 + f["bandwidth_ratio"]))
        assert prediction.confidence == pytest.approx(expected)
        predicted += 1
    assert predicted == len(closes) - 19


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


PROPERTY_PARAMS = {"window": 4, "bandwidth_memory": 3, "volatility_window": 3}


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
    first = ModuleHarness({"bollinger": PROPERTY_PARAMS}, symbols=["A", "B"])
    first.run(bars[:split])
    second = ModuleHarness({"bollinger": PROPERTY_PARAMS}, symbols=["A", "B"], states=first.export_states())
    # Once a symbol's window is full every bar produces, so outputs agree event by event.
    assert repr(second.run(bars[split:], "bollinger")) == repr(uninterrupted[split:])


def test_state_round_trip_across_a_recompute_through_json() -> None:
    market = SimulatedMarket(SimulatedMarketConfig(seed=3, bar_ms=1_000), ["BTC", "ETH"])
    bars = [e for e in market.take(60_000) if isinstance(e, Bar)]
    assert len(bars) > 2 * 1100  # past the first exact recomputation for each symbol
    uninterrupted = run({}, bars, ("BTC", "ETH"))
    split = 1990
    first = ModuleHarness({"bollinger": {}}, symbols=["BTC", "ETH"])
    first.run(bars[:split])
    state = first.export_states()["bollinger"]
    revived = ModuleState(state.module, state.version, state.state_version, json.loads(json.dumps(state.data)))
    second = ModuleHarness({"bollinger": {}}, symbols=["BTC", "ETH"], states={"bollinger": revived})
    assert second.adopted["bollinger"]
    assert repr(second.run(bars[split:], "bollinger")) == repr(uninterrupted[split:])


def test_state_from_other_params_is_rejected() -> None:
    first = ModuleHarness({"bollinger": {}}, symbols=["X"])
    first.run(close_bars(random_closes(40, seed=2).tolist()))
    states = first.export_states()
    assert not ModuleHarness({"bollinger": {"window": 21}}, symbols=["X"], states=states).adopted["bollinger"]
    # Band width and ddof only scale what is derived from the stored moments: the state still fits.
    assert ModuleHarness({"bollinger": {"num_std": 3.0, "ddof": 1}}, symbols=["X"], states=states).adopted["bollinger"]


@pytest.mark.parametrize("retuned", [{"num_std": 3.0}, {"ddof": 1}, {"num_std": 1.5, "ddof": 1}])
def test_a_retuned_successor_continues_as_if_it_had_run_with_its_settings(retuned: dict[str, object]) -> None:
    # The squeeze ratio's memory must not carry the predecessor's band width into the successor's.
    bars = close_bars(random_closes(400, seed=8).tolist())
    first = ModuleHarness({"bollinger": {}}, symbols=["X"])
    first.run(bars[:250])
    second = ModuleHarness({"bollinger": retuned}, symbols=["X"], states=first.export_states())
    assert second.adopted["bollinger"]
    continued = second.run(bars[250:], "bollinger")
    reference = run(retuned, bars)[250:]
    for got, expected in zip(continued, reference, strict=True):
        assert got is not None
        assert expected is not None
        assert dict(got.features) == pytest.approx(dict(expected.features), rel=1e-9)
        assert got.prediction == pytest.approx(expected.prediction, rel=1e-9)


# ------------------------------------------------------------------ contract


def test_loads_through_the_real_loader_and_passes_self_check() -> None:
    loaded = load_named("bollinger")
    assert loaded.contract.name == "bollinger"
    instance = loaded.cls(loaded.contract.params_model.model_validate({"window": 5}))
    assert instance.self_check(close_bars(random_closes(50, seed=4).tolist())) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"period": 20}, "modules.bollinger.params.period: unknown key"),
        ({"window": 1}, "modules.bollinger.params.window: must be > 1"),
        ({"ddof": 2}, "modules.bollinger.params.ddof: must be one of 0 or 1"),
        ({"num_std": -1}, "modules.bollinger.params.num_std: must be > 0"),
    ],
)
def test_bad_params_are_rejected_clearly(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ModuleHarness({"bollinger": params}, symbols=["X"])
    assert message in str(caught.value)
