"""Market microstructure: order flow, toxicity, price impact and realised spread.

Per symbol, from trades and level-2 books (and from bars when those are all there is):

- ``trade_imbalance``: EW of signed trade volume / EW of volume, in [-1, 1]. The sign is
  the aggressor side, or the tick rule (Lee & Ready 1991) when the side is unknown or
  ``classification`` is "tick".
- ``ofi`` / ``ofi_normalized``: order-flow imbalance of Cont, Kukanov & Stoikov, "The
  price impact of order book events" (J. Fin. Econometrics 12(1), 2014): per book update
  e_n = 1{Pb_n >= Pb_n-1} qb_n - 1{Pb_n <= Pb_n-1} qb_n-1
        - 1{Pa_n <= Pa_n-1} qa_n + 1{Pa_n >= Pa_n-1} qa_n-1,
  summed over the last ``ofi_window_ms``; normalised by the mean touch depth
  (qb + qa) / 2 over the same updates.
- ``vpin``: Easley, López de Prado & O'Hara, "Flow toxicity and liquidity in a
  high-frequency world" (RFS 25(5), 2012): volume is cut into buckets of a fixed size V;
  VPIN = sum |V_buy - V_sell| / (n V) over the last ``vpin_buckets`` full buckets, kept
  as a running sum. V is ``bucket_volume`` or, per symbol, ``inputs_per_bucket`` x the
  mean size of its first ``calibration_inputs`` trades (or bars), then fixed.
- ``kyle_lambda``: EW regression through the origin of the mid change between two book
  updates on the signed volume traded between them (Kyle 1985).
- ``realized_spread_bps``: EW mean of 2 x side x (price - mid(t + delta)) / mid(t)
  x 1e4, each trade evaluated at the first book update at or after
  t + ``realized_spread_ms`` with the mid in force at t + delta: no look-ahead.
- ``has_trades`` / ``has_books``: 1 when that input arrived within ``stale_ms``, else 0
  and the features it feeds are 0.

With bars only, each bar is one input with the signed-volume proxy
clip((close - open) / (high - low), -1, 1) x volume, feeding trade_imbalance and
VPIN (as a bulk buy fraction); bars are ignored while trades are fresh.

Prediction: each signal present (ofi_normalized, trade_imbalance) in units of its own EW
root mean square (half-life ``vol_halflife`` updates), averaged, gives z;
alpha = tanh(z / z_scale); sigma = EW volatility of the mid per second (from book
updates; from bars without books) over ``horizon_ms``; mu = information_coefficient
x alpha x sigma; confidence = |alpha| x warm-up x max(0, 1 - toxicity_penalty x VPIN)
x missing_input_discount per missing input kind. O(1) amortised per event.

When the view is published: on every book update, and on every trade or bar while books
are stale (a trades-only or bars-only feed). While books are fresh a trade updates the
flow state and its scale, and the next book update (a few hundred milliseconds later at
most on a live venue) publishes the view with it: OFI is defined per book update, and a
busy market's every print would otherwise re-run fusion for a view that moved by one
trade.

VPIN classifies volume by the trade's side (aggressor or tick rule), not by the bulk
volume classification of the paper's later versions; with bars only the bar's shape
gives the bulk buy fraction.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from math import sqrt, tanh
from typing import Literal

from pydantic import Field

from orchestrator import (
    AnalysisModule,
    Bar,
    BookUpdate,
    EventKind,
    ModuleContext,
    ModuleOutput,
    ModuleParams,
    ModuleState,
    Prediction,
    Trade,
)

_NEVER = -(2**62)  # the time of an input never seen
# Parameters that shape the exported state: another value makes it wrong.
_STATE_PARAMS = (
    "ofi_window_ms", "flow_halflife", "classification", "bucket_volume", "calibration_inputs", "inputs_per_bucket",
    "vpin_buckets", "lambda_halflife", "realized_spread_ms", "spread_halflife", "vol_halflife", "max_pending",
)  # fmt: skip


class MicrostructureParams(ModuleParams):
    horizon_ms: int = Field(5000, gt=0, description="prediction horizon in milliseconds")
    ofi_window_ms: int = Field(5000, gt=0, description="window over which OFI is summed")
    flow_halflife: float = Field(10.0, gt=0.0, description="half-life of trade_imbalance, in trades (or bars)")
    classification: Literal["aggressor", "tick"] = Field(
        "aggressor", description="trade sign: the aggressor side (tick rule when unknown), or always the tick rule"
    )
    bucket_volume: float | None = Field(None, gt=0.0, description="VPIN bucket size; None: calibrated per symbol")
    calibration_inputs: int = Field(200, ge=1, description="trades (or bars) whose mean size calibrates the bucket")
    inputs_per_bucket: float = Field(20.0, gt=0.0, description="calibrated bucket = this many mean-sized inputs")
    vpin_buckets: int = Field(50, ge=1, le=100_000, description="buckets in the VPIN window")
    lambda_halflife: float = Field(500.0, gt=0.0, description="half-life of Kyle's lambda, in traded book intervals")
    realized_spread_ms: int = Field(5000, gt=0, description="delta after a trade at which its realised spread is taken")
    spread_halflife: float = Field(200.0, gt=0.0, description="half-life of the realised spread mean, in trades")
    vol_halflife: float = Field(500.0, gt=0.0, description="half-life of the volatility estimate, in updates (or bars)")
    stale_ms: int = Field(60_000, gt=0, description="an input not seen for this long counts as missing")
    max_pending: int = Field(10_000, ge=1, description="trades awaiting their realised spread, at most")
    z_scale: float = Field(2.0, gt=0.0, description="signal in standard deviations that maps to alpha ~0.76")
    information_coefficient: float = Field(0.05, ge=0.0, le=1.0, description="assumed skill: mu per unit alpha x sigma")
    toxicity_penalty: float = Field(1.0, ge=0.0, description="confidence x max(0, 1 - this x VPIN)")
    missing_input_discount: float = Field(0.5, ge=0.0, le=1.0, description="confidence factor per missing input kind")
    min_inputs: int = Field(100, ge=1, description="trades, books or bars seen before the first prediction")


def _decay(halflife: float) -> float:
    return math.exp(-math.log(2.0) / halflife)


@dataclass(slots=True)
class _SymbolState:
    inputs: int = 0
    last_trade_ts: int = _NEVER
    last_book_ts: int = _NEVER
    # Trade signs and flow
    last_price: float = 0.0
    last_sign: int = 0
    signed_flow: float = 0.0
    flow: float = 0.0
    # Book: touch, OFI window of (ts, e_n, touch depth), mid and its volatility
    bid: float = math.nan
    bid_size: float = 0.0
    ask: float = math.nan
    ask_size: float = 0.0
    ofi_window: deque[tuple[int, float, float]] = field(default_factory=deque)
    ofi_sum: float = 0.0
    depth_sum: float = 0.0
    mid: float = math.nan
    squared_returns: float = 0.0
    elapsed_s: float = 0.0
    ofi_power: float = 0.0  # EW sums of the two signals' squares and of their weights: their scales
    ofi_weight: float = 0.0
    flow_power: float = 0.0
    flow_weight: float = 0.0
    # Kyle's lambda: signed volume since the last book, EW sums of the fit
    interval_signed: float = 0.0
    interval_volume: float = 0.0
    lambda_xx: float = 0.0
    lambda_xy: float = 0.0
    # VPIN
    bucket_volume: float = 0.0
    calibration_count: int = 0
    calibration_volume: float = 0.0
    bucket_fill: float = 0.0
    bucket_buy: float = 0.0
    buckets: deque[float] = field(default_factory=deque)
    bucket_sum: float = 0.0
    # Realised spread: trades (ts, sign, price, mid at trade) awaiting their delta
    spread_pending: deque[tuple[int, int, float, float]] = field(default_factory=deque)
    realized_spread: float = 0.0
    spreads_seen: int = 0
    # Bars: the volatility fallback
    bar_close: float = math.nan
    bar_squared_returns: float = 0.0
    bar_seconds: float = 0.0


_SCALARS = tuple(
    name for name in _SymbolState.__dataclass_fields__ if name not in ("ofi_window", "buckets", "spread_pending")
)


class MicrostructureModule(AnalysisModule[MicrostructureParams]):
    """Order-flow imbalance, trade-sign imbalance, VPIN, Kyle's lambda and realised spread."""

    name = "microstructure"
    version = "1.0.0"
    consumes = frozenset({EventKind.TRADE, EventKind.BOOK, EventKind.BAR})
    Params = MicrostructureParams
    latency_budget_us = 100.0

    def __init__(self, params: MicrostructureParams) -> None:
        super().__init__(params)
        self._flow_decay = _decay(params.flow_halflife)
        self._lambda_decay = _decay(params.lambda_halflife)
        self._spread_decay = _decay(params.spread_halflife)
        self._vol_decay = _decay(params.vol_halflife)
        self._use_aggressor = params.classification == "aggressor"
        self._horizon_s = params.horizon_ms / 1000.0
        # Hot-path copies of parameters: plain attributes, read on every event.
        self._stale_ms = params.stale_ms
        self._ofi_window_ms = params.ofi_window_ms
        self._realized_spread_ms = params.realized_spread_ms
        self._min_inputs = params.min_inputs
        self._warmup = 2 * params.min_inputs
        self._inverse_warmup = 1.0 / self._warmup
        self._inverse_z_scale = 1.0 / params.z_scale
        self._toxicity_penalty = params.toxicity_penalty
        self._missing_input_discount = params.missing_input_discount
        self._information_coefficient = params.information_coefficient
        self._state: dict[str, _SymbolState] = {}

    def _symbol(self, symbol: str) -> _SymbolState:
        state = self._state.get(symbol)
        if state is None:
            state = self._state[symbol] = self._new_state()
        return state

    def _new_state(self) -> _SymbolState:
        params = self.params
        return _SymbolState(
            bucket_volume=params.bucket_volume or 0.0,
            buckets=deque(maxlen=params.vpin_buckets),
            spread_pending=deque(maxlen=params.max_pending),
        )

    # ------------------------------------------------------------ events

    def on_trade(self, trade: Trade, ctx: ModuleContext) -> ModuleOutput | None:
        state = self._state.get(trade.symbol) or self._symbol(trade.symbol)
        price, size = trade.price, trade.size
        sign = trade.side if self._use_aggressor else 0
        if sign == 0:
            # Tick rule: an uptick is a buy, a downtick a sell, a zero tick repeats the last sign.
            last = state.last_price
            sign = 1 if price > last > 0.0 else -1 if 0.0 < price < last else state.last_sign
        state.last_price = price
        state.last_sign = sign
        signed = sign * size
        decay = self._flow_decay
        state.signed_flow = decay * state.signed_flow + signed
        state.flow = decay * state.flow + size
        state.interval_signed += signed
        state.interval_volume += size
        buy_fraction = 0.5 * (1 + sign)
        if size < state.bucket_volume - state.bucket_fill:  # the common case: the bucket stays open
            state.bucket_fill += size
            state.bucket_buy += size * buy_fraction
        else:
            self._bucket(state, size, buy_fraction)
        if sign and state.mid > 0.0:
            state.spread_pending.append((trade.ts, sign, price, state.mid))
        state.last_trade_ts = trade.ts
        state.inputs += 1
        self._observe_flow(state)
        if trade.ts - state.last_book_ts <= self._stale_ms:
            return None  # books are fresh: the next book update publishes the view (see the docstring)
        return self._output(state, trade.ts, False)

    def on_book(self, book: BookUpdate, ctx: ModuleContext) -> ModuleOutput | None:
        if not book.bid_prices or not book.ask_prices:
            return None
        state = self._state.get(book.symbol) or self._symbol(book.symbol)
        now = book.ts
        bid, ask = book.bid_prices[0], book.ask_prices[0]
        bid_size, ask_size = book.bid_sizes[0], book.ask_sizes[0]
        last_bid, last_ask = state.bid, state.ask
        if state.last_book_ts != _NEVER:  # a previous touch to compare with
            e = 0.0
            if bid >= last_bid:
                e += bid_size
            if bid <= last_bid:
                e -= state.bid_size
            if ask <= last_ask:
                e -= ask_size
            if ask >= last_ask:
                e += state.ask_size
            depth = 0.5 * (bid_size + ask_size)
            state.ofi_window.append((now, e, depth))
            state.ofi_sum += e
            state.depth_sum += depth
        state.bid, state.bid_size, state.ask, state.ask_size = bid, bid_size, ask, ask_size

        mid = 0.5 * (bid + ask)
        last_mid = state.mid
        if last_mid > 0.0 and mid > 0.0:
            change = math.log(mid / last_mid)
            decay = self._vol_decay
            state.squared_returns = decay * state.squared_returns + change * change
            state.elapsed_s = decay * state.elapsed_s + (now - state.last_book_ts) / 1000.0
            if state.interval_volume > 0.0:
                x = state.interval_signed
                decay = self._lambda_decay
                state.lambda_xx = decay * state.lambda_xx + x * x
                state.lambda_xy = decay * state.lambda_xy + x * (mid - last_mid)
            pending = state.spread_pending
            if pending and pending[0][0] + self._realized_spread_ms <= now:
                self._resolve_spreads(state, now, mid)
        state.interval_signed = state.interval_volume = 0.0
        state.mid = mid
        state.last_book_ts = now
        state.inputs += 1
        return self._output(state, now, True)

    def on_bar(self, bar: Bar, ctx: ModuleContext) -> ModuleOutput | None:
        state = self._symbol(bar.symbol)
        now = bar.ts
        close = bar.close
        if state.bar_close > 0.0 and close > 0.0:
            change = math.log(close / state.bar_close)
            decay = self._vol_decay
            state.bar_squared_returns = decay * state.bar_squared_returns + change * change
            state.bar_seconds = decay * state.bar_seconds + bar.interval_ms / 1000.0
        state.bar_close = close
        if now - state.last_trade_ts <= self._stale_ms:
            return None  # trades carry the flow; counting the bar too would double it
        span = bar.high - bar.low
        direction = max(-1.0, min(1.0, (close - bar.open) / span)) if span > 0.0 else 0.0
        decay = self._flow_decay
        state.signed_flow = decay * state.signed_flow + direction * bar.volume
        state.flow = decay * state.flow + bar.volume
        self._bucket(state, bar.volume, 0.5 * (1.0 + direction))
        state.inputs += 1
        self._observe_flow(state)
        return self._output(state, now, False)

    # ------------------------------------------------------------ pieces

    def _bucket(self, state: _SymbolState, volume: float, buy_fraction: float) -> None:
        """Pour ``volume`` (``buy_fraction`` of it bought) into the VPIN buckets."""
        size = state.bucket_volume
        if size <= 0.0:
            state.calibration_count += 1
            state.calibration_volume += volume
            if state.calibration_count >= self.params.calibration_inputs:
                state.bucket_volume = state.calibration_volume / state.calibration_count * self.params.inputs_per_bucket
            return
        room = size - state.bucket_fill
        if volume < room:
            state.bucket_fill += volume
            state.bucket_buy += volume * buy_fraction
            return
        bought = state.bucket_buy + room * buy_fraction
        self._close_bucket(state, abs(2.0 * bought - size))
        volume -= room
        full = int(volume // size)
        # More full buckets than the window holds: only the last ones matter.
        for _ in range(min(full, self.params.vpin_buckets)):
            self._close_bucket(state, abs(2.0 * buy_fraction - 1.0) * size)
        rest = max(0.0, volume - full * size)
        state.bucket_fill = rest
        state.bucket_buy = rest * buy_fraction

    @staticmethod
    def _close_bucket(state: _SymbolState, imbalance: float) -> None:
        buckets = state.buckets
        if len(buckets) == buckets.maxlen:
            state.bucket_sum -= buckets[0]  # append() below drops it
        buckets.append(imbalance)
        state.bucket_sum += imbalance

    def _resolve_spreads(self, state: _SymbolState, now: int, mid: float) -> None:
        """Realised spreads of trades whose delta has passed: a delta that ended
        before ``now`` ended under the previous mid, one ending now under this one."""
        pending = state.spread_pending
        delta = self.params.realized_spread_ms
        decay = self._spread_decay
        while pending and pending[0][0] + delta <= now:
            ts, sign, price, trade_mid = pending.popleft()
            later_mid = state.mid if ts + delta < now else mid
            value = 2e4 * sign * (price - later_mid) / trade_mid
            state.spreads_seen += 1
            # A running mean until the EW window is filled, then EW: no start-up bias towards 0.
            weight = max(1.0 / state.spreads_seen, 1.0 - decay)
            state.realized_spread += weight * (value - state.realized_spread)

    def _observe_flow(self, state: _SymbolState) -> None:
        """Update the flow signal's scale (EW of its square) with the trade or bar that just arrived."""
        flow = state.flow
        flow_imbalance = state.signed_flow / flow if flow > 0.0 else 0.0
        decay = self._vol_decay
        state.flow_power = decay * state.flow_power + flow_imbalance * flow_imbalance
        state.flow_weight = decay * state.flow_weight + 1.0

    def _output(self, state: _SymbolState, now: int, from_book: bool) -> ModuleOutput:
        """Features and prediction. After a book update, OFI updates its scale (the
        flow's is updated where trades and bars arrive). Runs on most events:
        parameters are read from hot-path copies, state from locals."""
        stale_ms = self._stale_ms
        has_trades = now - state.last_trade_ts <= stale_ms
        has_books = now - state.last_book_ts <= stale_ms
        window = state.ofi_window
        if window and window[0][0] <= now - self._ofi_window_ms:
            self._evict(state, window, now - self._ofi_window_ms)
        if has_books:
            ofi = state.ofi_sum
            depth_sum = state.depth_sum
            ofi_normalized = ofi * len(window) / depth_sum if depth_sum > 0.0 else 0.0
            lambda_xx = state.lambda_xx
            kyle_lambda = state.lambda_xy / lambda_xx if lambda_xx > 0.0 else 0.0
            realized_spread = state.realized_spread
        else:
            ofi = ofi_normalized = kyle_lambda = realized_spread = 0.0
        flow = state.flow
        flow_imbalance = state.signed_flow / flow if flow > 0.0 else 0.0
        if from_book:
            decay = self._vol_decay
            ofi_power = state.ofi_power = decay * state.ofi_power + ofi_normalized * ofi_normalized
            ofi_weight = state.ofi_weight = decay * state.ofi_weight + 1.0
        else:
            ofi_power, ofi_weight = state.ofi_power, state.ofi_weight
        flow_power, flow_weight = state.flow_power, state.flow_weight
        buckets = len(state.buckets)
        vpin = state.bucket_sum / (buckets * state.bucket_volume) if buckets else 0.0
        features = {
            "has_trades": 1.0 if has_trades else 0.0,
            "has_books": 1.0 if has_books else 0.0,
            "trade_imbalance": flow_imbalance,
            "ofi": ofi,
            "ofi_normalized": ofi_normalized,
            "vpin": vpin,
            "kyle_lambda": kyle_lambda,
            "realized_spread_bps": realized_spread,
        }
        inputs = state.inputs
        if inputs < self._min_inputs:
            return ModuleOutput(None, features)
        if has_books and state.elapsed_s > 0.0:
            variance_rate = state.squared_returns / state.elapsed_s
        elif state.bar_seconds > 0.0:
            variance_rate = state.bar_squared_returns / state.bar_seconds
        else:
            return ModuleOutput(None, features)
        # Each signal in units of its own recent size, so neither dominates by scale alone.
        if has_books and ofi_power > 0.0:
            if flow_power > 0.0:
                z = 0.5 * (
                    ofi_normalized * sqrt(ofi_weight / ofi_power) + flow_imbalance * sqrt(flow_weight / flow_power)
                )
            else:
                z = ofi_normalized * sqrt(ofi_weight / ofi_power)
        elif flow_power > 0.0:
            z = flow_imbalance * sqrt(flow_weight / flow_power)
        else:
            return ModuleOutput(None, features)
        if not variance_rate > 0.0:
            return ModuleOutput(None, features)
        sigma = sqrt(variance_rate * self._horizon_s)
        alpha = tanh(z * self._inverse_z_scale)
        confidence = (alpha if alpha >= 0.0 else -alpha) * (
            inputs * self._inverse_warmup if inputs < self._warmup else 1.0
        )
        toxicity = 1.0 - self._toxicity_penalty * vpin
        confidence *= toxicity if toxicity > 0.0 else 0.0
        if not (has_trades and has_books):
            confidence *= self._missing_input_discount ** (2 - has_trades - has_books)
        # Positional: this runs on every event, and keyword passing costs a little each time.
        return ModuleOutput(
            Prediction(
                self._information_coefficient * alpha * sigma,
                sigma,
                self._horizon_s,
                confidence if confidence < 1.0 else 1.0,
                alpha,
            ),
            features,
        )

    @staticmethod
    def _evict(state: _SymbolState, window: deque[tuple[int, float, float]], horizon: int) -> None:
        """Drop OFI updates at or before ``horizon`` from the window and its sums."""
        ofi_sum, depth_sum = state.ofi_sum, state.depth_sum
        while window and window[0][0] <= horizon:
            _, e, depth = window.popleft()
            ofi_sum -= e
            depth_sum -= depth
        if not window:
            ofi_sum = depth_sum = 0.0  # no rounding residue survives an empty window
        state.ofi_sum, state.depth_sum = ofi_sum, depth_sum

    # ------------------------------------------------------------ state

    def export_state(self) -> ModuleState | None:
        symbols = {}
        for symbol, state in self._state.items():
            data: dict[str, object] = {name: getattr(state, name) for name in _SCALARS}
            data["ofi_window"] = [list(item) for item in state.ofi_window]
            data["buckets"] = list(state.buckets)
            data["spread_pending"] = [list(item) for item in state.spread_pending]
            symbols[symbol] = data
        return ModuleState(
            self.name, self.version, self.state_version, {"params": self.params.model_dump(), "symbols": symbols}
        )

    def import_state(self, state: ModuleState) -> bool:
        # Windows, buckets and half-lives built with other settings would be wrong for ours: start cold.
        if state.module != self.name or state.state_version != self.state_version:
            return False
        theirs = state.data.get("params", {})
        if any(theirs.get(key) != getattr(self.params, key) for key in _STATE_PARAMS):
            return False
        restored: dict[str, _SymbolState] = {}
        for symbol, data in state.data["symbols"].items():
            fresh = self._new_state()
            for name in _SCALARS:
                current = getattr(fresh, name)
                setattr(fresh, name, int(data[name]) if isinstance(current, int) else float(data[name]))
            fresh.ofi_window.extend((int(ts), float(e), float(d)) for ts, e, d in data["ofi_window"])
            fresh.buckets.extend(float(b) for b in data["buckets"])
            fresh.spread_pending.extend((int(ts), int(s), float(p), float(m)) for ts, s, p, m in data["spread_pending"])
            restored[symbol] = fresh
        self._state = restored
        return True


MODULE = MicrostructureModule
