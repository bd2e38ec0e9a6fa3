"""ma_crossover: EMAs and the EW volatility by hand and against pandas ewm, the prediction rule,
no look-ahead, state hand-over."""

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
    drift = 0.001 * np.sign(np.sin(np.arange(count) / 80.0))  # trends both ways: the spread changes sign
    return 100.0 * np.exp(np.cumsum(drift + rng.normal(0.0, 0.004, count)))


def run(
    params: Mapping[str, object], bars: Sequence[Bar], symbols: Sequence[str] = ("X",)
) -> list[ModuleOutput | None]:
    return ModuleHarness({"ma_crossover": params}, symbols=list(symbols)).run(bars, "ma_crossover")


# ------------------------------------------------------------------ references


def test_small_case_by_hand() -> None:
    # fast = 1: the fast EMA is the close; slow = 3: alpha 1/2. The variance starts at 0 (RiskMetrics).
    trace = run({"fast": 1, "slow": 3, "z_scale": 1.0}, close_bars([100.0, 110.0, 99.0, 99.0]))
    assert trace[0] is None
    second, third, fourth = trace[1], trace[2], trace[3]
    assert second is not None
    assert third is not None
    assert fourth is not None
    r2, r3 = math.log(1.1), math.log(0.9)
    v2 = 0.5 * r2 * r2
    v3 = 0.5 * v2 + 0.5 * r3 * r3
    assert dict(second.features) == pytest.approx(
        {"ema_fast": 110.0, "ema_slow": 105.0, "spread": 5.0 / 105.0, "volatility": math.sqrt(v2)}
    )
    assert second.prediction is None  # two bars, fewer than slow
    assert dict(third.features) == pytest.approx(
        {"ema_fast": 99.0, "ema_slow": 102.0, "spread": -3.0 / 102.0, "volatility": math.sqrt(v3)}
    )
    p = third.prediction
    assert p is not None
    alpha = math.tanh(-3.0 / 102.0 / math.sqrt(v3))
    assert p.alpha == pytest.approx(alpha)
    assert p.confidence == pytest.approx(0.5 * abs(alpha))  # warm-up 3 of 2 x slow = 6 bars
    assert p.sigma == pytest.approx(math.sqrt(v3) * math.sqrt(5))
    assert p.mu == pytest.approx(0.05 * alpha * math.sqrt(v3) * math.sqrt(5))
    assert p.horizon == 5 * 60.0
    assert fourth.features["ema_slow"] == pytest.approx(100.5)
    assert fourth.features["volatility"] == pytest.approx(math.sqrt(0.5 * v3))  # a zero return


@pytest.mark.parametrize(("fast", "slow"), [(10, 30), (3, 50)])
def test_emas_and_volatility_match_pandas_ewm(fast: int, slow: int) -> None:
    closes = random_closes(1500, seed=fast)
    trace = run({"fast": fast, "slow": slow}, close_bars(closes.tolist()))
    close = pd.Series(closes)
    ema_fast = close.ewm(span=fast, adjust=False).mean()
    ema_slow = close.ewm(span=slow, adjust=False).mean()
    # The EW variance of log returns starts from 0 at the first bar (it has no return).
    squared = (np.log(close).diff() ** 2).fillna(0.0)
    volatility = np.sqrt(squared.ewm(alpha=2.0 / (slow + 1), adjust=False).mean())
    assert trace[0] is None
    for i in range(1, len(closes)):
        output = trace[i]
        assert output is not None
        f = output.features
        assert f["ema_fast"] == pytest.approx(ema_fast.iloc[i], rel=1e-12)
        assert f["ema_slow"] == pytest.approx(ema_slow.iloc[i], rel=1e-12)
        assert f["spread"] == pytest.approx(ema_fast.iloc[i] / ema_slow.iloc[i] - 1.0, rel=1e-9, abs=1e-15)
        assert f["volatility"] == pytest.approx(volatility.iloc[i], rel=1e-9)


def test_prediction_follows_the_documented_rule() -> None:
    closes = random_closes(800, seed=2)
    params = {"fast": 5, "slow": 20, "z_scale": 1.5, "horizon_bars": 3, "information_coefficient": 0.1}
    trace = run(params, close_bars(closes.tolist()))
    signs = set()
    for bars_seen, output in enumerate(trace, start=1):
        if bars_seen < 20:
            assert output is None or output.prediction is None
            continue
        assert output is not None
        f, p = output.features, output.prediction
        assert p is not None
        alpha = math.tanh(f["spread"] / f["volatility"] / 1.5)
        assert p.alpha == pytest.approx(alpha)
        assert p.confidence == pytest.approx(min(1.0, bars_seen / 40.0) * abs(alpha))
        assert p.sigma == pytest.approx(f["volatility"] * math.sqrt(3))
        assert p.mu == pytest.approx(0.1 * alpha * p.sigma)
        assert p.horizon == 3 * 60.0
        signs.add(math.copysign(1.0, p.alpha))
    assert signs == {1.0, -1.0}  # both directions were exercised


def test_flat_prices_give_no_prediction() -> None:
    trace = run({"fast": 2, "slow": 3}, close_bars([100.0] * 10))
    assert all(o is None or o.prediction is None for o in trace)
    last = trace[-1]
    assert last is not None
    assert (last.features["spread"], last.features["volatility"]) == (0.0, 0.0)


# ------------------------------------------------------------------ properties

close_steps = st.lists(st.tuples(st.floats(-0.05, 0.05), st.sampled_from(["A", "B"])), min_size=1, max_size=80)


def bars_from_steps(steps: list[tuple[float, str]]) -> list[Bar]:
    closes = {"A": 100.0, "B": 3.0}
    bars = []
    for i, (change, symbol) in enumerate(steps):
        closes[symbol] *= math.exp(change)
        c = closes[symbol]
        bars.append(Bar(symbol, START + (i + 1) * MINUTE, c, c, c, c, 1.0, MINUTE))
    return bars


PROPERTY_PARAMS = {"fast": 2, "slow": 4}


@settings(max_examples=40, deadline=None)
@given(steps=close_steps, cut=st.floats(0.0, 1.0))
def test_no_look_ahead(steps: list[tuple[float, str]], cut: float) -> None:
    bars = bars_from_steps(steps)
    prefix = bars[: int(cut * len(bars))]
    full = run(PROPERTY_PARAMS, bars, ("A", "B"))
    assert repr(full[: len(prefix)]) == repr(run(PROPERTY_PARAMS, prefix, ("A", "B")))


@settings(max_examples=40, deadline=None)
@given(steps=close_steps, cut=st.floats(0.0, 1.0))
def test_state_round_trip_continues_exactly(steps: list[tuple[float, str]], cut: float) -> None:
    bars = bars_from_steps(steps)
    split = int(cut * len(bars))
    uninterrupted = run(PROPERTY_PARAMS, bars, ("A", "B"))
    first = ModuleHarness({"ma_crossover": PROPERTY_PARAMS}, symbols=["A", "B"])
    first.run(bars[:split])
    second = ModuleHarness({"ma_crossover": PROPERTY_PARAMS}, symbols=["A", "B"], states=first.export_states())
    # From a symbol's second bar on every bar produces, so outputs agree event by event.
    assert repr(second.run(bars[split:], "ma_crossover")) == repr(uninterrupted[split:])


def test_state_survives_json_on_the_simulated_market() -> None:
    market = SimulatedMarket(SimulatedMarketConfig(seed=6, bar_ms=5_000), ["BTC", "ETH"])
    bars = [e for e in market.take(60_000) if isinstance(e, Bar)]
    uninterrupted = run({}, bars, ("BTC", "ETH"))
    split = len(bars) // 2
    first = ModuleHarness({"ma_crossover": {}}, symbols=["BTC", "ETH"])
    first.run(bars[:split])
    state = first.export_states()["ma_crossover"]
    revived = ModuleState(state.module, state.version, state.state_version, json.loads(json.dumps(state.data)))
    second = ModuleHarness({"ma_crossover": {}}, symbols=["BTC", "ETH"], states={"ma_crossover": revived})
    assert second.adopted["ma_crossover"]
    assert repr(second.run(bars[split:], "ma_crossover")) == repr(uninterrupted[split:])
    assert sum(o is not None and o.prediction is not None for o in uninterrupted) > 100


def test_state_from_other_params_is_rejected() -> None:
    first = ModuleHarness({"ma_crossover": {}}, symbols=["X"])
    first.run(close_bars(random_closes(60, seed=1).tolist()))
    states = first.export_states()
    assert not ModuleHarness({"ma_crossover": {"fast": 5}}, symbols=["X"], states=states).adopted["ma_crossover"]
    assert not ModuleHarness({"ma_crossover": {"slow": 40}}, symbols=["X"], states=states).adopted["ma_crossover"]
    # Scaling settings derive from the stored averages: the state still fits.
    assert ModuleHarness({"ma_crossover": {"z_scale": 1.0}}, symbols=["X"], states=states).adopted["ma_crossover"]


# ------------------------------------------------------------------ contract


def test_loads_through_the_real_loader_and_passes_self_check() -> None:
    loaded = load_named("ma_crossover")
    assert loaded.contract.name == "ma_crossover"
    instance = loaded.cls(loaded.contract.params_model.model_validate({}))
    assert instance.self_check(close_bars(random_closes(80, seed=4).tolist())) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": 5}, "modules.ma_crossover.params.window: unknown key"),
        ({"fast": 30}, "fast (30) must be smaller than slow (30)"),
        ({"slow": 1}, "modules.ma_crossover.params.slow: must be > 1"),
        ({"z_scale": 0}, "modules.ma_crossover.params.z_scale: must be > 0"),
    ],
)
def test_bad_params_are_rejected_clearly(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ModuleHarness({"ma_crossover": params}, symbols=["X"])
    assert message in str(caught.value)
