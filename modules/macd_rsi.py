"""MACD and RSI confluence on bar closes.

MACD (Appel, 1979): EMA_fast(close) - EMA_slow(close), its signal line
EMA_signal(MACD) and the histogram MACD - signal, with EMAs of alpha =
2 / (span + 1) seeded with the first value, exactly pandas
``ewm(span=..., adjust=False).mean()``. RSI (Wilder, 1978, "New Concepts in
Technical Trading Systems"): Wilder's smoothing of gains and losses of the
close, i.e. pandas ``ewm(alpha=1/n, adjust=False).mean()`` seeded with the
first change; RSI = 100 - 100 / (1 + avg_gain / avg_loss) (100 without
losses, 50 while nothing has moved).

Inputs: bars. Features: macd, macd_signal, macd_hist, rsi, hist_z (histogram
in units of close x EW volatility of log returns), agreement, damping,
expanding (1 when the histogram grows in its own direction), volatility.

Prediction (confluence): the histogram gives the direction d = sign(hist)
and the strength tanh(|hist_z| / hist_scale); the RSI must agree: agreement =
clip(d x (RSI - 50) / agreement_band, 0, 1) (long needs RSI above 50, full
at 50 + band; short mirrored); an overbought RSI (> overbought) damps a long
linearly to 0 at RSI 100, an oversold one a short to 0 at RSI 0.
alpha = d x strength x agreement x damping. confidence = |alpha| x (0.5 +
0.5 x expanding): all three (trend, RSI zone, histogram momentum) agreeing
count fully. mu = information_coefficient x alpha x sigma, sigma =
volatility x sqrt(horizon_bars). Features from the second bar on; a
prediction after ``warmup_bars``. O(1) per bar.
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

_STATE_PARAMS = ("fast", "slow", "signal", "rsi_window", "volatility_window")


class MacdRsiParams(ModuleParams):
    fast: int = Field(12, gt=0, description="span of the fast EMA")
    slow: int = Field(26, gt=1, description="span of the slow EMA")
    signal: int = Field(9, gt=0, description="span of the signal-line EMA of MACD")
    rsi_window: int = Field(14, gt=1, description="Wilder's RSI period (smoothing alpha = 1 / n)")
    overbought: float = Field(70.0, lt=100.0, description="RSI above which a long is damped")
    oversold: float = Field(30.0, gt=0.0, description="RSI below which a short is damped")
    agreement_band: float = Field(10.0, gt=0.0, description="RSI points beyond 50 for full agreement")
    hist_scale: float = Field(0.5, gt=0.0, description="hist_z that maps to strength tanh(1) ~ 0.76")
    volatility_window: int = Field(20, gt=1, description="bars in the EW volatility of log returns")
    warmup_bars: int = Field(50, gt=0, description="bars before the first prediction")
    horizon_bars: int = Field(5, gt=0, description="bars ahead the prediction applies to")
    information_coefficient: float = Field(0.04, ge=0.0, le=1.0, description="mu per unit alpha x sigma")

    @model_validator(mode="after")
    def _consistent(self) -> MacdRsiParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        if not self.oversold < 50.0 < self.overbought:
            raise ValueError(f"need oversold ({self.oversold}) < 50 < overbought ({self.overbought})")
        return self


@dataclass(slots=True)
class _SymbolState:
    last_close: float
    ema_fast: float
    ema_slow: float
    signal: float = 0.0  # the first MACD is 0 (both EMAs start at the first close)
    avg_gain: float = math.nan  # NaN until the first change
    avg_loss: float = math.nan
    variance: float = math.nan
    hist: float = 0.0
    bars: int = 1


class MacdRsiModule(AnalysisModule[MacdRsiParams]):
    """MACD histogram direction confirmed by the RSI zone."""

    name = "macd_rsi"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR})
    Params = MacdRsiParams
    latency_budget_us = 150.0

    def __init__(self, params: MacdRsiParams) -> None:
        super().__init__(params)
        self._fast = 2.0 / (params.fast + 1)
        self._slow = 2.0 / (params.slow + 1)
        self._signal = 2.0 / (params.signal + 1)
        self._wilder = 1.0 / params.rsi_window
        self._vol = 2.0 / (params.volatility_window + 1)
        self._state: dict[str, _SymbolState] = {}

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        close = bar.close
        state = self._state.get(bar.symbol)
        if state is None:
            self._state[bar.symbol] = _SymbolState(close, close, close)
            return None
        change = close - state.last_close
        log_change = math.log(close / state.last_close) if close > 0.0 and state.last_close > 0.0 else 0.0
        state.last_close = close
        state.bars += 1
        state.ema_fast += self._fast * (close - state.ema_fast)
        state.ema_slow += self._slow * (close - state.ema_slow)
        macd = state.ema_fast - state.ema_slow
        state.signal += self._signal * (macd - state.signal)
        hist = macd - state.signal
        expanding = hist * (hist - state.hist) > 0.0
        state.hist = hist
        gain, loss = max(change, 0.0), max(-change, 0.0)
        squared = log_change * log_change
        if math.isnan(state.avg_gain):  # seeded with the first change, as pandas ewm(adjust=False)
            state.avg_gain, state.avg_loss, state.variance = gain, loss, squared
        else:
            state.avg_gain += self._wilder * (gain - state.avg_gain)
            state.avg_loss += self._wilder * (loss - state.avg_loss)
            state.variance += self._vol * (squared - state.variance)
        if state.avg_loss > 0.0:
            rsi = 100.0 - 100.0 / (1.0 + state.avg_gain / state.avg_loss)
        else:
            rsi = 100.0 if state.avg_gain > 0.0 else 50.0

        params = self.params
        volatility = math.sqrt(state.variance)
        scale = close * volatility
        hist_z = hist / scale if scale > 0.0 else 0.0
        direction = 1.0 if hist > 0.0 else -1.0 if hist < 0.0 else 0.0
        agreement = min(1.0, max(0.0, direction * (rsi - 50.0) / params.agreement_band))
        damping = 1.0
        if direction > 0.0 and rsi > params.overbought:
            damping = (100.0 - rsi) / (100.0 - params.overbought)
        elif direction < 0.0 and rsi < params.oversold:
            damping = rsi / params.oversold
        features = {
            "macd": macd,
            "macd_signal": state.signal,
            "macd_hist": hist,
            "rsi": rsi,
            "hist_z": hist_z,
            "agreement": agreement,
            "damping": damping,
            "expanding": 1.0 if expanding else 0.0,
            "volatility": volatility,
        }
        if state.bars < params.warmup_bars or not volatility > 0.0:
            return ModuleOutput(prediction=None, features=features)
        alpha = direction * math.tanh(abs(hist_z) / params.hist_scale) * agreement * damping
        sigma = volatility * math.sqrt(params.horizon_bars)
        prediction = Prediction(
            mu=params.information_coefficient * alpha * sigma,
            sigma=sigma,
            horizon=params.horizon_bars * bar.interval_ms / 1000.0,
            confidence=abs(alpha) * (1.0 if expanding else 0.5),
            alpha=alpha,
        )
        return ModuleOutput(prediction=prediction, features=features)

    def export_state(self) -> ModuleState | None:
        symbols = {
            symbol: [s.last_close, s.ema_fast, s.ema_slow, s.signal]
            + [None if math.isnan(x) else x for x in (s.avg_gain, s.avg_loss, s.variance)]
            + [s.hist, s.bars]
            for symbol, s in self._state.items()
        }
        params = {key: getattr(self.params, key) for key in _STATE_PARAMS}
        return ModuleState(self.name, self.version, self.state_version, {"params": params, "symbols": symbols})

    def import_state(self, state: ModuleState) -> bool:
        # EMAs of other spans would be a different indicator.
        if state.module != self.name or state.state_version != self.state_version:
            return False
        if state.data.get("params") != {key: getattr(self.params, key) for key in _STATE_PARAMS}:
            return False
        restored = {}
        for symbol, (close, fast, slow, signal, gain, loss, variance, hist, bars) in state.data["symbols"].items():
            restored[symbol] = _SymbolState(
                float(close),
                float(fast),
                float(slow),
                float(signal),
                math.nan if gain is None else float(gain),
                math.nan if loss is None else float(loss),
                math.nan if variance is None else float(variance),
                float(hist),
                int(bars),
            )
        self._state = restored
        return True


MODULE = MacdRsiModule
