"""Confirmed local extrema and zigzag legs, online and free of look-ahead.

An online zigzag (the classic swing filter, e.g. Merrill's "Filtered Waves",
1977): a leg runs until price reverses from the leg's running extreme by the
minimum reversal, either ``reversal_pct`` percent of that extreme or
``atr_multiple`` x ATR (Wilder, ``atr_window`` bars). The reversal needed is
fixed when the extreme is made (ATR of that bar), so a later jump in ATR
cannot turn bars that did not reverse into ones that did: the confirming bar
is then always the new leg's first extreme. The extreme is *confirmed* and
reported on the confirming bar, with its confirmation lag in bars; the
hindsight turning points are the same, only known later. With ``price = "high_low"`` legs run on bar highs (up legs) and
lows (down legs); a bar that extends the leg continues it (its intra-bar order
is unknown, so it is not also read as a reversal). With ``price = "close"``
both are the close. Before the first reversal both directions are open: the
running maximum and minimum since the start compete, and the first reversal
decides (one bar can reverse both only when both extremes come from one bar,
whose intra-bar order is unknown: the high is taken).

For closes in percent mode the confirmed highs are exactly the peaks of
log(close) with ``scipy.signal.find_peaks`` prominence >= log(1 + r) whose
right-side drop is >= -log(1 - r) (lows mirrored), the first turning point
excepted (it has no preceding leg); the tests check this.

Inputs: bars. Features: direction of the current leg (+1 up, -1 down, 0
undecided), bars_since_extremum, last_extremum_price/_ts/_kind (+1 high, -1
low), confirmation_lag (bars from the extremum to its confirmation),
last_leg_pct and last_leg_bars (the last completed leg, signed), current_leg_pct
(from the last extremum to the leg's running extreme), retrace_pct (close vs
that running extreme), typical_leg (EW mean of |log amplitude| of completed
legs), leg_progress (current |log amplitude| / typical_leg), volatility (EW vol
of log returns).

Prediction, leg exhaustion/continuation: alpha = direction x
tanh(exhaustion_slope x (1 - leg_progress)): a young leg (smaller than the
typical one) is expected to continue, one beyond the typical size to revert.
confidence = min(1, legs / leg_memory) x 1 / (1 + cv) x |alpha|, with cv the EW
coefficient of variation of leg amplitudes (regular legs: trust the rule
more). mu = information_coefficient x alpha x sigma, sigma = volatility x
sqrt(horizon_bars). Nothing is returned before the first confirmed extremum;
the prediction waits for ``min_legs`` completed legs. O(1) per bar.
"""

from __future__ import annotations

import math
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

# Params that change what the exported state means.
_STATE_PARAMS = ("reversal", "reversal_pct", "atr_multiple", "atr_window", "price", "leg_memory", "volatility_window")


class ExtremaParams(ModuleParams):
    reversal: Literal["percent", "atr"] = Field("percent", description="how the minimum reversal is measured")
    reversal_pct: float = Field(1.0, gt=0.0, lt=100.0, description="minimum reversal, percent of the extreme")
    atr_multiple: float = Field(3.0, gt=0.0, description="minimum reversal in ATRs (reversal = 'atr')")
    atr_window: int = Field(14, gt=0, description="bars in the ATR (Wilder smoothing)")
    price: Literal["high_low", "close"] = Field("high_low", description="legs on bar highs/lows, or on closes")
    leg_memory: int = Field(20, gt=1, description="completed legs in the EW leg statistics")
    min_legs: int = Field(3, ge=1, description="completed legs before a prediction is made")
    volatility_window: int = Field(20, gt=1, description="bars in the EW volatility of log returns")
    exhaustion_slope: float = Field(1.5, gt=0.0, description="steepness of alpha in leg progress")
    horizon_bars: int = Field(5, gt=0, description="bars ahead the prediction applies to")
    information_coefficient: float = Field(0.03, ge=0.0, le=1.0, description="mu per unit alpha x sigma")


@dataclass(slots=True)
class _Extremum:
    price: float
    bar: int  # bar number, counted from 1 per symbol
    ts: int
    reach: float  # the reversal that confirms it, in price units, fixed when it was made


@dataclass(slots=True)
class _SymbolState:
    bars: int
    last_close: float
    atr: float
    variance: float  # EW variance of log returns; NaN until the second bar
    direction: int  # +1: up leg running (seeking a high), -1 down leg, 0 undecided
    candidate: _Extremum  # the current leg's running extreme (the running maximum while undecided)
    running_low: _Extremum  # the running minimum while undecided
    last: _Extremum | None = None
    last_kind: int = 0
    confirmation_lag: int = 0
    last_leg_pct: float = math.nan
    last_leg_bars: int = 0
    legs: int = 0
    leg_mean: float = 0.0  # EW mean of |log amplitude|
    leg_square: float = 0.0  # EW mean of its square


class ExtremaModule(AnalysisModule[ExtremaParams]):
    """Online zigzag: confirmed turning points, legs, and a leg exhaustion/continuation view."""

    name = "extrema"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR})
    Params = ExtremaParams
    latency_budget_us = 200.0

    def __init__(self, params: ExtremaParams) -> None:
        super().__init__(params)
        self._atr_alpha = 1.0 / params.atr_window
        self._vol_alpha = 2.0 / (params.volatility_window + 1)
        self._leg_alpha = 2.0 / (params.leg_memory + 1)
        self._fraction = params.reversal_pct / 100.0
        self._state: dict[str, _SymbolState] = {}

    def _extremum(self, price: float, bar: int, ts: int, atr: float) -> _Extremum:
        if self.params.reversal == "percent":
            return _Extremum(price, bar, ts, price * self._fraction)
        return _Extremum(price, bar, ts, self.params.atr_multiple * atr)

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        if self.params.price == "high_low":
            high, low = bar.high, bar.low
        else:
            high = low = bar.close
        state = self._state.get(bar.symbol)
        if state is None:
            atr = bar.high - bar.low
            self._state[bar.symbol] = _SymbolState(
                1,
                bar.close,
                atr,
                math.nan,
                0,
                self._extremum(high, 1, bar.ts, atr),
                self._extremum(low, 1, bar.ts, atr),
            )
            return None
        self._update_volatility(state, bar)
        state.bars += 1
        now = state.bars
        if state.direction == 0:
            self._undecided(state, high, low, bar.ts)
        else:
            candidate = state.candidate
            if state.direction > 0:
                if high > candidate.price:
                    state.candidate = self._extremum(high, now, bar.ts, state.atr)
                elif low <= candidate.price - candidate.reach:
                    self._confirm(state, candidate, 1, self._extremum(low, now, bar.ts, state.atr))
            elif low < candidate.price:
                state.candidate = self._extremum(low, now, bar.ts, state.atr)
            elif high >= candidate.price + candidate.reach:
                self._confirm(state, candidate, -1, self._extremum(high, now, bar.ts, state.atr))
        if state.last is None:
            return None
        return self._output(state, bar)

    def _undecided(self, state: _SymbolState, high: float, low: float, ts: int) -> None:
        now = state.bars
        running_high, running_low = state.candidate, state.running_low
        # An extreme set on this very bar cannot also be confirmed by it.
        top_reversed = running_high.price >= high and low <= running_high.price - running_high.reach
        bottom_reversed = running_low.price <= low and high >= running_low.price + running_low.reach
        # Both at once only when both extremes come from one bar (see the docstring): the high is taken.
        if top_reversed:
            self._confirm(state, running_high, 1, self._extremum(low, now, ts, state.atr))
            return
        if bottom_reversed:
            self._confirm(state, running_low, -1, self._extremum(high, now, ts, state.atr))
            return
        if high > running_high.price:
            state.candidate = self._extremum(high, now, ts, state.atr)
        if low < running_low.price:
            state.running_low = self._extremum(low, now, ts, state.atr)

    def _confirm(self, state: _SymbolState, extremum: _Extremum, kind: int, next_candidate: _Extremum) -> None:
        """``extremum`` (a high if kind = +1) is confirmed on this bar; the opposite leg starts."""
        previous = state.last
        if previous is not None and previous.price > 0.0 and extremum.price > 0.0:
            state.last_leg_pct = extremum.price / previous.price - 1.0
            state.last_leg_bars = extremum.bar - previous.bar
            amplitude = abs(math.log(extremum.price / previous.price))
            if state.legs == 0:
                state.leg_mean, state.leg_square = amplitude, amplitude * amplitude
            else:
                state.leg_mean += self._leg_alpha * (amplitude - state.leg_mean)
                state.leg_square += self._leg_alpha * (amplitude * amplitude - state.leg_square)
            state.legs += 1
        state.last = extremum
        state.last_kind = kind
        state.confirmation_lag = state.bars - extremum.bar
        state.direction = -kind
        state.candidate = next_candidate

    def _update_volatility(self, state: _SymbolState, bar: Bar) -> None:
        previous = state.last_close
        true_range = max(bar.high - bar.low, abs(bar.high - previous), abs(bar.low - previous))
        state.atr += self._atr_alpha * (true_range - state.atr)
        change = math.log(bar.close / previous) if bar.close > 0.0 and previous > 0.0 else 0.0
        squared = change * change
        if math.isnan(state.variance):  # NaN: seed with the first squared return, as pandas ewm(adjust=False)
            state.variance = squared
        else:
            state.variance += self._vol_alpha * (squared - state.variance)
        state.last_close = bar.close

    def _output(self, state: _SymbolState, bar: Bar) -> ModuleOutput:
        params = self.params
        last = state.last
        assert last is not None  # checked by the caller; narrows the type
        candidate = state.candidate
        positive = last.price > 0.0 and candidate.price > 0.0
        current_log = math.log(candidate.price / last.price) if positive else 0.0
        progress = abs(current_log) / state.leg_mean if state.leg_mean > 0.0 else math.nan
        volatility = math.sqrt(state.variance) if state.variance > 0.0 else 0.0
        features = {
            "direction": float(state.direction),
            "bars_since_extremum": float(state.bars - last.bar),
            "last_extremum_price": last.price,
            "last_extremum_ts": float(last.ts),
            "last_extremum_kind": float(state.last_kind),
            "confirmation_lag": float(state.confirmation_lag),
            "last_leg_pct": state.last_leg_pct,
            "last_leg_bars": float(state.last_leg_bars) if state.legs else math.nan,
            "current_leg_pct": math.expm1(current_log),
            "retrace_pct": bar.close / candidate.price - 1.0 if candidate.price > 0.0 else 0.0,
            "typical_leg": state.leg_mean if state.legs else math.nan,
            "leg_progress": progress,
            "volatility": volatility,
        }
        if state.legs < params.min_legs or not volatility > 0.0 or math.isnan(progress):
            return ModuleOutput(prediction=None, features=features)
        alpha = state.direction * math.tanh(params.exhaustion_slope * (1.0 - progress))
        spread = math.sqrt(max(0.0, state.leg_square - state.leg_mean * state.leg_mean))
        regularity = 1.0 / (1.0 + spread / state.leg_mean)
        warm = min(1.0, state.legs / params.leg_memory)
        sigma = volatility * math.sqrt(params.horizon_bars)
        prediction = Prediction(
            mu=params.information_coefficient * alpha * sigma,
            sigma=sigma,
            horizon=params.horizon_bars * bar.interval_ms / 1000.0,
            confidence=min(1.0, warm * regularity * abs(alpha)),
            alpha=alpha,
        )
        return ModuleOutput(prediction=prediction, features=features)

    def export_state(self) -> ModuleState | None:
        symbols = {}
        for symbol, s in self._state.items():
            symbols[symbol] = {
                "bars": s.bars,
                "last_close": s.last_close,
                "atr": s.atr,
                "variance": None if math.isnan(s.variance) else s.variance,
                "direction": s.direction,
                "candidate": _dump(s.candidate),
                "running_low": _dump(s.running_low),
                "last": None if s.last is None else _dump(s.last),
                "last_kind": s.last_kind,
                "confirmation_lag": s.confirmation_lag,
                "last_leg_pct": None if math.isnan(s.last_leg_pct) else s.last_leg_pct,
                "last_leg_bars": s.last_leg_bars,
                "legs": s.legs,
                "leg_mean": s.leg_mean,
                "leg_square": s.leg_square,
            }
        params = {key: getattr(self.params, key) for key in _STATE_PARAMS}
        return ModuleState(self.name, self.version, self.state_version, {"params": params, "symbols": symbols})

    def import_state(self, state: ModuleState) -> bool:
        # Legs cut with another reversal rule or price source are not ours to continue.
        if state.module != self.name or state.state_version != self.state_version:
            return False
        if state.data.get("params") != {key: getattr(self.params, key) for key in _STATE_PARAMS}:
            return False
        self._state = {
            symbol: _SymbolState(
                bars=int(d["bars"]),
                last_close=float(d["last_close"]),
                atr=float(d["atr"]),
                variance=math.nan if d["variance"] is None else float(d["variance"]),
                direction=int(d["direction"]),
                candidate=_load(d["candidate"]),
                running_low=_load(d["running_low"]),
                last=None if d["last"] is None else _load(d["last"]),
                last_kind=int(d["last_kind"]),
                confirmation_lag=int(d["confirmation_lag"]),
                last_leg_pct=math.nan if d["last_leg_pct"] is None else float(d["last_leg_pct"]),
                last_leg_bars=int(d["last_leg_bars"]),
                legs=int(d["legs"]),
                leg_mean=float(d["leg_mean"]),
                leg_square=float(d["leg_square"]),
            )
            for symbol, d in state.data["symbols"].items()
        }
        return True


def _dump(extremum: _Extremum) -> list[float | int]:
    return [extremum.price, extremum.bar, extremum.ts, extremum.reach]


def _load(data: list[float | int]) -> _Extremum:
    return _Extremum(float(data[0]), int(data[1]), int(data[2]), float(data[3]))


MODULE = ExtremaModule
