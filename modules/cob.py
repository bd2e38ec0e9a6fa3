"""Consolidated order book (COB): touch, depth and shape of level-2 books, and
an online model of what the book imbalance says about the next few seconds.

Computed per book update, per symbol (best level first on each side):

- ``spread`` = ask - bid, ``spread_bps`` = spread / mid x 1e4, ``mid``.
- ``microprice``: Stoikov's weighted mid at the touch,
  (bid x ask_size + ask x bid_size) / (bid_size + ask_size)
  (S. Stoikov, "The micro-price", Quantitative Finance 18(12), 2018).
- ``weighted_mid``: the same cross-weighting over ``weighted_levels`` levels:
  (VWAP_bid x Q_ask + VWAP_ask x Q_bid) / (Q_bid + Q_ask), with Q the summed
  sizes; it equals ``microprice`` at one level.
- ``stoikov_microprice`` = mid + g1(I), with ``stoikov_adjustment_bps`` =
  g1 / mid x 1e4: the first-order micro-price of Stoikov (2018),
  g1(I) = E[M(tau1) - M(t) | I(t)], the expected size of the next mid change
  given the touch imbalance I = Q_bid / (Q_bid + Q_ask) (in
  ``microprice_buckets`` equal buckets). Estimated online and without
  look-ahead: every update waits in its bucket until the mid next changes,
  then enters that bucket's EW mean (half-life ``microprice_halflife``
  observations). 0 (the mid) until a bucket has ``microprice_min_weight``.
  The paper also conditions on the spread and sums the higher-order terms
  g2, g3, ...; this is g1 on the imbalance alone.
- ``imbalance_1`` / ``_5`` / ``_10``: (Q_bid - Q_ask) / (Q_bid + Q_ask) over
  the first 1, 5, 10 levels (all present levels if the book is shallower).
- ``depth_bid`` / ``depth_ask``: size resting within ``depth_bps`` of mid.
- ``slope_bid`` / ``slope_ask``: least-squares slope of cumulative size
  against distance from mid, in size per basis point (how fast liquidity
  builds up away from the touch).
- ``imbalance_beta`` / ``imbalance_r2``: the model below.

Prediction: an exponentially weighted regression through the origin of the
realised mid return over ``horizon_ms`` on the imbalance over
``signal_levels`` levels. The pair (imbalance at t, mid(t + h) / mid(t) - 1)
enters the fit only at the first update at or after t + h, with mid(t + h)
the mid in force at t + h, so nothing is looked ahead. Then
mu = beta x imbalance, sigma = EW residual standard deviation,
horizon = horizon_ms / 1000, alpha = tanh(mu / sigma x alpha_gain),
confidence = |EW correlation| (sqrt of the uncentred R^2) times a warm-up
ramp over the number of resolved pairs. No prediction before ``min_samples``.

Inputs: book updates. Empty sides are skipped; crossed books are reported as
they are. Complexity: per update, the signal's ``signal_levels`` sizes and
O(1) amortised for the fit; the features above are ``LazyFeatures``,
computed (O(book depth)) only for updates whose features someone reads.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from itertools import accumulate
from math import sqrt, tanh
from operator import mul, neg

from pydantic import Field

from orchestrator import (
    AnalysisModule,
    BookUpdate,
    EventKind,
    LazyFeatures,
    ModuleContext,
    ModuleOutput,
    ModuleParams,
    ModuleState,
    Prediction,
)

# A level exactly at the depth boundary counts as inside it, whatever the
# rounding of mid x bps x 1e-4.
_BOUNDARY_TOLERANCE = 1.0 + 1e-9
# Parameters that change the meaning of the exported fit.
_STATE_PARAMS = ("signal_levels", "horizon_ms", "halflife")
# Parameters that change the meaning of the micro-price tables (absent from
# states of versions before 1.2.0, which start the tables cold).
_MICROPRICE_PARAMS = ("microprice_buckets", "microprice_halflife")


class CobParams(ModuleParams):
    weighted_levels: int = Field(5, ge=1, le=1000, description="levels per side in the size-weighted mid")
    depth_bps: float = Field(10.0, gt=0.0, le=10_000.0, description="distance from mid (bps) counted in depth_bid/ask")
    signal_levels: int = Field(5, ge=1, le=1000, description="levels of the imbalance the prediction regresses on")
    horizon_ms: int = Field(1000, gt=0, description="prediction horizon in milliseconds")
    halflife: float = Field(2000.0, gt=0.0, description="half-life of the EW regression, in resolved pairs")
    min_samples: int = Field(200, ge=1, description="resolved pairs before the first prediction")
    alpha_gain: float = Field(2.0, gt=0.0, description="k in alpha = tanh(mu / sigma x k)")
    microprice_buckets: int = Field(10, ge=1, le=100, description="touch-imbalance buckets of the Stoikov micro-price")
    microprice_halflife: float = Field(
        5000.0, gt=0.0, description="half-life of each bucket's mean next mid change, in observations"
    )
    microprice_min_weight: float = Field(
        20.0, ge=0.0, description="observations a bucket needs before its adjustment is used"
    )


@dataclass(slots=True)
class _SymbolState:
    last_mid: float = math.nan
    pending: deque[tuple[int, float, float]] = field(default_factory=deque)  # (ts, mid, imbalance)
    weight: float = 0.0
    sum_xx: float = 0.0
    sum_xy: float = 0.0
    sum_yy: float = 0.0
    samples: int = 0
    # The fit's summary, recomputed only when a pair is resolved.
    beta: float = 0.0
    r2: float = 0.0
    sigma: float = 0.0
    confidence: float = 0.0
    # Stoikov micro-price: per imbalance bucket, updates waiting for the next
    # mid change, and the EW sum and weight of the changes that followed.
    touch_pending: list[int] = field(default_factory=list)
    touch_sum: list[float] = field(default_factory=list)
    touch_weight: list[float] = field(default_factory=list)
    touched: list[int] = field(default_factory=list)  # buckets with updates waiting, in no order


def _slope(prices: tuple[float, ...], cumulative: list[float]) -> float:
    """Least-squares slope of cumulative size against price (0 for a single price)."""
    mean = sum(prices) / len(prices)
    centred = [p - mean for p in prices]
    spread_of_prices = sum(map(mul, centred, centred))
    return sum(map(mul, centred, cumulative)) / spread_of_prices if spread_of_prices > 0.0 else 0.0


def _imbalance(bid_sizes: tuple[float, ...], ask_sizes: tuple[float, ...], levels: int) -> float:
    """(Q_bid - Q_ask) / (Q_bid + Q_ask) over the first ``levels`` levels (all, if fewer)."""
    bid = sum(bid_sizes[:levels])
    ask = sum(ask_sizes[:levels])
    total = bid + ask
    return (bid - ask) / total if total > 0.0 else 0.0


class CobModule(AnalysisModule[CobParams]):
    """Spread, micro-price, imbalance, depth and slope of L2 books; imbalance-driven short-horizon view."""

    name = "cob"
    version = "1.2.0"
    consumes = frozenset({EventKind.BOOK})
    Params = CobParams
    latency_budget_us = 100.0

    def __init__(self, params: CobParams) -> None:
        super().__init__(params)
        self._decay = math.exp(-math.log(2.0) / params.halflife)
        # Hot-path copies of the parameters: plain attributes, read on every update.
        self._weighted_levels = params.weighted_levels
        self._signal_levels = params.signal_levels
        self._horizon_ms = params.horizon_ms
        self._horizon_s = params.horizon_ms / 1000.0
        self._min_samples = params.min_samples
        self._alpha_gain = params.alpha_gain
        # Confidence ramps up over the first 2 x min_samples resolved pairs.
        self._inverse_ramp = 1.0 / (2.0 * params.min_samples)
        self._bps_reach = params.depth_bps * 1e-4 * _BOUNDARY_TOLERANCE
        self._buckets = params.microprice_buckets
        self._touch_decay = math.exp(-math.log(2.0) / params.microprice_halflife)
        self._touch_min_weight = params.microprice_min_weight
        self._state: dict[str, _SymbolState] = {}

    def on_book(self, book: BookUpdate, ctx: ModuleContext) -> ModuleOutput | None:
        bid_prices, ask_prices = book.bid_prices, book.ask_prices
        if not bid_prices or not ask_prices:
            return None
        state = self._state.get(book.symbol)
        if state is None:
            state = self._state[book.symbol] = self._new_state()
        mid = 0.5 * (bid_prices[0] + ask_prices[0])
        if not mid > 0.0:
            return None
        # Only the signal is needed now; the other features are computed if and when they are read.
        levels = self._signal_levels
        bid = sum(book.bid_sizes[:levels])
        ask = sum(book.ask_sizes[:levels])
        total = bid + ask
        signal = (bid - ask) / total if total > 0.0 else 0.0

        # Stoikov's g1: updates since the last mid change learn the change that ended their wait.
        touch_pending = state.touch_pending
        if mid != state.last_mid and state.touched:
            self._resolve_touch(state, mid - state.last_mid)
        bid_top = book.bid_sizes[0]
        top = bid_top + book.ask_sizes[0]
        buckets = self._buckets
        bucket = int(bid_top / top * buckets) if top > 0.0 else buckets // 2
        if bucket >= buckets:
            bucket = buckets - 1
        count = touch_pending[bucket]
        if not count:
            state.touched.append(bucket)
        touch_pending[bucket] = count + 1
        weight_here = state.touch_weight[bucket]
        usable = weight_here >= self._touch_min_weight and weight_here > 0.0
        adjustment = state.touch_sum[bucket] / weight_here if usable else 0.0

        now = book.ts
        pending = state.pending
        horizon = self._horizon_ms
        if pending and pending[0][0] + horizon <= now:
            # Fit the pairs whose horizon has passed: one that ended before ``now`` ended
            # under the previous mid, one ending exactly now, under this one. Inline
            # (it runs on almost every update), with the sums in locals until written back.
            decay, last_mid = self._decay, state.last_mid
            weight, sum_xx, sum_xy, sum_yy = state.weight, state.sum_xx, state.sum_xy, state.sum_yy
            resolved = 0
            while pending and pending[0][0] + horizon <= now:
                start, start_mid, x = pending.popleft()
                y = (last_mid if start + horizon < now else mid) / start_mid - 1.0
                weight = decay * weight + 1.0
                sum_xx = decay * sum_xx + x * x
                sum_xy = decay * sum_xy + x * y
                sum_yy = decay * sum_yy + y * y
                resolved += 1
            state.weight, state.sum_xx, state.sum_xy, state.sum_yy = weight, sum_xx, sum_xy, sum_yy
            state.samples += resolved
            self._refit(state)
        pending.append((now, mid, signal))
        state.last_mid = mid
        features = LazyFeatures(self._features, book, mid, state.beta, state.r2, adjustment)
        sigma = state.sigma
        if state.samples < self._min_samples or sigma <= 0.0:
            return ModuleOutput(None, features)
        mu = state.beta * signal
        alpha = tanh(mu / sigma * self._alpha_gain)
        # Positional: this runs on every update, and keyword passing costs a little each time.
        return ModuleOutput(Prediction(mu, sigma, self._horizon_s, state.confidence, alpha), features)

    def _new_state(self) -> _SymbolState:
        buckets = self._buckets
        return _SymbolState(touch_pending=[0] * buckets, touch_sum=[0.0] * buckets, touch_weight=[0.0] * buckets)

    def _resolve_touch(self, state: _SymbolState, change: float) -> None:
        """The ``count`` updates waiting in a bucket all saw this ``change``: an
        exact EW update with count equal observations (weights decay**j, j < count)."""
        decay = self._touch_decay
        sums, weights, pending = state.touch_sum, state.touch_weight, state.touch_pending
        for bucket in state.touched:
            kept = decay ** pending[bucket]
            added = (1.0 - kept) / (1.0 - decay)
            sums[bucket] = kept * sums[bucket] + added * change
            weights[bucket] = kept * weights[bucket] + added
            pending[bucket] = 0
        state.touched.clear()

    def _features(self, book: BookUpdate, mid: float, beta: float, r2: float, adjustment: float) -> dict[str, float]:
        """The named features of one update, from the update and the fit it saw."""
        bid_prices, ask_prices = book.bid_prices, book.ask_prices
        bid_sizes, ask_sizes = book.bid_sizes, book.ask_sizes
        bid_cum = list(accumulate(bid_sizes))
        ask_cum = list(accumulate(ask_sizes))
        bid_top, ask_top = bid_sizes[0], ask_sizes[0]
        top = bid_top + ask_top
        microprice = (bid_prices[0] * ask_top + ask_prices[0] * bid_top) / top if top > 0.0 else mid
        levels = self._weighted_levels
        bid_depth = bid_cum[min(levels, len(bid_cum)) - 1]
        ask_depth = ask_cum[min(levels, len(ask_cum)) - 1]
        if bid_depth > 0.0 and ask_depth > 0.0:
            # map() stops at the shorter input: the price prefix bounds the levels.
            bid_vwap = sum(map(mul, bid_prices[:levels], bid_sizes)) / bid_depth
            ask_vwap = sum(map(mul, ask_prices[:levels], ask_sizes)) / ask_depth
            weighted_mid = (bid_vwap * ask_depth + ask_vwap * bid_depth) / (bid_depth + ask_depth)
        else:
            weighted_mid = microprice
        per_bp = mid * 1e-4
        # Distance from mid is mid - price on the bid side: its slope's sign flips.
        slope_bid = -_slope(bid_prices, bid_cum) * per_bp
        slope_ask = _slope(ask_prices, ask_cum) * per_bp
        spread = ask_prices[0] - bid_prices[0]
        reach = mid * self._bps_reach
        # Bids are sorted descending: search them through their negation.
        within_bid = bisect_right(bid_prices, reach - mid, key=neg)
        within_ask = bisect_right(ask_prices, mid + reach)
        return {
            "mid": mid,
            "spread": spread,
            "spread_bps": spread / mid * 1e4,
            "microprice": microprice,
            "weighted_mid": weighted_mid,
            "stoikov_microprice": mid + adjustment,
            "stoikov_adjustment_bps": adjustment / mid * 1e4,
            "imbalance_1": _imbalance(bid_sizes, ask_sizes, 1),
            "imbalance_5": _imbalance(bid_sizes, ask_sizes, 5),
            "imbalance_10": _imbalance(bid_sizes, ask_sizes, 10),
            "depth_bid": bid_cum[within_bid - 1] if within_bid else 0.0,
            "depth_ask": ask_cum[within_ask - 1] if within_ask else 0.0,
            "slope_bid": slope_bid,
            "slope_ask": slope_ask,
            "imbalance_beta": beta,
            "imbalance_r2": r2,
        }

    def _refit(self, state: _SymbolState) -> None:
        """beta, R^2, residual sigma and confidence of the current sums."""
        sum_xx, sum_xy, sum_yy = state.sum_xx, state.sum_xy, state.sum_yy
        if sum_xx <= 0.0 or sum_yy <= 0.0:
            state.beta = state.r2 = state.sigma = state.confidence = 0.0
            return
        beta = state.beta = sum_xy / sum_xx
        r2 = sum_xy * sum_xy / (sum_xx * sum_yy)
        r2 = state.r2 = r2 if r2 < 1.0 else 1.0
        # Cauchy-Schwarz keeps the residual sum >= 0; rounding may not.
        weight = state.weight
        residual = (sum_yy - beta * sum_xy) / weight
        state.sigma = sqrt(residual) if residual > 0.0 else sqrt(sum_yy / weight)
        ramp = state.samples * self._inverse_ramp
        state.confidence = sqrt(r2) * (ramp if ramp < 1.0 else 1.0)

    def export_state(self) -> ModuleState | None:
        symbols = {
            symbol: {
                "last_mid": s.last_mid,
                "pending": [list(item) for item in s.pending],
                "fit": [s.weight, s.sum_xx, s.sum_xy, s.sum_yy],
                "samples": s.samples,
                "touch": [s.touch_pending, s.touch_sum, s.touch_weight],
            }
            for symbol, s in self._state.items()
        }
        return ModuleState(
            self.name, self.version, self.state_version, {"params": self.params.model_dump(), "symbols": symbols}
        )

    def import_state(self, state: ModuleState) -> bool:
        # A fit made for another horizon, signal depth or half-life would mislead ours: start cold.
        if state.module != self.name or state.state_version != self.state_version:
            return False
        theirs = state.data.get("params", {})
        if any(theirs.get(key) != getattr(self.params, key) for key in _STATE_PARAMS):
            return False
        # Micro-price tables of other buckets or half-life (or none, before 1.2.0) start cold; the fit stays.
        tables_fit = all(theirs.get(key) == getattr(self.params, key) for key in _MICROPRICE_PARAMS)
        restored: dict[str, _SymbolState] = {}
        for symbol, data in state.data["symbols"].items():
            weight, sum_xx, sum_xy, sum_yy = (float(v) for v in data["fit"])
            revived = restored[symbol] = self._new_state()
            revived.last_mid = float(data["last_mid"])
            revived.pending = deque((int(ts), float(mid), float(x)) for ts, mid, x in data["pending"])
            revived.weight, revived.sum_xx, revived.sum_xy, revived.sum_yy = weight, sum_xx, sum_xy, sum_yy
            revived.samples = int(data["samples"])
            touch = data.get("touch")
            if tables_fit and touch is not None and all(len(column) == self._buckets for column in touch):
                pending, sums, weights = touch
                revived.touch_pending = [int(v) for v in pending]
                revived.touch_sum = [float(v) for v in sums]
                revived.touch_weight = [float(v) for v in weights]
                revived.touched = [bucket for bucket, count in enumerate(revived.touch_pending) if count]
            self._refit(revived)
        self._state = restored
        return True


MODULE = CobModule
