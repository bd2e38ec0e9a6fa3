"""A seeded, endless simulated market: regime-switching prices, level-2 books, trades and bars.

Per symbol, one step per tick (``tick_ms`` of simulated time from ``config.start``):

- regime: a Markov chain over trend_up, trend_down, range and high_vol; each
  tick leaves its regime with probability 1 / ``regime_mean_ticks``, for one
  of the other three at random.
- log fair price: x_t = x_{t-1} + m_r + s_r * (b * f_{t-1} + sqrt(1 - b²) * e_t),
  with the per-tick volatility s = annual_volatility * sqrt(tick_ms / year).
  Trends drift ±0.01 s per tick; range pulls x back to its level at the start
  of the regime (half-life 300 ticks) at 0.8 s; high_vol has 2.5 s.
  e_t = sqrt(0.2) * common_t + sqrt(0.8) * own_t is the weak common factor.
  f_t ~ N(0, 1) is the order flow at tick t: it tilts the book and the trades'
  aggressor side at t and moves the price at t + 1 (b = 0.3), so book imbalance
  and trade signs carry a little information about the next move.
- book: a price grid of ~1 bp of the start price (1-2-5 steps), a sticky
  spread of 1–3 ticks (one wider in high_vol), ``book_levels`` consecutive
  ticks per side, lognormal sizes growing with depth, tilted towards the bid
  (or ask) by tanh(f_t + noise), most strongly at the top.
- trades: Poisson per symbol and tick, twice as frequent in high_vol, with a
  long-run mean of ``trades_per_tick``; buys with probability sigmoid(1.2 f_t)
  at the best ask, sells at the best bid, lognormal sizes.
- bars: per ``bar_ms`` period from ``config.start``, OHLC of the period's
  trades (of the book mids if it had none) and their total size, stamped with
  the close time and emitted before the first event of the next period.

Within a tick, all at the tick's ts: the bars that just closed, then per symbol
(in the given order) its book, then its trades. Determinism: each run draws
from its own ``Generator(PCG64(seed))`` in chunks of a fixed number of ticks,
in a fixed order, so the events depend only on the seed, the config and the
symbols. Random numbers are drawn and events prepared a chunk at a time with
numpy; the per-event work is building the dataclass.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC

import numpy as np
import numpy.typing as npt

from orchestrator.errors import ConfigError
from orchestrator.events import Bar, BookUpdate, MarketEvent, Trade
from orchestrator.feeds.base import MarketFeed
from orchestrator.feeds.config import SimulatedMarketConfig

REGIMES = ("trend_up", "trend_down", "range", "high_vol")
_RANGE, _HIGH_VOL = REGIMES.index("range"), REGIMES.index("high_vol")
_DRIFT = np.array([0.01, -0.01, 0.0, 0.0])  # per tick, in units of the per-tick volatility
_VOLATILITY = np.array([1.0, 1.0, 0.8, 2.5])
_RANGE_PULL = math.log(2.0) / 300.0
_COMMON_SHARE = 0.2  # variance share of the factor common to all symbols
_FLOW_WEIGHT = 0.3  # correlation of the order flow with the next innovation
_HIGH_VOL_TRADE_RATE = 2.0  # trades per tick in high_vol, relative to the other regimes
_TRADE_SIGN_SLOPE = 1.2  # logit of a buy per unit of order flow
_BOOK_TILT = 0.8  # log size tilt at the best level per unit of displayed pressure
_SPREAD_CHANGE = 0.05  # chance per tick that the spread is redrawn
_SPREAD_CDF = np.array([0.6, 0.9])  # redrawn spread: 1 tick 60 %, 2 ticks 30 %, 3 ticks 10 %
_TOP_NOTIONAL = 50_000.0  # typical quote-currency size at the best level
_MS_PER_YEAR = 365.25 * 86_400_000
_TICKS_PER_CHUNK = 1024

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _decimal_step(value: float, mantissas: tuple[float, ...]) -> tuple[int, int]:
    """The step nearest to ``value`` (in log scale) among mantissa × 10^k, as (multiplier, divisor):
    step = multiplier / divisor with integers, so ``n * multiplier / divisor`` is the closest float
    to the decimal n × step (integer products and one correctly rounded division)."""
    exponent = math.floor(math.log10(value))
    mantissa = min(mantissas, key=lambda m: abs(math.log(value / (m * 10.0**exponent))))
    multiplier, divisor = _power_of_ten_step(exponent)
    return round(mantissa) * multiplier, divisor


def _power_of_ten_step(exponent: int) -> tuple[int, int]:
    return (10**exponent, 1) if exponent >= 0 else (1, 10**-exponent)


def _lots(sizes: FloatArray, size_step: IntArray) -> FloatArray:
    """Sizes rounded to whole lots, at least one lot; ``size_step`` is (multiplier, divisor)."""
    multiplier, divisor = size_step
    lots = np.maximum(np.rint(sizes * divisor / multiplier), 1.0)
    result: FloatArray = lots * multiplier / divisor
    return result


class SimulatedMarket(MarketFeed):
    """The simulated market for ``symbols``; every ``events()`` call replays it from the start."""

    name = "simulated"

    def __init__(self, config: SimulatedMarketConfig, symbols: Sequence[str]) -> None:
        self.config = config
        self._symbols = tuple(dict.fromkeys(symbols))
        if not self._symbols:
            raise ConfigError(["feed.simulated: the simulated market needs at least one symbol to trade"])
        prices = [float(config.prices.get(symbol, 100.0)) for symbol in self._symbols]
        bad = [symbol for symbol, price in zip(self._symbols, prices, strict=True) if not price > 0.0]
        if bad:
            raise ConfigError([f"feed.simulated.prices.{symbol}: the start price must be positive" for symbol in bad])
        self.speed = config.speed
        self.start_prices = np.array(prices)
        price_steps = [_decimal_step(price * 1e-4, (1.0, 2.0, 5.0, 10.0)) for price in prices]
        self.price_step = np.array(price_steps, dtype=np.int64).T  # (multiplier, divisor) per symbol
        self.level_size = _TOP_NOTIONAL / self.start_prices
        # Sizes in lots of a thousandth of the typical top-level size, rounded down to a power of ten.
        lots = [_power_of_ten_step(math.floor(math.log10(size)) - 3) for size in self.level_size]
        self.size_step = np.array(lots, dtype=np.int64).T
        start = config.start if config.start.tzinfo else config.start.replace(tzinfo=UTC)
        self.start_ms = round(start.timestamp() * 1000)
        self.tick_volatility = config.annual_volatility * math.sqrt(config.tick_ms / _MS_PER_YEAR)
        self._run = _MarketRun(self)

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def events(self) -> Iterator[MarketEvent]:
        self._run = _MarketRun(self)
        return self._run.events()

    def take(self, count: int) -> list[MarketEvent]:
        """The first ``count`` events of a fresh run."""
        return list(itertools.islice(self.events(), count))

    def regime_of(self, symbol: str) -> str:
        """The regime of ``symbol`` at the latest tick of the latest run."""
        return REGIMES[self._run.regime_at_latest_tick(self._symbols.index(symbol))]


class _MarketRun:
    """One pass through the simulated market: the random generator and the state carried between chunks."""

    def __init__(self, market: SimulatedMarket) -> None:
        self.market = market
        self.config = market.config
        count = len(market.symbols)
        self.rng = np.random.Generator(np.random.PCG64(self.config.seed))
        self.regime = self.rng.integers(0, len(REGIMES), size=count)
        self.log_price = np.log(market.start_prices)
        self.range_level = self.log_price.copy()  # where the range regime pulls the price back to
        self.flow = self.rng.standard_normal(count)
        self.spread_ticks = np.ones(count, dtype=np.int64)
        self.next_tick = 0
        self.bar_period = 0
        self.bar = _OpenBars(count, market.size_step)
        self.chunk_regimes: IntArray | None = None
        self.chunk_tick = 0  # the latest tick handed out, within the chunk

    def regime_at_latest_tick(self, index: int) -> int:
        if self.chunk_regimes is None:
            return int(self.regime[index])
        return int(self.chunk_regimes[self.chunk_tick, index])

    def events(self) -> Iterator[MarketEvent]:
        symbols = self.market.symbols
        count = len(symbols)
        while True:
            chunk = self._next_chunk()
            ts, offsets = chunk.ts, chunk.trade_offsets
            bid_prices, bid_sizes, ask_prices, ask_sizes = chunk.books
            trade_prices, trade_sizes, trade_sides = chunk.trades
            for first_tick, stop_tick, closed_bars in chunk.segments:
                yield from closed_bars
                self.chunk_regimes = chunk.regimes  # only now: the bars above closed in the previous chunk
                for tick in range(first_tick, stop_tick):
                    self.chunk_tick = tick
                    now = ts[tick]
                    row = tick * count
                    for index, symbol in enumerate(symbols):
                        at = row + index
                        yield BookUpdate(symbol, now, bid_prices[at], bid_sizes[at], ask_prices[at], ask_sizes[at])
                        for trade in range(offsets[at], offsets[at + 1]):
                            yield Trade(symbol, now, trade_prices[trade], trade_sizes[trade], trade_sides[trade])

    def _next_chunk(self) -> _Chunk:
        config, market, rng = self.config, self.market, self.rng
        ticks, count, levels = _TICKS_PER_CHUNK, len(market.symbols), config.book_levels
        # Every draw has a fixed shape and order, so a seed gives one sequence everywhere.
        switch_draws = rng.random((ticks, count))
        regime_steps = rng.integers(1, len(REGIMES), size=(ticks, count))
        common = rng.standard_normal(ticks)
        own = rng.standard_normal((ticks, count))
        flow = rng.standard_normal((ticks, count))
        display_noise = rng.standard_normal((ticks, count))
        spread_draws = rng.random((ticks, count))
        size_draws = rng.standard_normal((ticks, count, 2, levels))
        regimes = self._regimes(switch_draws < 1.0 / config.regime_mean_ticks, regime_steps)
        # High_vol trades faster; the base rate keeps the long-run mean at trades_per_tick.
        base_rate = config.trades_per_tick / (1.0 + (_HIGH_VOL_TRADE_RATE - 1.0) / len(REGIMES))
        trade_counts = rng.poisson(base_rate * np.where(regimes == _HIGH_VOL, _HIGH_VOL_TRADE_RATE, 1.0))
        sign_draws = rng.random(int(trade_counts.sum()))
        trade_size_draws = rng.standard_normal(len(sign_draws))

        # Order flow seen at one tick moves the price at the next.
        earlier_flow = np.vstack([self.flow[None, :], flow[:-1]])
        self.flow = flow[-1].copy()
        shocks = math.sqrt(_COMMON_SHARE) * common[:, None] + math.sqrt(1.0 - _COMMON_SHARE) * own
        innovation = _FLOW_WEIGHT * earlier_flow + math.sqrt(1.0 - _FLOW_WEIGHT**2) * shocks
        steps = market.tick_volatility * (_DRIFT[regimes] + _VOLATILITY[regimes] * innovation)
        spread = np.minimum(self._spreads(spread_draws) + (regimes == _HIGH_VOL), 3)
        book = _ChunkBook.build(
            market,
            log_prices=self._log_prices(regimes, steps),
            spread=spread,
            flow=flow,
            display_noise=display_noise,
            size_draws=size_draws,
        )

        flat_counts = trade_counts.reshape(-1)
        owner = np.repeat(np.arange(ticks * count), flat_counts)  # the (tick, symbol) cell of each trade
        buys = sign_draws < 1.0 / (1.0 + np.exp(-_TRADE_SIGN_SLOPE * flow.reshape(-1)[owner]))
        symbol_of_trade = owner % count
        trade_prices = np.where(
            buys, book.ask_prices[:, :, 0].reshape(-1)[owner], book.bid_prices[:, :, 0].reshape(-1)[owner]
        )
        trade_sizes = _lots(
            0.1 * market.level_size[symbol_of_trade] * np.exp(0.8 * trade_size_draws - 0.32),
            market.size_step[:, symbol_of_trade],
        )
        trade_offsets = np.concatenate([[0], np.cumsum(flat_counts)])
        ticks_from_start = self.next_tick + np.arange(ticks)
        self.next_tick += ticks
        mids = 0.5 * (book.bid_prices[:, :, 0] + book.ask_prices[:, :, 0])
        segments = self._bar_segments(
            ticks_from_start, mids, trade_offsets, (symbol_of_trade, trade_prices, trade_sizes)
        )
        return _Chunk(
            ts=(self.market.start_ms + ticks_from_start * config.tick_ms).tolist(),
            regimes=regimes,
            books=book.rows(),
            trades=(trade_prices.tolist(), trade_sizes.tolist(), np.where(buys, 1, -1).tolist()),
            trade_offsets=trade_offsets.tolist(),
            segments=segments,
        )

    def _regimes(self, switches: npt.NDArray[np.bool_], regime_steps: IntArray) -> IntArray:
        """The regime of each tick; a switch moves to one of the other regimes."""
        regimes = np.empty(switches.shape, dtype=np.int64)
        for index in range(switches.shape[1]):
            current, start = int(self.regime[index]), 0
            for tick in np.flatnonzero(switches[:, index]):
                regimes[start:tick, index] = current
                current = (current + int(regime_steps[tick, index])) % len(REGIMES)
                start = int(tick)
            regimes[start:, index] = current
        return regimes

    def _log_prices(self, regimes: IntArray, steps: FloatArray) -> FloatArray:
        """Accumulate log-price steps; in the range regime as an AR(1) around the regime's start level."""
        ticks = len(steps)
        log_prices = np.empty_like(steps)
        for index in range(steps.shape[1]):
            column = regimes[:, index]
            level, previous = float(self.log_price[index]), int(self.regime[index])
            changes = np.flatnonzero(column[1:] != column[:-1]) + 1
            for start, stop in itertools.pairwise([0, *changes.tolist(), ticks]):
                regime = int(column[start])
                if regime == _RANGE:
                    if previous != _RANGE:
                        self.range_level[index] = level
                    # y_k = a^k (y_0 + sum_j a^-j e_j) solves y_k = a y_(k-1) + e_k in one pass.
                    decay = (1.0 - _RANGE_PULL) ** np.arange(1, stop - start + 1)
                    anchor = self.range_level[index]
                    deviation = decay * ((level - anchor) + np.cumsum(steps[start:stop, index] / decay))
                    log_prices[start:stop, index] = anchor + deviation
                else:
                    log_prices[start:stop, index] = level + np.cumsum(steps[start:stop, index])
                level, previous = float(log_prices[stop - 1, index]), regime
            self.log_price[index] = level
        self.regime = regimes[-1].copy()
        return log_prices

    def _spreads(self, draws: FloatArray) -> IntArray:
        """Sticky spreads in ticks: redrawn on a few ticks, held in between."""
        redrawn = draws < _SPREAD_CHANGE
        fresh = 1 + np.searchsorted(_SPREAD_CDF, draws / _SPREAD_CHANGE, side="right")
        last_redraw = np.maximum.accumulate(np.where(redrawn, np.arange(len(draws))[:, None], -1), axis=0)
        held = np.take_along_axis(fresh, np.maximum(last_redraw, 0), axis=0)
        spreads = np.where(last_redraw >= 0, held, self.spread_ticks[None, :]).astype(np.int64)
        self.spread_ticks = spreads[-1].copy()
        return spreads

    def _bar_segments(
        self,
        ticks_from_start: IntArray,
        mids: FloatArray,
        trade_offsets: IntArray,
        trades: tuple[IntArray, FloatArray, FloatArray],
    ) -> list[tuple[int, int, list[Bar]]]:
        """Split the chunk's ticks at bar boundaries: (first tick, stop tick, bars closed just before it)."""
        bar_ms, count = self.config.bar_ms, mids.shape[1]
        periods = ticks_from_start * self.config.tick_ms // bar_ms
        boundaries = [0, *(np.flatnonzero(np.diff(periods)) + 1).tolist(), len(periods)]
        segments = []
        for first, stop in itertools.pairwise(boundaries):
            closed: list[Bar] = []
            if periods[first] != self.bar_period:
                close_ms = self.market.start_ms + (self.bar_period + 1) * bar_ms
                closed = self.bar.close(self.market.symbols, close_ms, bar_ms)
                self.bar_period = int(periods[first])
            inside = slice(trade_offsets[first * count], trade_offsets[stop * count])
            symbol_of_trade, prices, sizes = trades
            self.bar.add(mids[first:stop], symbol_of_trade[inside], prices[inside], sizes[inside])
            segments.append((first, stop, closed))
        return segments


class _OpenBars:
    """The bars being built, one per symbol: OHLC of trades and of mids (NaN = none yet) and volume."""

    def __init__(self, count: int, size_step: IntArray) -> None:
        self.count = count
        self.size_step = size_step  # (multiplier, divisor) per symbol: volumes are whole lots
        self.trade_ohlc = np.full((4, count), np.nan)
        self.mid_ohlc = np.full((4, count), np.nan)
        self.volume = np.zeros(count)

    def add(self, mids: FloatArray, symbols: IntArray, prices: FloatArray, sizes: FloatArray) -> None:
        _merge_ohlc(self.mid_ohlc, mids[0], mids.max(axis=0), mids.min(axis=0), mids[-1])
        if len(prices) == 0:
            return
        high = np.full(self.count, np.nan)
        low = np.full(self.count, np.nan)
        np.fmax.at(high, symbols, prices)
        np.fmin.at(low, symbols, prices)
        first = np.full(self.count, np.nan)
        last = np.full(self.count, np.nan)
        traded, first_trade = np.unique(symbols, return_index=True)
        first[traded] = prices[first_trade]
        traded, last_trade = np.unique(symbols[::-1], return_index=True)
        last[traded] = prices[len(prices) - 1 - last_trade]
        _merge_ohlc(self.trade_ohlc, first, high, low, last)
        self.volume += np.bincount(symbols, weights=sizes, minlength=self.count)

    def close(self, symbols: tuple[str, ...], close_ms: int, bar_ms: int) -> list[Bar]:
        """The finished bars (trade OHLC, else mid OHLC), and a fresh start."""
        ohlc = np.where(np.isnan(self.trade_ohlc[0]), self.mid_ohlc, self.trade_ohlc)
        multiplier, divisor = self.size_step
        volumes = np.rint(self.volume * divisor / multiplier) * multiplier / divisor  # no float-sum residue
        bars = [
            Bar(symbol, close_ms, open_, high, low, close, volume, bar_ms)
            for symbol, open_, high, low, close, volume in zip(symbols, *ohlc.tolist(), volumes.tolist(), strict=True)
        ]
        self.trade_ohlc.fill(np.nan)
        self.mid_ohlc.fill(np.nan)
        self.volume.fill(0.0)
        return bars


def _merge_ohlc(ohlc: FloatArray, first: FloatArray, high: FloatArray, low: FloatArray, last: FloatArray) -> None:
    """Extend running OHLC rows in place; NaN means no price yet (on either side)."""
    ohlc[0] = np.where(np.isnan(ohlc[0]), first, ohlc[0])
    ohlc[1] = np.fmax(ohlc[1], high)
    ohlc[2] = np.fmin(ohlc[2], low)
    ohlc[3] = np.where(np.isnan(last), ohlc[3], last)


@dataclass(frozen=True, slots=True)
class _ChunkBook:
    """The books of one chunk: (tick, symbol, level) arrays, best level first."""

    bid_prices: FloatArray
    bid_sizes: FloatArray
    ask_prices: FloatArray
    ask_sizes: FloatArray
    best_bid: IntArray  # in price steps, per (tick, symbol): a side's prices depend only on its best
    best_ask: IntArray

    @classmethod
    def build(
        cls,
        market: SimulatedMarket,
        *,
        log_prices: FloatArray,
        spread: IntArray,
        flow: FloatArray,
        display_noise: FloatArray,
        size_draws: FloatArray,
    ) -> _ChunkBook:
        """Books around the fair prices: levels on consecutive price steps, sizes tilted by the order flow."""
        levels = size_draws.shape[-1]
        multiplier, divisor = market.price_step
        fair_steps = np.exp(log_prices) * divisor / multiplier
        best_bid = np.maximum(np.rint(fair_steps - spread / 2.0).astype(np.int64), levels)  # prices stay positive
        best_ask = best_bid + spread
        depth = np.arange(levels)
        bid_prices = (best_bid[..., None] - depth) * multiplier[:, None] / divisor[:, None]
        ask_prices = (best_ask[..., None] + depth) * multiplier[:, None] / divisor[:, None]
        pressure = np.tanh(0.8 * flow + 0.6 * display_noise)
        tilt = _BOOK_TILT * pressure[..., None] * np.exp(-depth / 3.0)  # strongest at the top of the book
        typical = market.level_size[:, None] * (1.0 + 0.25 * depth)
        lot = market.size_step[:, :, None]
        bid_sizes = _lots(typical * np.exp(0.5 * size_draws[:, :, 0] - 0.125 + tilt), lot)
        ask_sizes = _lots(typical * np.exp(0.5 * size_draws[:, :, 1] - 0.125 - tilt), lot)
        return cls(bid_prices, bid_sizes, ask_prices, ask_sizes, best_bid, best_ask)

    def rows(self) -> tuple[list[tuple[float, ...]], ...]:
        """Per (tick, symbol) cell: bid prices, bid sizes, ask prices, ask sizes as tuples."""
        return (
            _shared_ladders(self.best_bid, self.bid_prices),
            _tuples(self.bid_sizes),
            _shared_ladders(self.best_ask, self.ask_prices),
            _tuples(self.ask_sizes),
        )


def _tuples(array: FloatArray) -> list[tuple[float, ...]]:
    return list(map(tuple, array.reshape(-1, array.shape[-1]).tolist()))


def _shared_ladders(best: IntArray, prices: FloatArray) -> list[tuple[float, ...]]:
    """Price tuples per cell; each distinct ladder is built once and shared (half the floats of a book)."""
    keys = (best * best.shape[1] + np.arange(best.shape[1])).reshape(-1)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    distinct = _tuples(prices.reshape(-1, prices.shape[-1])[first])
    return [distinct[index] for index in inverse.tolist()]


@dataclass(frozen=True, slots=True)
class _Chunk:
    """One chunk of ticks, prepared for the event loop as plain Python lists."""

    ts: list[int]
    regimes: IntArray  # (tick, symbol)
    books: tuple[list[tuple[float, ...]], ...]  # bid prices, bid sizes, ask prices, ask sizes per cell
    trades: tuple[list[float], list[float], list[int]]  # price, size, side
    trade_offsets: list[int]  # the trades of cell k are trades[offsets[k]:offsets[k + 1]]
    segments: list[tuple[int, int, list[Bar]]]  # (first tick, stop tick, bars to emit before the first)
