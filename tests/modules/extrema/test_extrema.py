"""Online zigzag extrema against a hand-worked case, scipy find_peaks and a hindsight zigzag."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import find_peaks

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


def random_bars(count: int, seed: int, symbol: str = "X") -> list[Bar]:
    rng = np.random.default_rng(seed)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, count)))
    opens = np.concatenate([[100.0], closes[:-1]])
    # Range grows and shrinks in waves, so the ATR (and the reach it fixes) really changes.
    spread = 0.002 * (1.5 + np.sin(np.arange(count) / 40.0))
    highs = np.maximum(opens, closes) * (1.0 + np.abs(rng.normal(0.0, 1.0, count)) * spread)
    lows = np.minimum(opens, closes) * (1.0 - np.abs(rng.normal(0.0, 1.0, count)) * spread)
    return [
        Bar(symbol, START + (i + 1) * MINUTE, float(o), float(h), float(lo), float(c), 1.0, MINUTE)
        for i, (o, h, lo, c) in enumerate(zip(opens, highs, lows, closes, strict=True))
    ]


def run(
    params: Mapping[str, object], bars: Sequence[Bar], symbols: Sequence[str] = ("X",)
) -> list[ModuleOutput | None]:
    return ModuleHarness({"extrema": params}, symbols=list(symbols)).run(bars, "extrema")


def confirmations(bars: Sequence[Bar], trace: Sequence[ModuleOutput | None]) -> list[tuple[int, int, int, int]]:
    """(extremum index, kind, confirming index, reported lag) each time a new extremum appears."""
    index_of = {bar.ts: i for i, bar in enumerate(bars)}
    found: list[tuple[int, int, int, int]] = []
    seen: tuple[float, float] | None = None
    for t, output in enumerate(trace):
        if output is None:
            continue
        key = (output.features["last_extremum_ts"], output.features["last_extremum_kind"])
        if key != seen:
            seen = key
            found.append((index_of[int(key[0])], int(key[1]), t, int(output.features["confirmation_lag"])))
    return found


# ------------------------------------------------------------------ references


def test_hand_worked_zigzag_on_closes() -> None:
    closes = [100, 105, 110, 104, 98, 99, 97, 108, 107, 120, 100]
    bars = close_bars(closes)
    trace = run({"price": "close", "reversal_pct": 10.0, "min_legs": 1}, bars)
    assert trace[:2] == [None, None]
    assert confirmations(bars, trace) == [(0, -1, 2, 2), (2, 1, 4, 2), (6, -1, 7, 1), (9, 1, 10, 1)]
    f = trace[4].features  # type: ignore[union-attr]
    assert f["last_leg_pct"] == pytest.approx(0.1)
    assert f["last_leg_bars"] == 2
    assert f["direction"] == -1
    assert f["current_leg_pct"] == pytest.approx(98 / 110 - 1)
    f = trace[6].features  # type: ignore[union-attr]
    assert f["bars_since_extremum"] == 4
    assert f["current_leg_pct"] == pytest.approx(97 / 110 - 1)
    assert f["retrace_pct"] == 0.0
    f = trace[8].features  # type: ignore[union-attr]
    assert f["last_leg_pct"] == pytest.approx(97 / 110 - 1)
    assert f["last_leg_bars"] == 4
    assert f["retrace_pct"] == pytest.approx(107 / 108 - 1)
    f = trace[10].features  # type: ignore[union-attr]
    assert f["last_leg_pct"] == pytest.approx(120 / 97 - 1)
    assert f["last_leg_bars"] == 3
    assert f["bars_since_extremum"] == 1
    # Typical leg: EW mean (span 20) of the |log| amplitudes of the three completed legs.
    amplitudes = pd.Series(np.abs(np.log([110 / 100, 97 / 110, 120 / 97])))
    assert f["typical_leg"] == pytest.approx(amplitudes.ewm(span=20, adjust=False).mean().iloc[-1])


@pytest.mark.parametrize(("seed", "reversal_pct"), [(1, 2.0), (2, 1.0), (3, 3.5)])
def test_close_extrema_match_scipy_find_peaks_later(seed: int, reversal_pct: float) -> None:
    rng = np.random.default_rng(seed)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.006, 3000)))
    bars = close_bars(closes.tolist())
    found = confirmations(bars, run({"price": "close", "reversal_pct": reversal_pct}, bars))
    r = reversal_pct / 100.0
    rise, drop = math.log1p(r), -math.log1p(-r)
    log_close = np.log(closes)
    peaks, peak_props = find_peaks(log_close, prominence=rise)
    highs = [
        int(i)
        for i, base in zip(peaks, peak_props["right_bases"], strict=True)
        if log_close[i] - log_close[base] >= drop
    ]
    valleys, valley_props = find_peaks(-log_close, prominence=rise)
    lows = [
        int(i)
        for i, base in zip(valleys, valley_props["left_bases"], strict=True)
        if log_close[base] - log_close[i] >= drop
    ]
    # The first turning point has no leg before it, so prominence cannot see it: compare from the second on.
    online = [(i, kind) for i, kind, _, _ in found[1:]]
    reference = sorted([(i, 1) for i in highs] + [(i, -1) for i in lows])
    reference = [item for item in reference if item[0] > found[0][0]]
    assert len(online) > 20
    assert online == reference
    for i, kind, confirmed_at, lag in found:
        # Confirmed on the first later close beyond the reversal, never earlier.
        later = closes[i + 1 :]
        beyond = later <= closes[i] - closes[i] * r if kind == 1 else later >= closes[i] + closes[i] * r
        assert confirmed_at == i + 1 + int(np.argmax(beyond))
        assert lag == confirmed_at - i


def hindsight_zigzag(
    high: np.ndarray, low: np.ndarray, reach_of_high: np.ndarray, reach_of_low: np.ndarray
) -> list[tuple[int, int, int]]:
    """Turning points (index, kind, confirming index) found in the whole series at once.

    ``reach_of_high[i]`` (``reach_of_low[i]``) is the reversal that confirms a
    high (low) made at bar i. A leg's extreme is the first running maximum
    (minimum) from the leg's start; it is confirmed at the first later bar
    that does not extend the leg and reverses by the reach, and the next leg
    starts at that bar.
    """
    n = len(high)
    top = np.maximum.accumulate(high)
    bottom = np.minimum.accumulate(low)
    top_at = np.array([int(np.argmax(high[: k + 1])) for k in range(n)])
    bottom_at = np.array([int(np.argmin(low[: k + 1])) for k in range(n)])
    k = np.arange(1, n)
    top_reversed = (high[k] <= top[k - 1]) & (low[k] <= top[k - 1] - reach_of_high[top_at[k - 1]])
    bottom_reversed = (low[k] >= bottom[k - 1]) & (high[k] >= bottom[k - 1] + reach_of_low[bottom_at[k - 1]])
    either = np.flatnonzero(top_reversed | bottom_reversed)
    points: list[tuple[int, int, int]] = []
    if either.size == 0:
        return points
    at = int(k[either[0]])
    if top_reversed[either[0]]:
        points.append((int(top_at[at - 1]), 1, at))
        direction = -1
    else:
        points.append((int(bottom_at[at - 1]), -1, at))
        direction = 1
    start = at
    while start < n - 1:
        if direction == 1:
            seq, other, reach = high[start:], low[start + 1 :], reach_of_high
        else:
            seq, other, reach = -low[start:], -high[start + 1 :], reach_of_low  # a down leg is an up leg of -price
        running = np.maximum.accumulate(seq)
        running_at = np.array([int(np.argmax(seq[: j + 1])) for j in range(len(seq))]) + start
        extends = seq[1:] > running[:-1]
        reverses = other <= running[:-1] - reach[running_at[:-1]]
        hits = np.flatnonzero(~extends & reverses)
        if hits.size == 0:
            break
        at = start + 1 + int(hits[0])
        points.append((int(running_at[at - start - 1]), direction, at))
        direction, start = -direction, at
    return points


@pytest.mark.parametrize(
    "params",
    [
        {"reversal": "atr", "atr_multiple": 3.0, "atr_window": 14},
        {"reversal": "atr", "atr_multiple": 2.0, "atr_window": 5, "price": "close"},
        {"reversal": "percent", "reversal_pct": 1.5},
    ],
)
def test_high_low_and_atr_extrema_match_a_hindsight_zigzag(params: dict[str, Any]) -> None:
    bars = random_bars(1500, seed=7)
    frame = pd.DataFrame([(b.high, b.low, b.close) for b in bars], columns=["high", "low", "close"])
    previous = frame["close"].shift(1)
    true_range = pd.concat(
        [frame["high"] - frame["low"], (frame["high"] - previous).abs(), (frame["low"] - previous).abs()], axis=1
    ).max(axis=1)
    atr = true_range.ewm(alpha=1 / int(params.get("atr_window", 14)), adjust=False).mean().to_numpy()
    if params.get("price") == "close":
        high = low = frame["close"].to_numpy()
    else:
        high, low = frame["high"].to_numpy(), frame["low"].to_numpy()
    if params["reversal"] == "atr":
        high_reach = low_reach = params["atr_multiple"] * atr
    else:
        high_reach, low_reach = high * 0.015, low * 0.015
    points = hindsight_zigzag(high, low, high_reach, low_reach)
    found = confirmations(bars, run(params, bars))
    assert len(found) > 15
    assert [(i, kind, at) for i, kind, at, _ in found] == points
    assert all(lag == at - i for i, _, at, lag in found)


def test_prediction_follows_the_documented_rule() -> None:
    bars = random_bars(3000, seed=4)
    trace = run({"reversal_pct": 0.8, "exhaustion_slope": 2.0, "leg_memory": 10}, bars)
    # The leg statistics rebuilt from the reported legs: EW (span leg_memory) mean and mean square of
    # the |log| amplitudes, seeded with the first leg.
    weight = 2.0 / 11.0
    legs, mean, square, seen = 0, 0.0, 0.0, None
    predicted = 0
    for output in trace:
        if output is None:
            continue
        f = output.features
        key = (f["last_extremum_ts"], f["last_extremum_kind"])
        if key != seen:
            seen = key
            if not math.isnan(f["last_leg_pct"]):
                amplitude = abs(math.log1p(f["last_leg_pct"]))
                mean = amplitude if legs == 0 else mean + weight * (amplitude - mean)
                square = amplitude**2 if legs == 0 else square + weight * (amplitude**2 - square)
                legs += 1
        assert (legs == 0 and math.isnan(f["typical_leg"])) or f["typical_leg"] == pytest.approx(mean)
        prediction = output.prediction
        assert (prediction is None) == (legs < 3)  # min_legs; the volatility is never 0 here
        if prediction is None:
            continue
        alpha = f["direction"] * math.tanh(2.0 * (1.0 - f["leg_progress"]))
        assert prediction.alpha == pytest.approx(alpha)
        regularity = 1.0 / (1.0 + math.sqrt(max(0.0, square - mean * mean)) / mean)
        assert prediction.confidence == pytest.approx(min(1.0, legs / 10.0) * regularity * abs(alpha), rel=1e-6)
        assert prediction.sigma == pytest.approx(f["volatility"] * math.sqrt(5))
        assert prediction.mu == pytest.approx(0.03 * alpha * prediction.sigma)
        predicted += 1
    assert predicted > 2000
    assert legs > 50


# ------------------------------------------------------------------ properties

bar_steps = st.lists(
    st.tuples(st.floats(-0.03, 0.03), st.floats(0.0, 0.01), st.floats(0.0, 0.01), st.sampled_from(["A", "B"])),
    min_size=2,
    max_size=80,
)


def bars_from_steps(steps: list[tuple[float, float, float, str]]) -> list[Bar]:
    closes = {"A": 100.0, "B": 50.0}
    bars = []
    for i, (change, up, down, symbol) in enumerate(steps):
        opened = closes[symbol]
        closed = opened * math.exp(change)
        closes[symbol] = closed
        high, low = max(opened, closed) * (1 + up), min(opened, closed) * (1 - down)
        bars.append(Bar(symbol, START + (i + 1) * MINUTE, opened, high, low, closed, 1.0, MINUTE))
    return bars


PROPERTY_PARAMS = [
    {"reversal_pct": 2.0, "min_legs": 1, "leg_memory": 3, "volatility_window": 3},
    {"reversal": "atr", "atr_multiple": 1.5, "atr_window": 3, "min_legs": 1, "price": "close"},
]


@settings(max_examples=30, deadline=None)
@given(steps=bar_steps, cut=st.floats(0.0, 1.0), which=st.sampled_from([0, 1]))
def test_no_look_ahead(steps: list[tuple[float, float, float, str]], cut: float, which: int) -> None:
    bars = bars_from_steps(steps)
    prefix = bars[: int(cut * len(bars))]
    params = PROPERTY_PARAMS[which]
    assert repr(run(params, bars, ("A", "B"))[: len(prefix)]) == repr(run(params, prefix, ("A", "B")))


@settings(max_examples=30, deadline=None)
@given(steps=bar_steps, cut=st.floats(0.0, 1.0), which=st.sampled_from([0, 1]))
def test_state_round_trip_continues_exactly(
    steps: list[tuple[float, float, float, str]], cut: float, which: int
) -> None:
    bars = bars_from_steps(steps)
    split = int(cut * len(bars))
    params = PROPERTY_PARAMS[which]
    uninterrupted = run(params, bars, ("A", "B"))
    first = ModuleHarness({"extrema": params}, symbols=["A", "B"])
    first.run(bars[:split])
    second = ModuleHarness({"extrema": params}, symbols=["A", "B"], states=first.export_states())
    # Once a symbol has a confirmed extremum every bar produces, so outputs agree event by event.
    assert repr(second.run(bars[split:], "extrema")) == repr(uninterrupted[split:])


def test_state_survives_json_on_the_simulated_market() -> None:
    market = SimulatedMarket(SimulatedMarketConfig(seed=5, bar_ms=10_000), ["BTC", "ETH"])
    bars = [e for e in market.take(150_000) if isinstance(e, Bar)]
    params = {"reversal": "atr", "atr_multiple": 2.5}
    uninterrupted = run(params, bars, ("BTC", "ETH"))
    split = len(bars) // 3
    first = ModuleHarness({"extrema": params}, symbols=["BTC", "ETH"])
    first.run(bars[:split])
    state = first.export_states()["extrema"]
    revived = ModuleState(state.module, state.version, state.state_version, json.loads(json.dumps(state.data)))
    second = ModuleHarness({"extrema": params}, symbols=["BTC", "ETH"], states={"extrema": revived})
    assert second.adopted["extrema"]
    assert repr(second.run(bars[split:], "extrema")) == repr(uninterrupted[split:])
    assert sum(o is not None and o.prediction is not None for o in uninterrupted) > 100


def test_state_from_other_params_is_rejected() -> None:
    first = ModuleHarness({"extrema": {}}, symbols=["X"])
    first.run(random_bars(100, seed=1))
    states = first.export_states()
    assert not ModuleHarness({"extrema": {"reversal_pct": 2.0}}, symbols=["X"], states=states).adopted["extrema"]
    assert not ModuleHarness({"extrema": {"price": "close"}}, symbols=["X"], states=states).adopted["extrema"]
    assert ModuleHarness({"extrema": {"horizon_bars": 9}}, symbols=["X"], states=states).adopted["extrema"]


# ------------------------------------------------------------------ contract


def test_loads_through_the_real_loader_and_passes_self_check() -> None:
    loaded = load_named("extrema")
    assert loaded.contract.name == "extrema"
    instance = loaded.cls(loaded.contract.params_model.model_validate({"reversal_pct": 0.5}))
    assert instance.self_check(random_bars(200, seed=3)) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"reversal_percent": 1.0}, "modules.extrema.params.reversal_percent: unknown key"),
        ({"reversal_pct": 0.0}, "modules.extrema.params.reversal_pct: must be > 0"),
        ({"reversal": "fixed"}, "modules.extrema.params.reversal: must be one of 'percent' or 'atr'"),
        ({"leg_memory": 1}, "modules.extrema.params.leg_memory: must be > 1"),
    ],
)
def test_bad_params_are_rejected_clearly(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ModuleHarness({"extrema": params}, symbols=["X"])
    assert message in str(caught.value)
