"""Market regime: trend up, trend down, range or high volatility, per symbol.

Computed on each bar (or on bars built from trades, ``use_trades``):

- ``realized_vol``: standard deviation (ddof 1) of the last ``vol_window``
  log returns of the close, per bar; ``vol_percentile``: its mid-rank among
  the previous ``percentile_window`` values (a sorted list: O(log n) search).
- ``adx``: Wilder's ADX (New Concepts in Technical Trading Systems, 1978):
  +DM / -DM / TR smoothed with alpha = 1 / ``adx_period``, seeded with their
  first value (pandas ``ewm(alpha=1/n, adjust=False)``), DX smoothed likewise;
  DX is 0 when there is no directional movement at all (+DI = -DI = 0).
- ``efficiency_ratio``: Kaufman's (Smarter Trading, 1995), signed:
  (close_t - close_t-n) / sum |close_i - close_i-1| over ``er_period`` bars.
- ``changepoint_prob`` / ``run_length``: Bayesian online change-point
  detection (Adams & MacKay, arXiv:0710.3742, 2007; ``changepoints.py``) on
  log returns with a Normal-Gamma prior (Student-t predictive) and a constant
  hazard, the run length truncated at ``max_run`` (the top bin holds "at
  least max_run" and the statistics of the last max_run returns). One
  vectorised numpy update per bar, O(max_run). A new run's prior has mean 0,
  ``prior_kappa``, ``prior_alpha`` and beta = prior_alpha x a slow EW of
  squared returns (``prior_halflife``), so only the data's scale, not its
  units, matters; detection starts after ``vol_window`` returns. With a constant
  hazard P(r_t = 0) is always the hazard, so ``changepoint_prob`` is
  P(r_t <= ``changepoint_window``): the chance that the current run started
  within the last few bars (r counts the returns since the change).
  ``run_length`` is the most probable run length.
- ``p_trend_up`` / ``p_trend_down`` / ``p_range`` / ``p_high_vol``: a softmax
  of scores: strength = (adx - adx_threshold) / adx_scale + (|ER| -
  er_threshold) / er_scale, direction = mean of (+DI - -DI) / (+DI + -DI) and
  ER; trend_up = strength + direction_gain x direction, trend_down =
  strength - direction_gain x direction, range = -strength, high_vol =
  (vol_percentile - high_vol_percentile) / percentile_scale. ``label`` is the
  most probable (fusion's ``regime_module`` reads it), from ``min_bars`` on.

Prediction: a low-confidence directional view. In trend regimes alpha =
p_trend_up - p_trend_down, otherwise 0; sigma = realized_vol x
sqrt(horizon_bars); mu = information_coefficient x alpha x sigma;
confidence = max_confidence x max probability x (1 - changepoint_prob).
Inputs: bars, or trades when ``use_trades`` (then bars are ignored; a bar
closes at the first trade of a later period, empty periods make no bar).
Complexity per bar: O(1) scalar work, O(log n) search plus an O(n) memmove
for the percentile window, and one O(max_run) numpy update.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import Field

from orchestrator import (
    AnalysisModule,
    Bar,
    EventKind,
    ModuleContext,
    ModuleOutput,
    ModuleParams,
    ModuleState,
    Prediction,
    Trade,
)

from .changepoints import RunLengthConstants, RunLengthPosterior

LABELS = ("trend_up", "trend_down", "range", "high_vol")
# Parameters that shape the exported state: another value makes it wrong.
_STATE_PARAMS = (
    "vol_window",
    "percentile_window",
    "adx_period",
    "er_period",
    "hazard",
    "max_run",
    "prior_kappa",
    "prior_alpha",
    "prior_halflife",
    "use_trades",
    "trade_bar_ms",
)


class RegimeParams(ModuleParams):
    vol_window: int = Field(30, ge=2, description="bars of log returns in the realised volatility")
    percentile_window: int = Field(500, ge=10, le=100_000, description="past volatility values ranked against")
    adx_period: int = Field(14, ge=2, description="Wilder's period for ADX")
    er_period: int = Field(10, ge=2, description="bars in Kaufman's efficiency ratio")
    hazard: float = Field(1 / 250, gt=0.0, lt=1.0, description="BOCPD change-point probability per bar")
    max_run: int = Field(200, ge=10, le=5000, description="BOCPD run-length truncation (work per bar is O(this))")
    prior_kappa: float = Field(1.0, gt=0.0, description="Normal-Gamma prior: pseudo-observations of the mean")
    prior_alpha: float = Field(1.0, gt=0.0, description="Normal-Gamma prior: shape of the precision")
    prior_halflife: float = Field(500.0, gt=0.0, description="half-life (bars) of the variance setting the prior scale")
    changepoint_window: int = Field(10, ge=1, description="changepoint_prob = P(run length <= this)")
    adx_threshold: float = Field(25.0, ge=0.0, description="ADX above which a trend counts as strong")
    adx_scale: float = Field(10.0, gt=0.0, description="ADX points per unit of trend score")
    er_threshold: float = Field(0.3, ge=0.0, le=1.0, description="|efficiency ratio| above which a move is efficient")
    er_scale: float = Field(0.2, gt=0.0, description="efficiency ratio per unit of trend score")
    direction_gain: float = Field(2.0, gt=0.0, description="weight of the direction in the trend scores")
    high_vol_percentile: float = Field(0.8, ge=0.0, le=1.0, description="vol percentile where high_vol scores 0")
    percentile_scale: float = Field(0.1, gt=0.0, description="vol percentile per unit of high_vol score")
    temperature: float = Field(1.0, gt=0.0, description="softmax temperature of the regime scores")
    min_bars: int = Field(30, ge=2, description="bars before the first prediction")
    horizon_bars: int = Field(5, gt=0, description="bars ahead the prediction applies to")
    information_coefficient: float = Field(0.05, ge=0.0, le=1.0, description="assumed skill: mu per unit alpha x sigma")
    max_confidence: float = Field(0.3, ge=0.0, le=1.0, description="confidence of a certain, undisturbed regime")
    use_trades: bool = Field(False, description="build bars from trades (every trade_bar_ms) instead of using bars")
    trade_bar_ms: int = Field(60_000, gt=0, description="length of the bars built from trades")


@dataclass(slots=True)
class _SymbolState:
    bars: int = 0
    close: float = math.nan  # the previous bar's close, high and low
    high: float = math.nan
    low: float = math.nan
    returns: deque[float] = field(default_factory=deque)
    sum_returns: float = 0.0
    sum_squares: float = 0.0
    past_vols: deque[float] = field(default_factory=deque)
    sorted_vols: list[float] = field(default_factory=list)
    long_variance: float = 0.0
    long_count: int = 0
    true_range: float = 0.0  # Wilder-smoothed TR, +DM, -DM and DX
    plus_dm: float = 0.0
    minus_dm: float = 0.0
    adx: float = 0.0
    dm_count: int = 0
    closes: deque[float] = field(default_factory=deque)
    path: deque[float] = field(default_factory=deque)
    path_sum: float = 0.0
    changepoints: RunLengthPosterior | None = None
    trade_period: int = -1  # the bar being built from trades: period index, OHLCV
    trade_bar: list[float] = field(default_factory=list)


class RegimeModule(AnalysisModule[RegimeParams]):
    """Trend / range / high-volatility regime from ADX, efficiency ratio, volatility percentile and BOCPD."""

    name = "regime"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR, EventKind.TRADE})
    Params = RegimeParams
    latency_budget_us = 2000.0

    def __init__(self, params: RegimeParams) -> None:
        super().__init__(params)
        self._constants = RunLengthConstants(
            max_run=params.max_run,
            hazard=params.hazard,
            prior_kappa=params.prior_kappa,
            prior_alpha=params.prior_alpha,
        )
        self._long_decay = math.exp(-math.log(2.0) / params.prior_halflife)
        self._state: dict[str, _SymbolState] = {}

    def _new_state(self) -> _SymbolState:
        params = self.params
        return _SymbolState(
            returns=deque(maxlen=params.vol_window),
            past_vols=deque(maxlen=params.percentile_window),
            closes=deque(maxlen=params.er_period + 1),
            path=deque(maxlen=params.er_period),
        )

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        if self.params.use_trades:
            return None  # the bars come from trades: a feed's bars would count the same moves twice
        return self._on_bar(bar.symbol, bar.high, bar.low, bar.close, bar.interval_ms)

    def on_trade(self, trade: Trade, ctx: ModuleContext) -> ModuleOutput | None:
        params = self.params
        if not params.use_trades:
            return None
        state = self._state.get(trade.symbol)
        if state is None:
            state = self._state[trade.symbol] = self._new_state()
        period = trade.ts // params.trade_bar_ms
        price = trade.price
        if period == state.trade_period:
            ohlcv = state.trade_bar
            ohlcv[1] = max(ohlcv[1], price)
            ohlcv[2] = min(ohlcv[2], price)
            ohlcv[3] = price
            ohlcv[4] += trade.size
            return None
        # The first trade of a new period closes the previous bar; an empty period makes no bar.
        output = None
        if state.trade_period >= 0:
            _, high, low, close, _ = state.trade_bar
            output = self._on_bar(trade.symbol, high, low, close, params.trade_bar_ms)
        state.trade_period = period
        state.trade_bar = [price, price, price, price, trade.size]
        return output

    def _on_bar(self, symbol: str, high: float, low: float, close: float, interval_ms: int) -> ModuleOutput | None:
        state = self._state.get(symbol)
        if state is None:
            state = self._state[symbol] = self._new_state()
        params = self.params
        state.bars += 1
        previous_close, previous_high, previous_low = state.close, state.high, state.low
        state.close, state.high, state.low = close, high, low
        state.closes.append(close)
        if state.bars < 2 or not (close > 0.0 and previous_close > 0.0):
            return None
        change = math.log(close / previous_close)
        realized_vol, percentile = self._volatility(state, change)
        adx, direction = self._adx(
            state, high, low, previous_close=previous_close, previous_high=previous_high, previous_low=previous_low
        )
        efficiency = self._efficiency(state, abs(close - previous_close))
        changepoint, run_length = self._changepoint(state, change)

        strength = (adx - params.adx_threshold) / params.adx_scale
        strength += (abs(efficiency) - params.er_threshold) / params.er_scale
        heading = params.direction_gain * 0.5 * (direction + efficiency)
        scores = (
            strength + heading,
            strength - heading,
            -strength,
            (percentile - params.high_vol_percentile) / params.percentile_scale,
        )
        top = max(scores)
        weights = [math.exp((score - top) / params.temperature) for score in scores]
        total = sum(weights)
        p_up, p_down, p_range, p_high_vol = (w / total for w in weights)
        probabilities = (p_up, p_down, p_range, p_high_vol)
        best = max(range(4), key=probabilities.__getitem__)
        features = {
            "p_trend_up": p_up,
            "p_trend_down": p_down,
            "p_range": p_range,
            "p_high_vol": p_high_vol,
            "realized_vol": realized_vol,
            "vol_percentile": percentile,
            "adx": adx,
            "efficiency_ratio": efficiency,
            "changepoint_prob": changepoint,
            "run_length": float(run_length),
        }
        if state.bars < params.min_bars:
            # No label yet: fusion keeps its base weights until the indicators have warmed up.
            return ModuleOutput(prediction=None, features=features)
        label = LABELS[best]
        if not realized_vol > 0.0:
            return ModuleOutput(prediction=None, features=features, label=label)
        alpha = p_up - p_down if best < 2 else 0.0
        sigma = realized_vol * math.sqrt(params.horizon_bars)
        prediction = Prediction(
            mu=params.information_coefficient * alpha * sigma,
            sigma=sigma,
            horizon=params.horizon_bars * interval_ms / 1000.0,
            confidence=params.max_confidence * probabilities[best] * (1.0 - changepoint),
            alpha=alpha,
        )
        return ModuleOutput(prediction=prediction, features=features, label=label)

    def _volatility(self, state: _SymbolState, change: float) -> tuple[float, float]:
        """Rolling standard deviation of log returns, and its mid-rank among the previous values."""
        returns = state.returns
        if len(returns) == returns.maxlen:
            dropped = returns[0]
            state.sum_returns -= dropped
            state.sum_squares -= dropped * dropped
        returns.append(change)
        state.sum_returns += change
        state.sum_squares += change * change
        count = len(returns)
        if count < 2:
            return 0.0, 0.5
        variance = (state.sum_squares - state.sum_returns * state.sum_returns / count) / (count - 1)
        vol = math.sqrt(variance) if variance > 0.0 else 0.0
        ordered = state.sorted_vols
        below = bisect.bisect_left(ordered, vol)
        equal = bisect.bisect_right(ordered, vol) - below
        percentile = (below + 0.5 * equal) / len(ordered) if ordered else 0.5
        past = state.past_vols
        if len(past) == past.maxlen:
            del ordered[bisect.bisect_left(ordered, past[0])]
        past.append(vol)
        bisect.insort(ordered, vol)
        return vol, percentile

    def _adx(
        self,
        state: _SymbolState,
        high: float,
        low: float,
        *,
        previous_close: float,
        previous_high: float,
        previous_low: float,
    ) -> tuple[float, float]:
        """Wilder's ADX and the DI direction (+DI - -DI) / (+DI + -DI)."""
        up = high - previous_high
        down = previous_low - low
        plus = up if up > down and up > 0.0 else 0.0
        minus = down if down > up and down > 0.0 else 0.0
        true_range = max(high - low, abs(high - previous_close), abs(low - previous_close))
        smoothing = 1.0 / self.params.adx_period
        if state.dm_count == 0:
            state.true_range, state.plus_dm, state.minus_dm = true_range, plus, minus
        else:
            state.true_range += smoothing * (true_range - state.true_range)
            state.plus_dm += smoothing * (plus - state.plus_dm)
            state.minus_dm += smoothing * (minus - state.minus_dm)
        if state.true_range > 0.0:
            plus_di = 100.0 * state.plus_dm / state.true_range
            minus_di = 100.0 * state.minus_dm / state.true_range
        else:
            plus_di = minus_di = 0.0
        di_sum = plus_di + minus_di
        dx = 100.0 * abs(plus_di - minus_di) / di_sum if di_sum > 0.0 else 0.0
        state.adx = dx if state.dm_count == 0 else state.adx + smoothing * (dx - state.adx)
        state.dm_count += 1
        return state.adx, (plus_di - minus_di) / di_sum if di_sum > 0.0 else 0.0

    @staticmethod
    def _efficiency(state: _SymbolState, step: float) -> float:
        """Kaufman's efficiency ratio over the closes held (signed: net move / path length)."""
        path = state.path
        if len(path) == path.maxlen:
            state.path_sum -= path[0]
        path.append(step)
        state.path_sum += step
        if not state.path_sum > 0.0:
            return 0.0
        ratio = (state.closes[-1] - state.closes[0]) / state.path_sum
        return -1.0 if ratio < -1.0 else 1.0 if ratio > 1.0 else ratio  # running-sum rounding stays inside

    def _changepoint(self, state: _SymbolState, change: float) -> tuple[float, int]:
        """Update the run-length posterior; P(run <= window) and the most probable run length."""
        params = self.params
        state.long_count += 1
        weight = max(1.0 / state.long_count, 1.0 - self._long_decay)
        state.long_variance += weight * (change * change - state.long_variance)
        if state.long_count < params.vol_window or not state.long_variance > 0.0:
            return 0.0, 0  # the prior's scale is not known yet
        beta0 = params.prior_alpha * state.long_variance
        changepoints = state.changepoints
        if changepoints is None:
            state.changepoints = RunLengthPosterior(params.max_run, beta0, self._constants, params.changepoint_window)
            return 0.0, 0
        changepoint, run_length = changepoints.update(change, beta0, self._constants)
        return min(1.0, changepoint), run_length

    # ------------------------------------------------------------ state

    def export_state(self) -> ModuleState | None:
        symbols: dict[str, dict[str, Any]] = {}
        for symbol, s in self._state.items():
            cp = s.changepoints
            symbols[symbol] = {
                "bars": s.bars,
                "previous": [s.close, s.high, s.low],
                "returns": list(s.returns),
                "sums": [s.sum_returns, s.sum_squares, s.path_sum, s.long_variance],
                "past_vols": list(s.past_vols),
                "long_count": s.long_count,
                "wilder": [s.true_range, s.plus_dm, s.minus_dm, s.adx],
                "dm_count": s.dm_count,
                "closes": list(s.closes),
                "path": list(s.path),
                "changepoints": None if cp is None else cp.rows.tolist(),
                "trade_period": s.trade_period,
                "trade_bar": list(s.trade_bar),
            }
        return ModuleState(
            self.name, self.version, self.state_version, {"params": self.params.model_dump(), "symbols": symbols}
        )

    def import_state(self, state: ModuleState) -> bool:
        # Windows, priors and truncation built with other settings would be wrong for ours: start cold.
        if state.module != self.name or state.state_version != self.state_version:
            return False
        theirs = state.data.get("params", {})
        if any(theirs.get(key) != getattr(self.params, key) for key in _STATE_PARAMS):
            return False
        restored: dict[str, _SymbolState] = {}
        for symbol, data in state.data["symbols"].items():
            s = self._new_state()
            s.bars = int(data["bars"])
            s.close, s.high, s.low = (float(v) for v in data["previous"])
            s.returns.extend(float(v) for v in data["returns"])
            s.sum_returns, s.sum_squares, s.path_sum, s.long_variance = (float(v) for v in data["sums"])
            s.past_vols.extend(float(v) for v in data["past_vols"])
            s.sorted_vols = sorted(s.past_vols)
            s.long_count = int(data["long_count"])
            s.true_range, s.plus_dm, s.minus_dm, s.adx = (float(v) for v in data["wilder"])
            s.dm_count = int(data["dm_count"])
            s.closes.extend(float(v) for v in data["closes"])
            s.path.extend(float(v) for v in data["path"])
            if data["changepoints"] is not None:
                s.changepoints = RunLengthPosterior(
                    self.params.max_run, 1.0, self._constants, self.params.changepoint_window
                )
                s.changepoints.rows[:] = np.array(data["changepoints"], dtype=np.float64)
            s.trade_period = int(data["trade_period"])
            s.trade_bar = [float(v) for v in data["trade_bar"]]
            restored[symbol] = s
        self._state = restored
        return True


MODULE = RegimeModule
