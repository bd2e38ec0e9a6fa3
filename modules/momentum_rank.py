"""Cross-sectional momentum rank across the instance's symbols.

Per symbol: the lookback momentum m = log(close_t / close_{t-lookback}) and
its volatility-adjusted form z = m / (sigma x sqrt(lookback)), sigma the EW
volatility of one-bar log returns (alpha = 2 / (volatility_window + 1)), as in
time-series-scaled momentum (Moskowitz, Ooi & Pedersen 2012); the cross-section
ranks z (or m when ``vol_adjust`` is off), as in Jegadeesh & Titman (1993).

When a symbol's bar arrives it is ranked against the latest momentum of
every symbol known at that moment (no look-ahead: symbols whose bar of the
same time comes later in the stream are ranked on their previous bar), among
those whose last bar is at most ``stale_after_bars`` intervals old.
rank_pct = (number below + half the ties) / (n - 1), which is
``(scipy.stats.rankdata(scores)[i] - 1) / (n - 1)``; c = 2 rank_pct - 1 in
[-1, 1]; alpha = sign(c) x max(0, |c| - neutral_band) / (1 - neutral_band):
the top of the ranking long, the bottom short, the middle band flat.

Inputs: bars. Features: momentum, momentum_z, rank_pct, symbols_ranked,
coverage (ranked / configured symbols), dispersion (cross-sectional std of
z over the ranked symbols), volatility.

Prediction: confidence = |alpha| x tanh(dispersion / dispersion_scale) x
coverage x (1 - 1 / n): a ranking means more when momenta differ, when most of
the universe has data and when there are more names to rank. mu =
information_coefficient x alpha x sigma, sigma = volatility x
sqrt(horizon_bars). A symbol produces once its own momentum exists; the
prediction needs ``min_symbols`` ranked symbols. O(#symbols) per bar.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

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

_STATE_PARAMS = ("lookback", "volatility_window")


class MomentumRankParams(ModuleParams):
    lookback: int = Field(20, gt=0, description="bars in the momentum return")
    vol_adjust: bool = Field(True, description="rank return / (volatility x sqrt(lookback)) instead of the return")
    volatility_window: int = Field(50, gt=1, description="bars in the EW volatility of log returns")
    neutral_band: float = Field(1.0 / 3.0, ge=0.0, lt=1.0, description="middle share of the rank range mapped to 0")
    min_symbols: int = Field(2, ge=2, description="ranked symbols needed for a prediction")
    stale_after_bars: int = Field(3, gt=0, description="bar intervals after which a silent symbol is not ranked")
    dispersion_scale: float = Field(1.0, gt=0.0, description="cross-sectional std of z giving tanh(1) confidence")
    horizon_bars: int = Field(5, gt=0, description="bars ahead the prediction applies to")
    information_coefficient: float = Field(0.03, ge=0.0, le=1.0, description="mu per unit alpha x sigma")


@dataclass(slots=True)
class _SymbolState:
    closes: deque[float]  # the last lookback + 1 closes
    last_ts: int
    variance: float = math.nan  # EW variance of log returns; NaN until the first return
    momentum: float = math.nan  # NaN until lookback + 1 closes are known
    momentum_z: float = math.nan  # NaN also while the volatility is zero


class MomentumRankModule(AnalysisModule[MomentumRankParams]):
    """Long the strongest, short the weakest recent performers of the symbol set."""

    name = "momentum_rank"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR})
    Params = MomentumRankParams
    latency_budget_us = 300.0

    def __init__(self, params: MomentumRankParams) -> None:
        super().__init__(params)
        self._vol_alpha = 2.0 / (params.volatility_window + 1)
        self._sqrt_lookback = math.sqrt(params.lookback)
        self._state: dict[str, _SymbolState] = {}

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        params = self.params
        close = bar.close
        state = self._state.get(bar.symbol)
        if state is None:
            state = self._state[bar.symbol] = _SymbolState(deque((close,), maxlen=params.lookback + 1), bar.ts)
            return None
        previous = state.closes[-1]
        change = math.log(close / previous) if close > 0.0 and previous > 0.0 else 0.0
        squared = change * change
        if math.isnan(state.variance):  # seed with the first squared return, as pandas ewm(adjust=False)
            state.variance = squared
        else:
            state.variance += self._vol_alpha * (squared - state.variance)
        state.closes.append(close)
        state.last_ts = bar.ts
        if len(state.closes) <= params.lookback:
            return None
        oldest = state.closes[0]
        state.momentum = math.log(close / oldest) if close > 0.0 and oldest > 0.0 else 0.0
        volatility = math.sqrt(state.variance)
        state.momentum_z = state.momentum / (volatility * self._sqrt_lookback) if volatility > 0.0 else math.nan
        return self._rank(state, bar, volatility, len(ctx.symbols))

    def _rank(self, own: _SymbolState, bar: Bar, volatility: float, universe: int) -> ModuleOutput:
        params = self.params
        vol_adjust = params.vol_adjust
        own_score = own.momentum_z if vol_adjust else own.momentum
        oldest_ts = bar.ts - params.stale_after_bars * bar.interval_ms
        below = ties = ranked = 0
        z_sum = z_squares = 0.0
        z_count = 0
        for other in self._state.values():
            if other.last_ts < oldest_ts:
                continue
            z = other.momentum_z
            score = z if vol_adjust else other.momentum
            if math.isnan(score):
                continue
            ranked += 1
            if score < own_score:
                below += 1
            elif score == own_score:
                ties += 1
            if not math.isnan(z):
                z_count += 1
                z_sum += z
                z_squares += z * z
        ties -= 1 if not math.isnan(own_score) else 0  # the symbol ties with itself
        dispersion = math.sqrt(max(0.0, z_squares / z_count - (z_sum / z_count) ** 2)) if z_count else 0.0
        coverage = min(1.0, ranked / universe) if universe else 0.0
        rank_pct = (below + 0.5 * ties) / (ranked - 1) if ranked > 1 and not math.isnan(own_score) else math.nan
        features = {
            "momentum": own.momentum,
            "momentum_z": own.momentum_z,
            "rank_pct": rank_pct,
            "symbols_ranked": float(ranked),
            "coverage": coverage,
            "dispersion": dispersion,
            "volatility": volatility,
        }
        if ranked < params.min_symbols or math.isnan(rank_pct) or not volatility > 0.0:
            return ModuleOutput(prediction=None, features=features)
        centred = 2.0 * rank_pct - 1.0
        band = params.neutral_band
        alpha = math.copysign(max(0.0, abs(centred) - band) / (1.0 - band), centred)
        sigma = volatility * math.sqrt(params.horizon_bars)
        confidence = abs(alpha) * math.tanh(dispersion / params.dispersion_scale) * coverage * (1.0 - 1.0 / ranked)
        prediction = Prediction(
            mu=params.information_coefficient * alpha * sigma,
            sigma=sigma,
            horizon=params.horizon_bars * bar.interval_ms / 1000.0,
            confidence=confidence,
            alpha=alpha,
        )
        return ModuleOutput(prediction=prediction, features=features)

    def export_state(self) -> ModuleState | None:
        symbols = {
            symbol: {
                "closes": list(s.closes),
                "last_ts": s.last_ts,
                "variance": None if math.isnan(s.variance) else s.variance,
                "momentum": None if math.isnan(s.momentum) else s.momentum,
                "momentum_z": None if math.isnan(s.momentum_z) else s.momentum_z,
            }
            for symbol, s in self._state.items()
        }
        params = {key: getattr(self.params, key) for key in _STATE_PARAMS}
        return ModuleState(self.name, self.version, self.state_version, {"params": params, "symbols": symbols})

    def import_state(self, state: ModuleState) -> bool:
        # Momenta over another lookback (or volatilities over another window) do not rank with ours.
        if state.module != self.name or state.state_version != self.state_version:
            return False
        if state.data.get("params") != {key: getattr(self.params, key) for key in _STATE_PARAMS}:
            return False
        self._state = {
            symbol: _SymbolState(
                closes=deque((float(x) for x in d["closes"]), maxlen=self.params.lookback + 1),
                last_ts=int(d["last_ts"]),
                variance=_float_or_nan(d["variance"]),
                momentum=_float_or_nan(d["momentum"]),
                momentum_z=_float_or_nan(d["momentum_z"]),
            )
            for symbol, d in state.data["symbols"].items()
        }
        return True


def _float_or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


MODULE = MomentumRankModule
