"""Bollinger Bands mean reversion on bar closes.

Bollinger (2001, "Bollinger on Bollinger Bands"): middle = SMA(n) of the
close, std = the rolling standard deviation of the same n closes, bands =
middle ± k x std. The std is the population one (``ddof = 0``, as Bollinger
computes it; pandas ``rolling(n).std(ddof=0)``) unless ``ddof = 1`` asks for
the sample one (pandas' default ``rolling(n).std()``).
%b = (close - lower) / (upper - lower), bandwidth = (upper - lower) / middle,
z = (close - middle) / std.

The rolling moments are updated in O(1) per bar as sums of the closes'
deviations from a shift K (a recent mean) and of their squares, each kept
with Neumaier's compensated summation (Neumaier 1974), so adding and removing
a large value leaves no residue; variance = (S2 - S1^2 / n) / (n - ddof)
cancels little because K sits near the mean (Chan, Golub & LeVeque 1983,
"Algorithms for computing the sample variance"). K is re-centred and the sums
recomputed exactly from the window every ``_RECOMPUTE_EVERY`` bars, or sooner
when the mean has moved far from K relative to the std (amortised O(1)).

Inputs: bars. Features: middle, std, upper, lower, percent_b, bandwidth,
zscore, bandwidth_ratio (bandwidth / its EW mean over ``bandwidth_memory``
bars: < 1 is a squeeze), volatility (EW vol of log returns). The EW mean is
kept of the population std / middle, which bandwidth is a fixed multiple of
(2k sqrt(n / (n - ddof))): the ratio is the same, and a successor with
another ``num_std`` or ``ddof`` can adopt the state.

Prediction: alpha = clip(-2 (%b - 0.5), -1, 1) = clip(-z / k, -1, 1) (at the
upper band alpha = -1, at the middle 0). confidence = max_confidence x
|alpha| x min(1, 2 / (1 + bandwidth_ratio)): full weight while the bands are
no wider than usual (ranging market), halved at three times the usual width
(trending or breaking out, where reversion fails). mu =
information_coefficient x alpha x sigma, sigma = volatility x
sqrt(horizon_bars). Nothing is returned until the window is full. O(1) per bar.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

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
)

_RECOMPUTE_EVERY = 1000  # bars between exact recomputations of the rolling moments
# Re-centre when (mean - K)^2 exceeds this many variances: the cancellation in
# S2 - S1^2/n then costs more than ~1e4 ulps of the variance.
_MAX_SHIFT_IN_VARIANCES = 1e4
_STATE_PARAMS = ("window", "bandwidth_memory", "volatility_window")


class BollingerParams(ModuleParams):
    window: int = Field(20, gt=1, description="closes in the moving average and standard deviation")
    num_std: float = Field(2.0, gt=0.0, description="band half-width in standard deviations (k)")
    ddof: Literal[0, 1] = Field(0, description="0: population std (Bollinger); 1: sample std (pandas default)")
    bandwidth_memory: int = Field(100, gt=1, description="bars in the EW mean bandwidth that defines 'usual'")
    volatility_window: int = Field(20, gt=1, description="bars in the EW volatility of log returns")
    max_confidence: float = Field(0.6, gt=0.0, le=1.0, description="confidence at |alpha| = 1 in a usual range")
    horizon_bars: int = Field(5, gt=0, description="bars ahead the prediction applies to")
    information_coefficient: float = Field(0.04, ge=0.0, le=1.0, description="mu per unit alpha x sigma")


@dataclass(slots=True)
class _SymbolState:
    closes: deque[float]
    shift: float = math.nan  # K; NaN until the first close
    sum1: float = 0.0  # sum of (x - K) over the window, with its Neumaier compensation
    comp1: float = 0.0
    sum2: float = 0.0  # sum of (x - K)^2, with its compensation
    comp2: float = 0.0
    since_recompute: int = 0
    last_close: float = math.nan
    variance: float = math.nan  # EW variance of log returns; NaN until the first return
    relative_std_mean: float = math.nan  # EW mean of population std / middle; NaN until the window first fills


class BollingerModule(AnalysisModule[BollingerParams]):
    """Bollinger Bands mean reversion, trusted more when the bands are narrow."""

    name = "bollinger"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR})
    Params = BollingerParams
    latency_budget_us = 150.0
    state_version = 2  # 1 kept the EW mean of the bandwidth itself, which depends on num_std and ddof

    def __init__(self, params: BollingerParams) -> None:
        super().__init__(params)
        self._vol_alpha = 2.0 / (params.volatility_window + 1)
        self._bandwidth_alpha = 2.0 / (params.bandwidth_memory + 1)
        self._state: dict[str, _SymbolState] = {}

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        params = self.params
        close = bar.close
        state = self._state.get(bar.symbol)
        if state is None:
            state = self._state[bar.symbol] = _SymbolState(deque(maxlen=params.window))
        self._update_volatility(state, close)
        self._update_moments(state, close)
        n = len(state.closes)
        if n < params.window:
            return None
        middle, squares, shifted = self._moments(state, n)
        if shifted > _MAX_SHIFT_IN_VARIANCES * squares > 0.0:
            self._recentre(state)
            middle, squares, _ = self._moments(state, n)
        std = math.sqrt(squares / (n - params.ddof))
        half_width = params.num_std * std
        upper, lower = middle + half_width, middle - half_width
        # Flat prices give zero-width bands: the close is then at the middle.
        zscore = (close - middle) / std if std > 0.0 else 0.0
        percent_b = 0.5 + zscore / (2.0 * params.num_std)
        bandwidth = 2.0 * half_width / middle if middle != 0.0 else 0.0
        # Free of num_std and ddof (they only scale it), so a retuned successor continues the same mean.
        relative_std = math.sqrt(squares / n) / middle if middle != 0.0 else 0.0
        if math.isnan(state.relative_std_mean):
            state.relative_std_mean = relative_std
        else:
            state.relative_std_mean += self._bandwidth_alpha * (relative_std - state.relative_std_mean)
        ratio = relative_std / state.relative_std_mean if state.relative_std_mean > 0.0 else 1.0
        volatility = math.sqrt(state.variance) if state.variance > 0.0 else 0.0
        features = {
            "middle": middle,
            "std": std,
            "upper": upper,
            "lower": lower,
            "percent_b": percent_b,
            "bandwidth": bandwidth,
            "zscore": zscore,
            "bandwidth_ratio": ratio,
            "volatility": volatility,
        }
        if not volatility > 0.0:
            return ModuleOutput(prediction=None, features=features)
        alpha = max(-1.0, min(1.0, -2.0 * (percent_b - 0.5)))
        sigma = volatility * math.sqrt(params.horizon_bars)
        prediction = Prediction(
            mu=params.information_coefficient * alpha * sigma,
            sigma=sigma,
            horizon=params.horizon_bars * bar.interval_ms / 1000.0,
            confidence=params.max_confidence * abs(alpha) * min(1.0, 2.0 / (1.0 + ratio)),
            alpha=alpha,
        )
        return ModuleOutput(prediction=prediction, features=features)

    def _update_moments(self, state: _SymbolState, close: float) -> None:
        closes = state.closes
        if math.isnan(state.shift):
            state.shift = close
        full = len(closes) == self.params.window
        oldest = closes[0] if full else 0.0
        closes.append(close)  # when full, the deque drops ``oldest``
        if full:
            state.since_recompute += 1
            if state.since_recompute >= _RECOMPUTE_EVERY:
                self._recentre(state)
                return
        shift = state.shift
        new = close - shift
        self._accumulate(state, new, new * new)
        if full:
            old = oldest - shift
            self._accumulate(state, -old, -(old * old))

    @staticmethod
    def _moments(state: _SymbolState, n: int) -> tuple[float, float, float]:
        """Mean, sum of squared deviations, and n (mean - K)^2 (what the cancellation costs)."""
        offset = (state.sum1 + state.comp1) / n
        shifted = offset * offset * n
        return state.shift + offset, max(0.0, (state.sum2 + state.comp2) - shifted), shifted

    @staticmethod
    def _accumulate(state: _SymbolState, first: float, second: float) -> None:
        """Add to both sums with Neumaier's compensation (the rounding error of each add is kept)."""
        total = state.sum1 + first
        if abs(state.sum1) >= abs(first):
            state.comp1 += (state.sum1 - total) + first
        else:
            state.comp1 += (first - total) + state.sum1
        state.sum1 = total
        total = state.sum2 + second
        if abs(state.sum2) >= abs(second):
            state.comp2 += (state.sum2 - total) + second
        else:
            state.comp2 += (second - total) + state.sum2
        state.sum2 = total

    @staticmethod
    def _recentre(state: _SymbolState) -> None:
        """Exact moments from the window, around its own mean."""
        closes = state.closes
        state.since_recompute = 0
        state.shift = math.fsum(closes) / len(closes)
        state.sum1 = math.fsum(x - state.shift for x in closes)
        state.sum2 = math.fsum((x - state.shift) ** 2 for x in closes)
        state.comp1 = state.comp2 = 0.0

    def _update_volatility(self, state: _SymbolState, close: float) -> None:
        previous = state.last_close
        state.last_close = close
        if math.isnan(previous):
            return
        change = math.log(close / previous) if close > 0.0 and previous > 0.0 else 0.0
        squared = change * change
        if math.isnan(state.variance):  # seed with the first squared return, as pandas ewm(adjust=False)
            state.variance = squared
        else:
            state.variance += self._vol_alpha * (squared - state.variance)

    def export_state(self) -> ModuleState | None:
        symbols = {
            symbol: {
                "closes": list(s.closes),
                "shift": None if math.isnan(s.shift) else s.shift,
                "sums": [s.sum1, s.comp1, s.sum2, s.comp2],
                "since_recompute": s.since_recompute,
                "last_close": None if math.isnan(s.last_close) else s.last_close,
                "variance": None if math.isnan(s.variance) else s.variance,
                "relative_std_mean": None if math.isnan(s.relative_std_mean) else s.relative_std_mean,
            }
            for symbol, s in self._state.items()
        }
        params = {key: getattr(self.params, key) for key in _STATE_PARAMS}
        return ModuleState(self.name, self.version, self.state_version, {"params": params, "symbols": symbols})

    def import_state(self, state: ModuleState) -> bool:
        # A window of another length, or other EW memories, would not continue our series.
        if state.module != self.name or state.state_version != self.state_version:
            return False
        if state.data.get("params") != {key: getattr(self.params, key) for key in _STATE_PARAMS}:
            return False
        self._state = {
            symbol: _SymbolState(
                closes=deque((float(x) for x in d["closes"]), maxlen=self.params.window),
                shift=_float_or_nan(d["shift"]),
                sum1=float(d["sums"][0]),
                comp1=float(d["sums"][1]),
                sum2=float(d["sums"][2]),
                comp2=float(d["sums"][3]),
                since_recompute=int(d["since_recompute"]),
                last_close=_float_or_nan(d["last_close"]),
                variance=_float_or_nan(d["variance"]),
                relative_std_mean=_float_or_nan(d["relative_std_mean"]),
            )
            for symbol, d in state.data["symbols"].items()
        }
        return True


def _float_or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


MODULE = BollingerModule
