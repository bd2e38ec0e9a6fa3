"""Moving-average crossover: trend following on bar closes.

The dual moving-average rule (e.g. Brock, Lakonishok & LeBaron, "Simple
technical trading rules and the stochastic properties of stock returns",
J. Finance 47(5), 1992), with exponential averages: a fast and a slow EMA of
the close (alpha = 2 / (n + 1) seeded with the first close, pandas
``ewm(span=n, adjust=False)``) and an exponentially weighted variance of
log returns (RiskMetrics, J.P. Morgan 1996, lambda = 1 - 2 / (slow + 1),
starting from 0 at the first bar). The spread (fast - slow) / slow, in
volatility units z = spread / volatility, is squashed by tanh into alpha.

Inputs: bars. Features: ema_fast, ema_slow, spread, volatility.
Prediction, from the ``slow``-th bar of a symbol on: alpha = tanh(z / z_scale);
mu = information_coefficient x alpha x sigma; sigma = volatility x
sqrt(horizon_bars); confidence = min(1, bars / (2 slow)) x |alpha|. O(1) per bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import Field, model_validator

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


class MaCrossoverParams(ModuleParams):
    fast: int = Field(10, gt=0, description="bars in the fast EMA")
    slow: int = Field(30, gt=1, description="bars in the slow EMA")
    z_scale: float = Field(2.0, gt=0.0, description="spread in volatility units that maps to alpha ~0.76")
    horizon_bars: int = Field(5, gt=0, description="bars ahead the prediction applies to")
    information_coefficient: float = Field(0.05, ge=0.0, le=1.0, description="assumed skill: mu per unit alpha x sigma")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MaCrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        return self


@dataclass(slots=True)
class _SymbolState:
    fast: float
    slow: float
    variance: float
    last_close: float
    bars: int


class MaCrossoverModule(AnalysisModule[MaCrossoverParams]):
    """Trend following from a fast/slow EMA crossover, in volatility units."""

    name = "ma_crossover"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR})
    Params = MaCrossoverParams
    latency_budget_us = 200.0

    def __init__(self, params: MaCrossoverParams) -> None:
        super().__init__(params)
        self._fast_alpha = 2.0 / (params.fast + 1)
        self._slow_alpha = 2.0 / (params.slow + 1)
        self._state: dict[str, _SymbolState] = {}

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        state = self._state.get(bar.symbol)
        close = bar.close
        if state is None:
            self._state[bar.symbol] = _SymbolState(close, close, 0.0, close, 1)
            return None
        change = math.log(close / state.last_close) if state.last_close > 0.0 and close > 0.0 else 0.0
        state.fast += self._fast_alpha * (close - state.fast)
        state.slow += self._slow_alpha * (close - state.slow)
        state.variance += self._slow_alpha * (change * change - state.variance)
        state.last_close = close
        state.bars += 1
        params = self.params
        volatility = math.sqrt(state.variance)
        spread = (state.fast - state.slow) / state.slow if state.slow > 0.0 else 0.0
        features = {"ema_fast": state.fast, "ema_slow": state.slow, "spread": spread, "volatility": volatility}
        if state.bars < params.slow or volatility <= 0.0:
            return ModuleOutput(prediction=None, features=features)
        alpha = math.tanh(spread / volatility / params.z_scale)
        warm = min(1.0, state.bars / (2.0 * params.slow))
        sigma = volatility * math.sqrt(params.horizon_bars)
        prediction = Prediction(
            mu=params.information_coefficient * alpha * sigma,
            sigma=sigma,
            horizon=params.horizon_bars * bar.interval_ms / 1000.0,
            confidence=warm * abs(alpha),
            alpha=alpha,
        )
        return ModuleOutput(prediction=prediction, features=features)

    def export_state(self) -> ModuleState | None:
        data = {symbol: [s.fast, s.slow, s.variance, s.last_close, s.bars] for symbol, s in self._state.items()}
        return ModuleState(
            self.name, self.version, self.state_version, {"params": self.params.model_dump(), "symbols": data}
        )

    def import_state(self, state: ModuleState) -> bool:
        # Averages built with other windows would be wrong for ours: start cold.
        if state.module != self.name or state.state_version != self.state_version:
            return False
        if (
            state.data.get("params", {}).get("fast") != self.params.fast
            or state.data.get("params", {}).get("slow") != self.params.slow
        ):
            return False
        self._state = {
            symbol: _SymbolState(float(f), float(s), float(v), float(c), int(n))
            for symbol, (f, s, v, c, n) in state.data["symbols"].items()
        }
        return True


MODULE = MaCrossoverModule
