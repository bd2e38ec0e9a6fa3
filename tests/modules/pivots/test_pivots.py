"""Pivot levels and fractals against hand-computed values, pandas and scipy; no look-ahead; state hand-over."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import argrelextrema

from orchestrator.errors import ConfigError
from orchestrator.events import Bar
from orchestrator.feeds.config import SimulatedMarketConfig
from orchestrator.feeds.simulated import SimulatedMarket
from orchestrator.signals import ModuleOutput
from orchestrator.testing import ModuleHarness, load_named

MINUTE = 60_000
START = 1_735_689_600_000  # 2025-01-01 00:00 UTC, a session boundary for every session length used here


def make_bars(ohlc: list[tuple[float, float, float, float]], symbol: str = "X", start: int = START) -> list[Bar]:
    return [Bar(symbol, start + (i + 1) * MINUTE, o, h, lo, c, 1.0, MINUTE) for i, (o, h, lo, c) in enumerate(ohlc)]


def random_bars(count: int, seed: int, symbol: str = "X", decimals: int = 2) -> list[Bar]:
    rng = np.random.default_rng(seed)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.003, count)))
    opens = np.concatenate([[100.0], closes[:-1]])
    highs = np.maximum(opens, closes) * (1.0 + np.abs(rng.normal(0.0, 0.002, count)))
    lows = np.minimum(opens, closes) * (1.0 - np.abs(rng.normal(0.0, 0.002, count)))
    rows = np.round(np.column_stack([opens, highs, lows, closes]), decimals)  # ties happen, as in real prices
    return make_bars([tuple(row) for row in rows.tolist()], symbol)


def frame_of(bars: list[Bar]) -> pd.DataFrame:
    return pd.DataFrame(
        {"ts": [b.ts for b in bars], "high": [b.high for b in bars], "low": [b.low for b in bars]}
    ).assign(close=[b.close for b in bars])


def run(params: Mapping[str, object], bars: list[Bar], symbols: tuple[str, ...] = ("X",)) -> list[ModuleOutput | None]:
    harness = ModuleHarness({"pivots": params}, symbols=list(symbols))
    return harness.run(bars, "pivots")


def features_at(trace: list[ModuleOutput | None], index: int) -> dict[str, float]:
    output = trace[index]
    assert output is not None
    return dict(output.features)


# ------------------------------------------------------------------ references


def test_levels_of_every_family_by_hand() -> None:
    # Session 0 (4 bars): H = 110, L = 100, last C = 108. The first bar of session 1 sees its levels.
    session0 = [(104, 106, 100, 105), (105, 110, 104, 109), (109, 109.5, 107, 108.5), (108.5, 109, 107.5, 108)]
    bars = make_bars([*session0, (108, 108.5, 107, 107.5)])
    trace = run({"session_ms": 4 * MINUTE}, bars)
    assert trace[:4] == [None] * 4
    f = features_at(trace, 4)
    expected = {
        "classic_p": 106.0,
        "classic_r1": 112.0,
        "classic_s1": 102.0,
        "classic_r2": 116.0,
        "classic_s2": 96.0,
        "classic_r3": 122.0,
        "classic_s3": 92.0,
        "fib_p": 106.0,
        "fib_r1": 109.82,
        "fib_r2": 112.18,
        "fib_r3": 116.0,
        "fib_s1": 102.18,
        "fib_s2": 99.82,
        "fib_s3": 96.0,
        "camarilla_r1": 108.0 + 1.1 / 1.2,
        "camarilla_r2": 108.0 + 1.1 / 0.6,
        "camarilla_r3": 108.0 + 2.75,
        "camarilla_r4": 108.0 + 5.5,
        "camarilla_s1": 108.0 - 1.1 / 1.2,
        "camarilla_s2": 108.0 - 1.1 / 0.6,
        "camarilla_s3": 108.0 - 2.75,
        "camarilla_s4": 108.0 - 5.5,
        "woodie_p": 106.5,
        "woodie_r1": 113.0,
        "woodie_s1": 103.0,
        "woodie_r2": 116.5,
        "woodie_s2": 96.5,
    }
    for key, value in expected.items():
        assert f[key] == pytest.approx(value, abs=1e-12), key
    # Close 107.5 sits between P (106) and R1 (112).
    assert f["level_above"] == 1.0
    assert f["level_below"] == 0.0


def test_breaks_rejections_and_counters_by_hand() -> None:
    # Classic levels from session 0: S3 92, S2 96, S1 102, P 106, R1 112, R2 116, R3 122; previous close 108.
    session0 = [(104, 106, 100, 105), (105, 110, 104, 109), (109, 109.5, 107, 108.5), (108.5, 109, 107.5, 108)]
    session1 = [
        (108, 113.5, 107.5, 113),  # close crosses R1 upwards: one break up
        (113, 117, 110.5, 111),  # back below R1 (break down) after the high pierced R2 (resistance rejection)
        (111, 111.5, 105.5, 107),  # low pierces P, close stays above: support rejection
    ]
    trace = run({"session_ms": 4 * MINUTE}, make_bars([*session0, *session1]))
    first, second, third = (features_at(trace, i) for i in (4, 5, 6))
    assert (first["breaks_up"], first["breaks_down"], first["rejections_resistance"]) == (1.0, 0.0, 0.0)
    assert (second["breaks_up"], second["breaks_down"], second["rejections_resistance"]) == (0.0, 1.0, 1.0)
    assert (third["breaks_down"], third["rejections_support"], third["rejections_resistance"]) == (0.0, 1.0, 0.0)
    assert (third["session_breaks_up"], third["session_breaks_down"]) == (1.0, 1.0)
    assert (third["session_rejections_resistance"], third["session_rejections_support"]) == (1.0, 1.0)
    assert (third["level_above"], third["level_below"]) == (1.0, 0.0)
    assert third["dist_above"] == pytest.approx((112.0 - 107.0) / third["volatility_unit"])
    assert third["dist_below"] == pytest.approx((107.0 - 106.0) / third["volatility_unit"])
    decay = math.exp(-1.0 / 5.0)
    assert third["signal_memory"] == pytest.approx((1.0 * decay + (-1 - 1)) * decay + 1.0)


@pytest.mark.parametrize(("offset", "use_partial"), [(0, False), (90 * MINUTE, False), (90 * MINUTE, True)])
def test_levels_follow_the_previous_session_as_pandas_groups_it(offset: int, use_partial: bool) -> None:
    bars = random_bars(900, seed=3)
    session_ms = 240 * MINUTE
    params = {"session_ms": session_ms, "session_offset_ms": offset, "use_partial_session": use_partial}
    trace = run(params, bars)
    frame = frame_of(bars)
    frame["session"] = (frame["ts"] - 1 - offset) // session_ms
    daily = frame.groupby("session").agg(high=("high", "max"), low=("low", "min"), close=("close", "last"))
    # With an offset the bars start 150 minutes into a session: that one has no levels to give
    # unless partial sessions are allowed.
    first_open = bars[0].ts - MINUTE
    if first_open > daily.index[0] * session_ms + offset and not use_partial:
        daily.iloc[0] = math.nan
    previous = daily.shift(1)
    pivot = (previous["high"] + previous["low"] + previous["close"]) / 3.0
    expected_p = frame["session"].map(pivot)
    expected_r1 = frame["session"].map(2.0 * pivot - previous["low"])
    expected_woodie = frame["session"].map((previous["high"] + previous["low"] + 2.0 * previous["close"]) / 4.0)
    checked = 0
    for i, output in enumerate(trace):
        if math.isnan(expected_p.iloc[i]):
            assert output is None
            continue
        f = features_at(trace, i)
        assert f["classic_p"] == pytest.approx(expected_p.iloc[i], rel=1e-12)
        assert f["classic_r1"] == pytest.approx(expected_r1.iloc[i], rel=1e-12)
        assert f["woodie_p"] == pytest.approx(expected_woodie.iloc[i], rel=1e-12)
        checked += 1
    assert checked > 500


def test_a_session_joined_midway_gives_no_levels() -> None:
    # Session 0 seen from its third bar on: its high (110, at bar 1) is unknown, so session 1 has no
    # levels; session 2 gets them from session 1, which was seen whole.
    session0 = [(104, 110, 100, 105), (105, 106, 104, 105.5), (105.5, 106, 105, 105.8), (105.8, 106, 105, 105.9)]
    session1 = [(106, 108, 103, 107), (107, 109, 106, 108), (108, 109, 104, 106), (106, 107, 105, 106.5)]
    session2 = [(106.5, 107, 106, 106.8)]
    bars = make_bars([*session0, *session1, *session2])
    trace = run({"session_ms": 4 * MINUTE}, bars[2:])
    assert trace[:6] == [None] * 6
    f = features_at(trace, 6)
    assert f["classic_p"] == pytest.approx((109 + 103 + 106.5) / 3.0)
    # Allowed: session 1 takes its levels from the part of session 0 that was seen (high 106, not 110).
    lenient = run({"session_ms": 4 * MINUTE, "use_partial_session": True}, bars[2:])
    assert lenient[:2] == [None, None]
    assert features_at(lenient, 2)["classic_p"] == pytest.approx((106 + 105 + 105.9) / 3.0)
    # Joined exactly at a boundary: the first session is whole and gives levels.
    assert features_at(run({"session_ms": 4 * MINUTE}, bars), 4)["classic_p"] == pytest.approx((110 + 100 + 105.9) / 3)


def test_atr_and_ew_vol_units_match_pandas() -> None:
    bars = random_bars(400, seed=5)
    frame = frame_of(bars)
    previous_close = frame["close"].shift(1)
    true_range = pd.concat(
        [frame["high"] - frame["low"], (frame["high"] - previous_close).abs(), (frame["low"] - previous_close).abs()],
        axis=1,
    ).max(axis=1)
    atr = true_range.ewm(alpha=1 / 14, adjust=False).mean()
    squared = np.log(frame["close"]).diff() ** 2
    ew_vol = frame["close"] * np.sqrt(squared.ewm(alpha=2 / 15, adjust=False).mean())
    atr_trace = run({"session_ms": 60 * MINUTE}, bars)
    vol_trace = run({"session_ms": 60 * MINUTE, "volatility": "ew_vol"}, bars)
    for i in range(60, len(bars)):
        assert features_at(atr_trace, i)["volatility_unit"] == pytest.approx(atr.iloc[i], rel=1e-9)
        assert features_at(vol_trace, i)["volatility_unit"] == pytest.approx(ew_vol.iloc[i], rel=1e-9)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_fractals_match_argrelextrema_once_confirmed(n: int) -> None:
    bars = random_bars(600, seed=11)
    highs = np.array([b.high for b in bars])
    lows = np.array([b.low for b in bars])
    fractal_highs = argrelextrema(highs, np.greater, order=n)[0]
    fractal_lows = argrelextrema(lows, np.less, order=n)[0]
    trace = run({"session_ms": 30 * MINUTE, "fractal_n": n}, bars)
    for side, found, prices in (("high", fractal_highs, highs), ("low", fractal_lows, lows)):
        for t in range(30, len(bars)):
            f = features_at(trace, t)
            confirmed = found[found + n <= t]  # a fractal at i is known n bars later, never before
            if confirmed.size == 0:
                assert math.isnan(f[f"fractal_{side}"])
                continue
            i = int(confirmed[-1])
            assert f[f"fractal_{side}"] == prices[i]
            assert f[f"fractal_{side}_age"] == t - i
            assert f[f"fractal_{side}_ts"] == bars[i].ts
            assert f[f"dist_fractal_{side}"] == pytest.approx((prices[i] - bars[t].close) / f["volatility_unit"])


def test_alpha_follows_the_documented_rule() -> None:
    bars = random_bars(500, seed=2)
    params = {"session_ms": 30 * MINUTE, "mean_reversion_weight": 0.4, "max_confidence": 0.2}
    trace = run(params, bars)
    predicted = 0
    for output in trace:
        if output is None or output.prediction is None:
            continue
        f, prediction = output.features, output.prediction
        raw = -0.4 * f["position"] + 0.6 * math.tanh(f["signal_memory"])
        assert prediction.alpha == pytest.approx(max(-1.0, min(1.0, raw)))
        assert prediction.confidence == pytest.approx(0.2 * abs(prediction.alpha))
        assert math.copysign(1.0, prediction.mu) == math.copysign(1.0, prediction.alpha) or prediction.mu == 0.0
        predicted += 1
    assert predicted > 400


# ------------------------------------------------------------------ properties

bar_steps = st.lists(
    st.tuples(
        st.floats(-0.02, 0.02),
        st.floats(0.0, 0.01),
        st.floats(0.0, 0.01),
        st.sampled_from(["A", "B"]),
    ),
    min_size=2,
    max_size=80,
)


def bars_from_steps(steps: list[tuple[float, float, float, str]], late: int = 0) -> list[Bar]:
    """Bars from the steps, the first one ``late`` minutes into a session (0: at its start)."""
    closes = {"A": 100.0, "B": 50.0}
    bars = []
    for i, (change, up, down, symbol) in enumerate(steps):
        opened = closes[symbol]
        closed = opened * math.exp(change)
        closes[symbol] = closed
        bars.append(
            Bar(
                symbol,
                START + (late + i + 1) * MINUTE,
                opened,
                max(opened, closed) + up,
                min(opened, closed) - down,
                closed,
                1.0,
                MINUTE,
            )
        )
    return bars


PROPERTY_PARAMS = {"session_ms": 5 * MINUTE, "fractal_n": 1, "volatility_window": 3}


@settings(max_examples=40, deadline=None)
@given(steps=bar_steps, cut=st.floats(0.0, 1.0), late=st.integers(0, 4))
def test_no_look_ahead(steps: list[tuple[float, float, float, str]], cut: float, late: int) -> None:
    bars = bars_from_steps(steps, late)
    prefix = bars[: int(cut * len(bars))]
    alone = run(PROPERTY_PARAMS, prefix, ("A", "B"))
    continued = run(PROPERTY_PARAMS, bars, ("A", "B"))
    assert repr(continued[: len(prefix)]) == repr(alone)


@settings(max_examples=25, deadline=None)
@given(steps=bar_steps, cut=st.floats(0.0, 1.0), late=st.integers(0, 4))
def test_state_round_trip_continues_exactly(
    steps: list[tuple[float, float, float, str]], cut: float, late: int
) -> None:
    bars = bars_from_steps(steps, late)
    split = int(cut * len(bars))
    uninterrupted = run(PROPERTY_PARAMS, bars, ("A", "B"))
    first = ModuleHarness({"pivots": PROPERTY_PARAMS}, symbols=["A", "B"])
    first.run(bars[:split], "pivots")
    second = ModuleHarness({"pivots": PROPERTY_PARAMS}, symbols=["A", "B"], states=first.export_states())
    tail = second.run(bars[split:], "pivots")
    # Once a symbol has levels every bar produces, so the latest outputs agree event by event.
    assert repr(tail) == repr(uninterrupted[split:])


def test_state_survives_json_and_simulated_market() -> None:
    import json

    market = SimulatedMarket(SimulatedMarketConfig(seed=4, bar_ms=5_000), ["BTC", "ETH"])
    bars = [e for e in market.take(80_000) if isinstance(e, Bar)]
    params = {"session_ms": 2 * MINUTE}  # 24 bars a session
    uninterrupted = run(params, bars, ("BTC", "ETH"))
    split = len(bars) // 2
    first = ModuleHarness({"pivots": params}, symbols=["BTC", "ETH"])
    first.run(bars[:split])
    states = first.export_states()
    state = states["pivots"]
    revived = type(state)(state.module, state.version, state.state_version, json.loads(json.dumps(state.data)))
    second = ModuleHarness({"pivots": params}, symbols=["BTC", "ETH"], states={"pivots": revived})
    assert second.adopted["pivots"]
    assert repr(second.run(bars[split:], "pivots")) == repr(uninterrupted[split:])
    assert sum(o is not None and o.prediction is not None for o in uninterrupted) > 50


def test_state_from_other_params_is_rejected() -> None:
    bars = random_bars(50, seed=1)
    first = ModuleHarness({"pivots": {"session_ms": 10 * MINUTE}}, symbols=["X"])
    first.run(bars)
    states = first.export_states()
    other = ModuleHarness({"pivots": {"session_ms": 20 * MINUTE}}, symbols=["X"], states=states)
    assert not other.adopted["pivots"]
    other_family = ModuleHarness(
        {"pivots": {"session_ms": 10 * MINUTE, "levels": "woodie"}}, symbols=["X"], states=states
    )
    assert not other_family.adopted["pivots"]
    same = ModuleHarness({"pivots": {"session_ms": 10 * MINUTE, "max_confidence": 0.1}}, symbols=["X"], states=states)
    assert same.adopted["pivots"]


# ------------------------------------------------------------------ contract


def test_loads_through_the_real_loader_and_passes_self_check() -> None:
    loaded = load_named("pivots")
    assert loaded.contract.name == "pivots"
    instance = loaded.cls(loaded.contract.params_model.model_validate({"session_ms": 10 * MINUTE}))
    assert instance.self_check(random_bars(60, seed=9)) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sesion_ms": 1000}, "modules.pivots.params.sesion_ms: unknown key"),
        ({"fractal_n": 0}, "modules.pivots.params.fractal_n: must be >= 1"),
        ({"levels": "gann"}, "modules.pivots.params.levels: must be one of 'classic'"),
        ({"session_ms": 1000, "session_offset_ms": 1000}, "session_offset_ms (1000) must be < session_ms (1000)"),
    ],
)
def test_bad_params_are_rejected_clearly(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ModuleHarness({"pivots": params}, symbols=["X"])
    assert message in str(caught.value)
