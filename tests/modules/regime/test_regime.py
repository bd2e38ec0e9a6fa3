"""regime: ADX, realised volatility, efficiency ratio and volatility percentile against pandas and
brute force; BOCPD against a loop implementation with scipy's Student-t and on known shifts;
regime probabilities and prediction rule; bars from trades; no look-ahead; state hand-over."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp

from orchestrator.contract import ModuleState
from orchestrator.errors import ConfigError
from orchestrator.events import Bar, MarketEvent, Trade
from orchestrator.feeds.config import SimulatedMarketConfig
from orchestrator.feeds.simulated import SimulatedMarket
from orchestrator.fusion.config import FusionConfig
from orchestrator.signals import ModuleOutput
from orchestrator.testing import ModuleHarness, load_named

MINUTE = 60_000
START = 1_735_689_600_000
LABELS = ("trend_up", "trend_down", "range", "high_vol")


def bars_from_returns(returns: Sequence[float], seed: int = 0, symbol: str = "X") -> list[Bar]:
    """OHLC bars whose close-to-close log returns are ``returns``; highs and lows straddle the bodies."""
    rng = np.random.default_rng(seed)
    close, bars = 100.0, []
    for i, change in enumerate(returns):
        open_ = close
        close = open_ * math.exp(change)
        wick_up, wick_down = np.abs(rng.normal(0.0, 0.002, 2))
        high, low = max(open_, close) * (1 + wick_up), min(open_, close) * (1 - wick_down)
        bars.append(Bar(symbol, START + (i + 1) * MINUTE, open_, high, low, close, 1.0, MINUTE))
    return bars


def random_bars(count: int, seed: int, drift: float = 0.0, step: float = 0.003) -> list[Bar]:
    rng = np.random.default_rng(seed)
    return bars_from_returns((drift + step * rng.standard_normal(count)).tolist(), seed)


def run(
    params: Mapping[str, object], events: Sequence[MarketEvent], symbols: Sequence[str] = ("X",)
) -> list[ModuleOutput | None]:
    return ModuleHarness({"regime": params}, symbols=list(symbols)).run(events, "regime")


def frame(bars: Sequence[Bar]) -> pd.DataFrame:
    return pd.DataFrame(
        {"high": [b.high for b in bars], "low": [b.low for b in bars], "close": [b.close for b in bars]}
    )


def pandas_adx(df: pd.DataFrame, n: int) -> pd.DataFrame:
    """ADX with Wilder smoothing as ewm(alpha=1/n, adjust=False), from the second bar (the first has no
    previous bar to difference against)."""
    up, down = df["high"].diff(), -df["low"].diff()
    plus_dm = pd.Series(np.where((up > down) & (up > 0), up, 0.0))
    minus_dm = pd.Series(np.where((down > up) & (down > 0), down, 0.0))
    previous = df["close"].shift()
    true_range = pd.concat(
        [df["high"] - df["low"], (df["high"] - previous).abs(), (df["low"] - previous).abs()], axis=1
    ).max(axis=1)

    def wilder(series: pd.Series) -> pd.Series:
        return series.iloc[1:].ewm(alpha=1.0 / n, adjust=False).mean()

    atr = wilder(true_range)
    plus_di, minus_di = 100 * wilder(plus_dm) / atr, 100 * wilder(minus_dm) / atr
    di_sum = plus_di + minus_di
    # No directional movement at all (both DI 0) is no trend: DX 0, not pandas' 0 / 0 = NaN.
    dx = (100 * (plus_di - minus_di).abs() / di_sum).where(di_sum > 0, 0.0)
    adx = dx.ewm(alpha=1.0 / n, adjust=False).mean()
    return pd.DataFrame({"adx": adx, "direction": ((plus_di - minus_di) / di_sum).where(di_sum > 0, 0.0)})


@pytest.mark.parametrize(("n", "seed", "drift"), [(14, 1, 0.0), (14, 2, 0.001), (7, 3, -0.0005)])
def test_adx_matches_pandas_wilder(n: int, seed: int, drift: float) -> None:
    bars = random_bars(2000, seed, drift)
    trace = run({"adx_period": n}, bars)
    reference = pandas_adx(frame(bars), n)
    assert trace[0] is None
    for i in range(1, len(bars)):
        assert trace[i].features["adx"] == pytest.approx(reference["adx"].iloc[i - 1], rel=1e-9)  # type: ignore[union-attr]


@pytest.mark.parametrize("window", [2, 20, 30])
def test_realized_vol_matches_pandas_rolling_std_of_log_returns(window: int) -> None:
    bars = random_bars(3000, seed=window)
    trace = run({"vol_window": window}, bars)
    returns = np.log(frame(bars)["close"]).diff()
    expected = returns.rolling(window, min_periods=2).std()
    for i in range(2, len(bars)):
        assert trace[i].features["realized_vol"] == pytest.approx(expected.iloc[i], rel=1e-8)  # type: ignore[union-attr]


def test_vol_percentile_is_the_mid_rank_among_the_previous_values() -> None:
    bars = random_bars(700, seed=4)
    trace = run({"vol_window": 5, "percentile_window": 50}, bars)
    vols = [o.features["realized_vol"] for o in trace[2:]]  # type: ignore[union-attr]
    for k, vol in enumerate(vols):
        past = np.array(vols[max(0, k - 50) : k])
        expected = 0.5 if len(past) == 0 else ((past < vol).sum() + 0.5 * (past == vol).sum()) / len(past)
        assert trace[k + 2].features["vol_percentile"] == pytest.approx(expected)  # type: ignore[union-attr]


def test_efficiency_ratio_matches_pandas() -> None:
    bars = random_bars(1500, seed=5, drift=0.0005)
    trace = run({"er_period": 10}, bars)
    close = frame(bars)["close"]
    expected = (close - close.shift(10)) / close.diff().abs().rolling(10).sum()
    for i in range(10, len(bars)):
        assert trace[i].features["efficiency_ratio"] == pytest.approx(expected.iloc[i], rel=1e-9, abs=1e-12)  # type: ignore[union-attr]
    # Fewer bars than the period: the ratio over what is there.
    assert (
        trace[3].features["efficiency_ratio"]
        == pytest.approx(  # type: ignore[union-attr]
            (close.iloc[3] - close.iloc[0]) / close.iloc[:4].diff().abs().sum()
        )
    )


def test_regime_probabilities_follow_the_documented_scores() -> None:
    bars = random_bars(800, seed=6, drift=0.0008)
    params = {"adx_period": 14, "er_period": 10, "temperature": 1.5}
    trace = run(params, bars)
    reference = pandas_adx(frame(bars), 14)
    # Bar i is the (i + 1)-th: label and prediction start at min_bars = 30, features at the second bar.
    assert trace[28] is not None
    assert (trace[28].label, trace[28].prediction) == (None, None)
    assert trace[29] is not None
    assert trace[29].label is not None
    for i in range(29, len(bars)):
        output = trace[i]
        assert output is not None
        f = output.features
        strength = (f["adx"] - 25.0) / 10.0 + (abs(f["efficiency_ratio"]) - 0.3) / 0.2
        heading = 2.0 * 0.5 * (reference["direction"].iloc[i - 1] + f["efficiency_ratio"])
        scores = np.array([strength + heading, strength - heading, -strength, (f["vol_percentile"] - 0.8) / 0.1])
        expected = np.exp(scores / 1.5) / np.exp(scores / 1.5).sum()
        got = [f["p_trend_up"], f["p_trend_down"], f["p_range"], f["p_high_vol"]]
        assert got == pytest.approx(expected.tolist(), rel=1e-6, abs=1e-12)
        assert sum(got) == pytest.approx(1.0)
        assert output.label == LABELS[int(np.argmax(got))]
        p = output.prediction
        assert p is not None
        trend = output.label in ("trend_up", "trend_down")
        assert p.alpha == (f["p_trend_up"] - f["p_trend_down"] if trend else 0.0)
        assert p.confidence == pytest.approx(0.3 * max(got) * (1.0 - f["changepoint_prob"]))
        assert p.sigma == pytest.approx(f["realized_vol"] * math.sqrt(5))
        assert p.horizon == 5 * 60.0


# ------------------------------------------------------------------ change points


def reference_bocpd(returns: Sequence[float], params: Mapping[str, float]) -> list[tuple[float, int]]:
    """Adams & MacKay, run length by run length, with scipy's Student-t predictive; runs longer than
    max_run share the top bin, which keeps the statistics of the last max_run returns."""
    hazard, top, window = params["hazard"], int(params["max_run"]), int(params["changepoint_window"])
    kappa0, alpha0 = params["prior_kappa"], params["prior_alpha"]
    decay = 0.5 ** (1.0 / params["prior_halflife"])
    long_var, count = 0.0, 0
    runs: list[tuple[float, float, float, float, float]] | None = None  # (log prob, mu, kappa, alpha, beta)
    results = []
    for x in returns:
        count += 1
        long_var += max(1.0 / count, 1.0 - decay) * (x * x - long_var)
        if count < params["vol_window"]:
            results.append((0.0, 0))
            continue
        beta0 = alpha0 * long_var
        if runs is None:
            runs = [(0.0, 0.0, kappa0, alpha0, beta0)]
            results.append((0.0, 0))
            continue
        joint = []
        for log_p, mu, kappa, alpha, beta in runs:
            scale = math.sqrt(beta * (kappa + 1) / (alpha * kappa))
            joint.append(log_p + stats.t.logpdf(x, 2 * alpha, loc=mu, scale=scale))
        evidence = logsumexp(joint)
        grown: dict[int, list] = {}
        for r, ((_, mu, kappa, alpha, beta), log_j) in enumerate(zip(runs, joint, strict=True)):
            target = min(r + 1, top)
            updated = (
                (kappa * mu + x) / (kappa + 1),
                kappa + 1,
                alpha + 0.5,
                beta + kappa * (x - mu) ** 2 / (2 * (kappa + 1)),
            )
            if target in grown:
                grown[target][0] = np.logaddexp(grown[target][0], log_j)
                if r + 1 == target:
                    grown[target][1] = updated
            else:
                grown[target] = [log_j, updated]
        runs = [(math.log(hazard), 0.0, kappa0, alpha0, beta0)]
        for r in range(1, max(grown) + 1):
            log_j, (mu, kappa, alpha, beta) = grown[r]
            runs.append((log_j + math.log1p(-hazard) - evidence, mu, kappa, alpha, beta))
        probs = np.exp([run[0] for run in runs])
        results.append((float(probs[: window + 1].sum()), int(np.argmax(probs))))
    return results


@pytest.mark.parametrize(("window", "calm"), [(3, 150), (39, 60), (40, 60)])  # 40 = max_run: all runs are recent
def test_bocpd_matches_a_loop_implementation_with_scipy_student_t(window: int, calm: int) -> None:
    rng = np.random.default_rng(7)
    returns = np.concatenate([rng.normal(0.0, 0.002, calm), rng.normal(0.003, 0.006, 60)]).tolist()
    params = {
        "hazard": 0.02,
        "max_run": 40,  # runs longer than this happen: the truncation is exercised
        "changepoint_window": window,
        "prior_kappa": 0.5,
        "prior_alpha": 2.0,
        "prior_halflife": 80.0,
        "vol_window": 10,
    }
    trace = run(params, bars_from_returns(returns))
    expected = reference_bocpd(returns[1:], params)  # the first bar has no return
    for output, (changepoint, run_length) in zip(trace[1:], expected, strict=True):
        assert output is not None
        assert output.features["changepoint_prob"] == pytest.approx(changepoint, rel=1e-7, abs=1e-12)
        assert output.features["run_length"] == run_length


@pytest.mark.parametrize(
    ("before", "after"),
    [((0.0, 0.002), (0.0, 0.008)), ((0.0, 0.002), (0.006, 0.002)), ((0.0003, 0.004), (-0.008, 0.001))],
    ids=["variance x4", "mean +3 sd", "mean and variance"],
)
def test_bocpd_detects_a_known_shift_within_a_few_bars(before: tuple[float, float], after: tuple[float, float]) -> None:
    rng = np.random.default_rng(12)
    shift_at = 400
    returns = np.concatenate([rng.normal(*before, shift_at), rng.normal(*after, 60)])
    trace = run({}, bars_from_returns(returns.tolist()))
    changepoint = np.array([o.features["changepoint_prob"] if o else 0.0 for o in trace])
    run_length = np.array([o.features["run_length"] if o else 0.0 for o in trace])
    # Bar k carries return k (bar 0 has none): the first post-shift return is at bar shift_at.
    assert changepoint[shift_at : shift_at + 6].max() > 0.5
    assert run_length[shift_at + 10] <= 12  # the most probable run now starts near the shift
    assert changepoint[100:shift_at].mean() < 0.1  # and it rarely cries wolf before
    assert run_length[shift_at - 1] >= 150  # a long run had built up before the shift


def test_confidence_drops_right_after_a_change() -> None:
    rng = np.random.default_rng(3)
    returns = np.concatenate([rng.normal(0.0, 0.002, 300), rng.normal(0.0, 0.01, 20)])
    trace = run({}, bars_from_returns(returns.tolist()))
    confidence = [o.prediction.confidence if o and o.prediction else math.nan for o in trace]
    for output in trace[300:310]:
        assert output is not None
        assert output.prediction is not None
        p_max = max(output.features[f"p_{label}"] for label in LABELS)
        assert output.prediction.confidence == pytest.approx(0.3 * p_max * (1 - output.features["changepoint_prob"]))
    assert min(confidence[300:306]) < 0.5 * float(np.mean(confidence[250:300]))


# ------------------------------------------------------------------ trades, fusion, simulated market


def test_bars_built_from_trades_match_the_same_bars_fed_directly() -> None:
    rng = np.random.default_rng(9)
    trades, bars, price = [], [], 100.0
    for period in range(120):
        if period % 17 == 5:
            continue  # a quiet minute: no trades, no bar
        prices = []
        for k in range(int(rng.integers(1, 6))):
            price *= math.exp(rng.normal(0.0, 0.002))
            prices.append(price)
            trades.append(Trade("X", START + period * MINUTE + 1000 * k, price, 1.0, 1))
        close_ts = START + (period + 1) * MINUTE
        bars.append(Bar("X", close_ts, prices[0], max(prices), min(prices), prices[-1], len(prices), MINUTE))
    from_trades = ModuleHarness({"regime": {"use_trades": True, "trade_bar_ms": MINUTE}}, symbols=["X"])
    produced = [from_trades.output("regime", "X") for t in trades if from_trades.push(t)]
    # Each bar is closed by the first trade of a later minute: the last one is still open.
    direct = [o for o in run({}, bars[:-1]) if o is not None]
    assert repr(produced) == repr(direct)
    # With use_trades the feed's bars are ignored, and without it the trades are.
    assert run({"use_trades": True}, bars) == [None] * len(bars)
    assert run({}, trades) == [None] * len(trades)


def test_fusion_reads_the_regime_label() -> None:
    bars = random_bars(200, seed=8, drift=0.002)

    def fused(regime_weights: dict[str, dict[str, float]]) -> dict[str, float]:
        fusion = FusionConfig(method="weighted", regime_module="regime", regime_weights=regime_weights)
        harness = ModuleHarness({"regime": {}, "ma_crossover": {}}, symbols=["X"], fusion=fusion)
        harness.run(bars)
        assert harness.output("regime", "X").label == "trend_up"  # type: ignore[union-attr]
        result = harness.fuse("X")
        assert result is not None
        return dict(result.contributions)

    # Muting ma_crossover in the regime the label names silences it; muting it elsewhere does not.
    assert fused({"trend_up": {"ma_crossover": 0.0}}).get("ma_crossover", 0.0) == 0.0
    assert fused({"range": {"ma_crossover": 0.0}})["ma_crossover"] > 0.0


def test_simulated_market_regimes_are_recognised_better_than_chance() -> None:
    # Regimes last ~4000 ticks (~33 bars of 30 s) and trends drift only 0.03 sd per tick: a hard test.
    market = SimulatedMarket(SimulatedMarketConfig(seed=3, bar_ms=30_000, trades_per_tick=0.0), ["BTC"])
    harness = ModuleHarness({"regime": {}}, symbols=["BTC"])
    pairs = []
    for event in itertools.islice(market.events(), 150_000):  # lazily: regime_of is the latest tick's
        if harness.push(event):
            pairs.append((market.regime_of("BTC"), harness.output("regime", "BTC").label))  # type: ignore[union-attr]
    assert len(pairs) > 1000
    assert sum(truth == label for truth, label in pairs) / len(pairs) > 0.3  # four regimes: chance is 0.25

    def high_vol_share(inside: bool) -> float:
        labels = [label for truth, label in pairs if (truth == "high_vol") == inside]
        return labels.count("high_vol") / len(labels)

    assert high_vol_share(inside=True) > 3 * high_vol_share(inside=False)
    assert harness.errors("regime") == 0


# ------------------------------------------------------------------ properties

event_steps = st.lists(
    st.tuples(
        st.floats(-0.03, 0.03), st.floats(0.0, 0.02), st.sampled_from([1, 20_000, 60_000]), st.sampled_from("AB")
    ),
    min_size=1,
    max_size=60,
)


def events_from_steps(steps: list) -> list[MarketEvent]:
    closes, ts, events = {"A": 100.0, "B": 2.0}, START, []
    for change, wick, dt, symbol in steps:
        ts += dt
        open_ = closes[symbol]
        close = closes[symbol] = open_ * math.exp(change)
        high, low = max(open_, close) * (1 + wick), min(open_, close) * (1 - wick)
        events.append(Trade(symbol, ts, close, 1.0, 1))
        events.append(Bar(symbol, ts, open_, high, low, close, 1.0, MINUTE))
    return events


PROPERTY_PARAMS = {"vol_window": 3, "percentile_window": 10, "er_period": 3, "max_run": 10, "min_bars": 4}


def produced(harness: ModuleHarness, events: Sequence[MarketEvent]) -> list[ModuleOutput | None]:
    return [harness.output("regime", e.symbol) if harness.push(e) else None for e in events]


@settings(max_examples=20, deadline=None)
@given(steps=event_steps, cut=st.floats(0.0, 1.0), use_trades=st.booleans())
def test_no_look_ahead(steps: list, cut: float, use_trades: bool) -> None:
    params = {**PROPERTY_PARAMS, "use_trades": use_trades}
    events = events_from_steps(steps)
    prefix = events[: int(cut * len(events))]
    full = run(params, events, ("A", "B"))
    assert repr(full[: len(prefix)]) == repr(run(params, prefix, ("A", "B")))


@settings(max_examples=20, deadline=None)
@given(steps=event_steps, cut=st.floats(0.0, 1.0), use_trades=st.booleans())
def test_state_round_trip_continues_exactly(steps: list, cut: float, use_trades: bool) -> None:
    params = {**PROPERTY_PARAMS, "use_trades": use_trades}
    events = events_from_steps(steps)
    split = int(cut * len(events))
    uninterrupted = produced(ModuleHarness({"regime": params}, symbols=["A", "B"]), events)
    first = ModuleHarness({"regime": params}, symbols=["A", "B"])
    first.run(events[:split])
    second = ModuleHarness({"regime": params}, symbols=["A", "B"], states=first.export_states())
    assert repr(produced(second, events[split:])) == repr(uninterrupted[split:])


def test_state_round_trip_through_json_past_the_truncation() -> None:
    bars = random_bars(700, seed=10) + random_bars(300, seed=11, step=0.01)
    bars = [Bar("X", START + (i + 1) * MINUTE, b.open, b.high, b.low, b.close, 1.0, MINUTE) for i, b in enumerate(bars)]
    uninterrupted = run({}, bars)
    split = 650  # BOCPD has run past max_run: the top bin is in use
    first = ModuleHarness({"regime": {}}, symbols=["X"])
    first.run(bars[:split])
    state = first.export_states()["regime"]
    revived = ModuleState(state.module, state.version, state.state_version, json.loads(json.dumps(state.data)))
    second = ModuleHarness({"regime": {}}, symbols=["X"], states={"regime": revived})
    assert second.adopted["regime"]
    assert repr(second.run(bars[split:], "regime")) == repr(uninterrupted[split:])


def test_state_from_other_params_is_rejected() -> None:
    first = ModuleHarness({"regime": {}}, symbols=["X"])
    first.run(random_bars(60, seed=2))
    states = first.export_states()
    for changed in ({"max_run": 100}, {"adx_period": 10}, {"use_trades": True}, {"hazard": 0.01}):
        assert not ModuleHarness({"regime": changed}, symbols=["X"], states=states).adopted["regime"]
    assert ModuleHarness({"regime": {"temperature": 2.0}}, symbols=["X"], states=states).adopted["regime"]


# ------------------------------------------------------------------ contract


def test_loads_through_the_real_loader_and_passes_self_check() -> None:
    loaded = load_named("regime")
    assert loaded.contract.name == "regime"
    instance = loaded.cls(loaded.contract.params_model.model_validate({}))
    assert instance.self_check(random_bars(80, seed=4)) == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": 5}, "modules.regime.params.window: unknown key"),
        ({"hazard": 0}, "modules.regime.params.hazard: must be > 0"),
        ({"hazard": 1.5}, "modules.regime.params.hazard: must be < 1"),
        ({"max_run": 3}, "modules.regime.params.max_run: must be >= 10"),
        ({"use_trades": "sometimes"}, "modules.regime.params.use_trades"),
    ],
)
def test_bad_params_are_rejected_clearly(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ModuleHarness({"regime": params}, symbols=["X"])
    assert message in str(caught.value)
