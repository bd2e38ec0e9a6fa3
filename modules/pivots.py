"""Pivot levels of the previous session, and confirmed swing pivots (Williams fractals).

Levels, from the previous *completed* session's high H, low L and close C
(range R = H - L), as in the floor-trader / Camarilla / Woodie literature
(e.g. Person, "A Complete Guide to Technical Trading Tactics", 2004):

- classic: P = (H + L + C) / 3, R1 = 2P - L, S1 = 2P - H, R2 = P + R,
  S2 = P - R, R3 = H + 2(P - L), S3 = L - 2(H - P);
- fibonacci: P as classic, R/S k = P ± {0.382, 0.618, 1.0} x R;
- camarilla: R/S k = C ± R x 1.1 / {12, 6, 4, 2} (k = 1..4);
- woodie: P = (H + L + 2C) / 4, R1 = 2P - L, S1 = 2P - H, R2 = P + R, S2 = P - R.

Sessions are ``session_ms`` long, aligned to the epoch (UTC midnight for the
daily default) plus ``session_offset_ms``. A bar belongs to the session that
contains its close time ``ts - 1`` (a bar closing exactly at a boundary ends
the old session). The previous session is known to be complete when the
first bar of a new one arrives; its levels apply from that bar on. After a
gap the levels come from the last session that had bars. The session the
module joins midway (its first bar opens after the session began: a daemon
started at 14:00 has not seen the morning) has an incomplete high and low,
so no levels are taken from it unless ``use_partial_session``.

Swing pivots (B. Williams, "Trading Chaos", 1995): a fractal high is a bar
whose high is strictly above the highs of the ``fractal_n`` bars on each side
(lows mirrored), which is exactly ``scipy.signal.argrelextrema(high,
np.greater, order=n)``. It is reported only when confirmed, ``fractal_n``
bars after the fractal bar.

Inputs: bars. Features: every level of every family (``classic_r1``,
``fib_p``, ``camarilla_s4``, ``woodie_r2`` ...), and for the family chosen by
``levels``: distance from the close to the nearest level above/below in
volatility units (ATR, Wilder, or close x EW volatility of log returns),
which level that is (signed ordinal: +k = Rk, -k = Sk, 0 = P; NaN when the
close is beyond the outermost level), level breaks (the close crossed a level
since the previous close) and rejections (the high/low reached a level but
the close stayed on the side it came from) on this bar and in this session,
and the last confirmed fractal high/low, their age in bars and distance.

Prediction (low confidence by design): alpha =
w x (-position) + (1 - w) x tanh(memory), clipped to [-1, 1], where
position = (d_below - d_above) / (d_below + d_above) is +1 at the level above,
-1 at the level below and 0 beyond the outermost level (so -position reverts
towards the middle of the two levels bracketing the close), and memory is an
exponentially decaying sum of breaks up - breaks down + support rejections -
resistance rejections (breakouts continue, rejections revert).
mu = information_coefficient x alpha x sigma, sigma = EW volatility x
sqrt(horizon_bars), confidence = max_confidence x |alpha|. Nothing is
returned before the first session has completed.

Complexity: O(levels + fractal_n) per bar; level tables are rebuilt once per session.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

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

LevelFamily = Literal["classic", "fibonacci", "camarilla", "woodie"]
_NAN = math.nan
# Feature-name prefix of each family.
_PREFIX = {"classic": "classic", "fibonacci": "fib", "camarilla": "camarilla", "woodie": "woodie"}
# Fields of the params that change what the state means.
_STATE_PARAMS = (
    "session_ms",
    "session_offset_ms",
    "levels",
    "fractal_n",
    "volatility",
    "volatility_window",
    "signal_decay_bars",
)


class PivotsParams(ModuleParams):
    session_ms: int = Field(86_400_000, gt=0, description="session length in ms (default one UTC day)")
    session_offset_ms: int = Field(0, ge=0, description="session start after the epoch-aligned boundary, in ms")
    levels: LevelFamily = Field("classic", description="level family used for distances, breaks and the alpha")
    fractal_n: int = Field(2, ge=1, le=50, description="bars on each side of a Williams fractal")
    volatility: Literal["atr", "ew_vol"] = Field("atr", description="unit of distances: Wilder ATR or close x EW vol")
    volatility_window: int = Field(14, gt=1, description="bars in the ATR (Wilder) and the EW volatility")
    signal_decay_bars: float = Field(5.0, gt=0.0, description="e-folding time of the break/rejection memory, bars")
    mean_reversion_weight: float = Field(0.5, ge=0.0, le=1.0, description="weight of the position term in alpha")
    max_confidence: float = Field(0.3, gt=0.0, le=1.0, description="confidence at |alpha| = 1 (kept low)")
    horizon_bars: int = Field(5, gt=0, description="bars ahead the prediction applies to")
    information_coefficient: float = Field(0.02, ge=0.0, le=1.0, description="mu per unit alpha x sigma")
    use_partial_session: bool = Field(
        False, description="take levels from the session the module joined midway (its high/low may be incomplete)"
    )

    @model_validator(mode="after")
    def _offset_within_session(self) -> PivotsParams:
        if self.session_offset_ms >= self.session_ms:
            raise ValueError(f"session_offset_ms ({self.session_offset_ms}) must be < session_ms ({self.session_ms})")
        return self


def pivot_levels(high: float, low: float, close: float) -> dict[str, list[tuple[int, float]]]:
    """Every family's levels as (signed ordinal, price), lowest first."""
    span = high - low
    pivot = (high + low + close) / 3.0
    woodie = (high + low + 2.0 * close) / 4.0
    levels = {
        "classic": [
            (-3, low - 2.0 * (high - pivot)),
            (-2, pivot - span),
            (-1, 2.0 * pivot - high),
            (0, pivot),
            (1, 2.0 * pivot - low),
            (2, pivot + span),
            (3, high + 2.0 * (pivot - low)),
        ],
        "fibonacci": [
            (-3, pivot - span),
            (-2, pivot - 0.618 * span),
            (-1, pivot - 0.382 * span),
            (0, pivot),
            (1, pivot + 0.382 * span),
            (2, pivot + 0.618 * span),
            (3, pivot + span),
        ],
        "camarilla": [(-k, close - span * 1.1 / d) for k, d in ((4, 2), (3, 4), (2, 6), (1, 12))]
        + [(k, close + span * 1.1 / d) for k, d in ((1, 12), (2, 6), (3, 4), (4, 2))],
        "woodie": [
            (-2, woodie - span),
            (-1, 2.0 * woodie - high),
            (0, woodie),
            (1, 2.0 * woodie - low),
            (2, woodie + span),
        ],
    }
    # Bad bars (close outside [low, high]) can misorder levels; sorting keeps bisect valid.
    return {family: sorted(pairs, key=lambda pair: pair[1]) for family, pairs in levels.items()}


def _level_name(ordinal: int) -> str:
    return "p" if ordinal == 0 else f"r{ordinal}" if ordinal > 0 else f"s{-ordinal}"


@dataclass(slots=True)
class _LevelTable:
    """The chosen family's levels for the current session, plus all families as features."""

    prices: list[float]
    ordinals: list[int]
    features: dict[str, float]

    @classmethod
    def build(cls, family: LevelFamily, high: float, low: float, close: float) -> _LevelTable:
        levels = pivot_levels(high, low, close)
        features = {
            f"{_PREFIX[name]}_{_level_name(ordinal)}": price
            for name, pairs in levels.items()
            for ordinal, price in pairs
        }
        chosen = levels[family]
        return cls([price for _, price in chosen], [ordinal for ordinal, _ in chosen], features)


@dataclass(slots=True)
class _SymbolState:
    session: int
    session_high: float
    session_low: float
    session_close: float
    last_close: float
    atr: float
    variance: float  # EW variance of log returns; NaN until the second bar
    bars: int = 1
    previous_session: tuple[float, float, float] | None = None  # (H, L, C) the levels come from
    memory: float = 0.0
    session_counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # breaks up/down, rejections R/S
    window: deque[tuple[float, float, int]] = field(default_factory=deque)  # (high, low, ts) of the last 2n+1 bars
    fractal_high: tuple[float, int, int] | None = None  # (price, bar number, ts)
    fractal_low: tuple[float, int, int] | None = None
    table: _LevelTable | None = None  # derived from previous_session; not exported
    partial: bool = False  # the current session was joined midway: its H/L/C are incomplete


class PivotsModule(AnalysisModule[PivotsParams]):
    """Previous-session pivot levels and confirmed fractals: a mild reversion/breakout view."""

    name = "pivots"
    version = "1.0.0"
    consumes = frozenset({EventKind.BAR})
    Params = PivotsParams
    latency_budget_us = 250.0

    def __init__(self, params: PivotsParams) -> None:
        super().__init__(params)
        self._atr_alpha = 1.0 / params.volatility_window  # Wilder's smoothing
        self._vol_alpha = 2.0 / (params.volatility_window + 1)
        self._decay = math.exp(-1.0 / params.signal_decay_bars)
        self._state: dict[str, _SymbolState] = {}

    def _session_of(self, ts: int) -> int:
        return (ts - 1 - self.params.session_offset_ms) // self.params.session_ms

    def _session_start(self, session: int) -> int:
        return session * self.params.session_ms + self.params.session_offset_ms

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        params = self.params
        state = self._state.get(bar.symbol)
        session = self._session_of(bar.ts)
        high, low, close = bar.high, bar.low, bar.close
        if state is None:
            window: deque[tuple[float, float, int]] = deque(maxlen=2 * params.fractal_n + 1)
            window.append((high, low, bar.ts))
            partial = bar.open_ts > self._session_start(session)
            self._state[bar.symbol] = _SymbolState(
                session, high, low, close, close, high - low, _NAN, window=window, partial=partial
            )
            return None
        if session != state.session:
            if not state.partial or params.use_partial_session:
                state.previous_session = (state.session_high, state.session_low, state.session_close)
                state.table = _LevelTable.build(params.levels, *state.previous_session)
            state.partial = False
            state.session_counts = [0, 0, 0, 0]
            state.session, state.session_high, state.session_low = session, high, low
        else:
            state.session_high = max(state.session_high, high)
            state.session_low = min(state.session_low, low)
        state.session_close = close
        previous_close = state.last_close
        self._update_volatility(state, high, low, close, previous_close)
        state.last_close = close
        state.bars += 1
        self._update_fractals(state, high, low, bar.ts)
        table = state.table
        if table is None:
            return None
        return self._output(state, table, bar, previous_close)

    def _update_volatility(self, state: _SymbolState, high: float, low: float, close: float, previous: float) -> None:
        true_range = max(high - low, abs(high - previous), abs(low - previous))
        state.atr += self._atr_alpha * (true_range - state.atr)
        change = math.log(close / previous) if close > 0.0 and previous > 0.0 else 0.0
        squared = change * change
        if math.isnan(state.variance):  # NaN: seed with the first squared return, as pandas ewm(adjust=False)
            state.variance = squared
        else:
            state.variance += self._vol_alpha * (squared - state.variance)

    def _update_fractals(self, state: _SymbolState, high: float, low: float, ts: int) -> None:
        window = state.window
        window.append((high, low, ts))
        n = self.params.fractal_n
        if len(window) < 2 * n + 1:
            return
        center_high, center_low, center_ts = window[n]
        is_high = is_low = True
        for index, (other_high, other_low, _) in enumerate(window):
            if index == n:
                continue
            is_high = is_high and center_high > other_high
            is_low = is_low and center_low < other_low
        center_bar = state.bars - n
        if is_high:
            state.fractal_high = (center_high, center_bar, center_ts)
        if is_low:
            state.fractal_low = (center_low, center_bar, center_ts)

    def _output(self, state: _SymbolState, table: _LevelTable, bar: Bar, previous_close: float) -> ModuleOutput:
        params = self.params
        close, prices = bar.close, table.prices
        volatility = math.sqrt(state.variance) if state.variance > 0.0 else 0.0
        unit = state.atr if params.volatility == "atr" else close * volatility
        scale = 1.0 / unit if unit > 0.0 else _NAN
        above_index = bisect_right(prices, close)  # first level strictly above the close
        has_above, has_below = above_index < len(prices), above_index > 0
        dist_above = (prices[above_index] - close) * scale if has_above else _NAN
        dist_below = (close - prices[above_index - 1]) * scale if has_below else _NAN

        breaks_up = breaks_down = rejections_resistance = rejections_support = 0
        if close > previous_close:
            breaks_up = above_index - bisect_right(prices, previous_close)
        elif close < previous_close:
            breaks_down = bisect_left(prices, previous_close) - bisect_left(prices, close)
        near_side, far_side = max(close, previous_close), min(close, previous_close)
        if bar.high > near_side:
            rejections_resistance = bisect_right(prices, bar.high) - bisect_right(prices, near_side)
        if bar.low < far_side:
            rejections_support = bisect_left(prices, far_side) - bisect_left(prices, bar.low)
        counts = state.session_counts
        counts[0] += breaks_up
        counts[1] += breaks_down
        counts[2] += rejections_resistance
        counts[3] += rejections_support
        state.memory = state.memory * self._decay + (
            breaks_up - breaks_down + rejections_support - rejections_resistance
        )

        span = dist_above + dist_below
        position = (dist_below - dist_above) / span if span > 0.0 else 0.0  # NaN span (edge) compares False
        features = dict(table.features)
        features.update(
            volatility_unit=unit,
            dist_above=dist_above,
            dist_below=dist_below,
            level_above=float(table.ordinals[above_index]) if has_above else _NAN,
            level_below=float(table.ordinals[above_index - 1]) if has_below else _NAN,
            position=position,
            breaks_up=float(breaks_up),
            breaks_down=float(breaks_down),
            rejections_resistance=float(rejections_resistance),
            rejections_support=float(rejections_support),
            session_breaks_up=float(counts[0]),
            session_breaks_down=float(counts[1]),
            session_rejections_resistance=float(counts[2]),
            session_rejections_support=float(counts[3]),
            signal_memory=state.memory,
            fractal_lag=float(params.fractal_n),
        )
        for side, fractal in (("high", state.fractal_high), ("low", state.fractal_low)):
            if fractal is None:
                features[f"fractal_{side}"] = features[f"fractal_{side}_age"] = features[f"dist_fractal_{side}"] = _NAN
                features[f"fractal_{side}_ts"] = _NAN
            else:
                price, bar_number, ts = fractal
                features[f"fractal_{side}"] = price
                features[f"fractal_{side}_ts"] = float(ts)
                features[f"fractal_{side}_age"] = float(state.bars - bar_number)
                features[f"dist_fractal_{side}"] = (price - close) * scale

        if state.bars <= params.volatility_window or not volatility > 0.0 or not unit > 0.0:
            return ModuleOutput(prediction=None, features=features)
        weight = params.mean_reversion_weight
        alpha = max(-1.0, min(1.0, -weight * position + (1.0 - weight) * math.tanh(state.memory)))
        sigma = volatility * math.sqrt(params.horizon_bars)
        prediction = Prediction(
            mu=params.information_coefficient * alpha * sigma,
            sigma=sigma,
            horizon=params.horizon_bars * bar.interval_ms / 1000.0,
            confidence=params.max_confidence * abs(alpha),
            alpha=alpha,
        )
        return ModuleOutput(prediction=prediction, features=features)

    def export_state(self) -> ModuleState | None:
        symbols = {}
        for symbol, s in self._state.items():
            symbols[symbol] = {
                "session": s.session,
                "session_hlc": [s.session_high, s.session_low, s.session_close],
                "last_close": s.last_close,
                "atr": s.atr,
                "variance": None if math.isnan(s.variance) else s.variance,
                "bars": s.bars,
                "previous_session": None if s.previous_session is None else list(s.previous_session),
                "memory": s.memory,
                "session_counts": list(s.session_counts),
                "window": [list(item) for item in s.window],
                "fractal_high": None if s.fractal_high is None else list(s.fractal_high),
                "fractal_low": None if s.fractal_low is None else list(s.fractal_low),
                "partial": s.partial,
            }
        params = {key: getattr(self.params, key) for key in _STATE_PARAMS}
        return ModuleState(self.name, self.version, self.state_version, {"params": params, "symbols": symbols})

    def import_state(self, state: ModuleState) -> bool:
        # Sessions, windows and smoothing built with other settings would be wrong for ours.
        if state.module != self.name or state.state_version != self.state_version:
            return False
        if state.data.get("params") != {key: getattr(self.params, key) for key in _STATE_PARAMS}:
            return False
        restored: dict[str, _SymbolState] = {}
        for symbol, d in state.data["symbols"].items():
            high, low, close = (float(x) for x in d["session_hlc"])
            previous = None if d["previous_session"] is None else tuple(float(x) for x in d["previous_session"])
            window: deque[tuple[float, float, int]] = deque(maxlen=2 * self.params.fractal_n + 1)
            window.extend((float(h), float(lo), int(ts)) for h, lo, ts in d["window"])
            restored[symbol] = _SymbolState(
                session=int(d["session"]),
                session_high=high,
                session_low=low,
                session_close=close,
                last_close=float(d["last_close"]),
                atr=float(d["atr"]),
                variance=_NAN if d["variance"] is None else float(d["variance"]),
                bars=int(d["bars"]),
                previous_session=None if previous is None else (previous[0], previous[1], previous[2]),
                memory=float(d["memory"]),
                session_counts=[int(x) for x in d["session_counts"]],
                window=window,
                fractal_high=_fractal(d["fractal_high"]),
                fractal_low=_fractal(d["fractal_low"]),
                partial=bool(d.get("partial", False)),  # states written before the flag existed: complete
            )
            if previous is not None:
                restored[symbol].table = _LevelTable.build(self.params.levels, previous[0], previous[1], previous[2])
        self._state = restored
        return True


def _fractal(data: list[float] | None) -> tuple[float, int, int] | None:
    return None if data is None else (float(data[0]), int(data[1]), int(data[2]))


MODULE = PivotsModule
