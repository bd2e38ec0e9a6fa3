"""Simulated market: determinism, event order, book sanity, bars built from trades, regimes, imbalance signal."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from datetime import UTC, datetime

import numpy as np
import pytest

from orchestrator.errors import ConfigError
from orchestrator.events import Bar, BookUpdate, Trade
from orchestrator.feeds.config import FeedConfig, SimulatedMarketConfig
from orchestrator.feeds.factory import build_feed
from orchestrator.feeds.simulated import REGIMES, SimulatedMarket

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
PRICES = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}  # SOL/USDT starts at the default 100


def market(**overrides) -> SimulatedMarket:
    return SimulatedMarket(SimulatedMarketConfig(prices=PRICES, **overrides), SYMBOLS)


@pytest.fixture(scope="module")
def run_events() -> list:
    """A short run with 10 s bars, so it holds many bars."""
    return market(bar_ms=10_000, seed=11).take(40_000)


def test_same_seed_same_events_and_other_seed_other_events():
    first = market(seed=5).take(50_000)
    assert first == market(seed=5).take(50_000)
    assert first != market(seed=6).take(50_000)


def test_every_events_call_replays_from_the_start():
    feed = market()
    assert feed.take(1000) == feed.take(1000) == list(itertools.islice(feed.events(), 1000))


def test_ts_never_decreases_and_starts_at_config_start(run_events):
    stamps = [event.ts for event in run_events]
    assert all(later >= earlier for earlier, later in itertools.pairwise(stamps))
    assert stamps[0] == int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)


def test_within_a_tick_each_symbol_has_its_book_then_its_trades(run_events):
    ticks = defaultdict(list)
    for event in run_events:
        if not isinstance(event, Bar):
            ticks[event.ts].append(event)
    for events in list(ticks.values())[:-1]:  # the last tick may be cut short
        books = [event.symbol for event in events if isinstance(event, BookUpdate)]
        assert books == SYMBOLS
        current = None
        for event in events:
            if isinstance(event, BookUpdate):
                current = event
            else:
                assert event.symbol == current.symbol
                assert event.price == (current.best_ask if event.side == 1 else current.best_bid)
                assert event.size > 0


def test_books_are_sane(run_events):
    books = [event for event in run_events if isinstance(event, BookUpdate)]
    for book in books:
        assert len(book.bid_prices) == len(book.ask_prices) == 10
        assert book.best_bid < book.best_ask
        assert all(a > b for a, b in itertools.pairwise(book.bid_prices))
        assert all(a < b for a, b in itertools.pairwise(book.ask_prices))
        assert min(book.bid_sizes) > 0
        assert min(book.ask_sizes) > 0
    btc = [book for book in books if book.symbol == "BTC/USDT"]
    spreads = {round(book.best_ask - book.best_bid, 6) for book in btc}
    assert spreads <= {5.0, 10.0, 15.0}  # 1-3 ticks of 5 (~1 bp of 60 000)
    sol = next(book for book in books if book.symbol == "SOL/USDT")
    assert sol.bid_prices[0] - sol.bid_prices[1] == pytest.approx(0.01)
    assert all(round(price, 2) == price for price in sol.bid_prices)  # clean decimals, no float residue


def test_book_levels_follow_the_config():
    books = [event for event in market(book_levels=3).take(200) if isinstance(event, BookUpdate)]
    assert {len(book.bid_sizes) for book in books} == {len(book.ask_prices) for book in books} == {3}


def test_bars_close_on_period_boundaries_and_come_before_the_next_period(run_events):
    start = run_events[0].ts
    for index, event in enumerate(run_events):
        if isinstance(event, Bar):
            assert (event.ts - start) % 10_000 == 0
            assert event.interval_ms == 10_000
            assert run_events[index - 1].ts <= event.ts
            assert isinstance(run_events[index - 1], Bar) or run_events[index - 1].ts < event.ts
            following = next(e for e in run_events[index:] if not isinstance(e, Bar))
            assert following.ts == event.ts  # bar_ms is a multiple of tick_ms: the next tick starts the period
    bars = [event for event in run_events if isinstance(event, Bar)]
    assert len(bars) == 3 * (bars[-1].ts - start) // 10_000


def test_bars_agree_with_the_trades_and_books_inside_them(run_events):
    trades, mids = defaultdict(list), defaultdict(list)
    checked = 0
    for event in run_events:
        if isinstance(event, Trade):
            trades[event.symbol].append(event)
        elif isinstance(event, BookUpdate):
            mids[event.symbol].append(event.mid)
        else:
            inside = [t for t in trades.pop(event.symbol, []) if event.open_ts <= t.ts < event.ts]
            period_mids = mids.pop(event.symbol, [])
            if inside:
                prices = [t.price for t in inside]
                expected = (prices[0], max(prices), min(prices), prices[-1])
                assert (event.open, event.high, event.low, event.close) == expected
                assert event.volume == pytest.approx(sum(t.size for t in inside))
            else:
                ohlc = (period_mids[0], max(period_mids), min(period_mids), period_mids[-1])
                assert (event.open, event.high, event.low, event.close) == ohlc
                assert event.volume == 0.0
            checked += 1
    assert checked > 100


def test_bars_without_trades_use_the_book_mids():
    events = market(trades_per_tick=0.0, bar_ms=1_000).take(3_000)
    bars = [event for event in events if isinstance(event, Bar)]
    assert bars
    assert all(bar.volume == 0.0 and bar.low <= bar.open <= bar.high for bar in bars)
    assert not any(isinstance(event, Trade) for event in events)


def test_bars_shorter_than_a_tick_skip_empty_periods():
    events = SimulatedMarket(SimulatedMarketConfig(tick_ms=250, bar_ms=100), ["X"]).take(200)
    bars = [event for event in events if isinstance(event, Bar)]
    assert bars
    assert all((bar.ts - events[0].ts) % 100 == 0 for bar in bars)
    assert all(later.ts - earlier.ts in (200, 300) for earlier, later in itertools.pairwise(bars))


def test_every_regime_appears_over_a_long_run():
    feed = market(regime_mean_ticks=200, seed=3)
    seen = defaultdict(set)
    for index, event in enumerate(itertools.islice(feed.events(), 60_000)):
        if index % 50 == 0:
            seen[event.symbol].add(feed.regime_of(event.symbol))
    assert all(regimes == set(REGIMES) for regimes in seen.values())


def test_regime_of_names_a_regime_before_and_during_a_run():
    feed = market()
    assert feed.regime_of("ETH/USDT") in REGIMES
    feed.take(10)
    assert feed.regime_of("ETH/USDT") in REGIMES
    with pytest.raises(ValueError):
        feed.regime_of("DOGE/USDT")


def test_book_imbalance_predicts_the_next_mid_move():
    books = [event for event in market(seed=21).take(60_000) if isinstance(event, BookUpdate)]
    for symbol in SYMBOLS:
        own = [book for book in books if book.symbol == symbol]
        bid, ask = np.array([b.bid_sizes[:3] for b in own]).sum(1), np.array([b.ask_sizes[:3] for b in own]).sum(1)
        imbalance = (bid - ask) / (bid + ask)
        next_move = np.diff([book.mid for book in own])
        correlation = np.corrcoef(imbalance[:-1], next_move)[0, 1]
        t_statistic = correlation * math.sqrt(len(next_move))
        assert correlation > 0.05, symbol
        assert t_statistic > 5, symbol


def test_trade_signs_lean_with_the_next_move():
    events = market(seed=4).take(40_000)
    mids, signs = defaultdict(list), defaultdict(list)
    for event in events:
        if isinstance(event, BookUpdate):
            mids[event.symbol].append(event.mid)
            signs[event.symbol].append(0)
        elif isinstance(event, Trade):
            signs[event.symbol][-1] += event.side
    flow = np.array(signs["SOL/USDT"][:-1], dtype=float)
    assert np.corrcoef(flow, np.diff(mids["SOL/USDT"]))[0, 1] > 0.03


def test_symbols_must_be_given_and_start_prices_positive():
    with pytest.raises(ConfigError):
        SimulatedMarket(SimulatedMarketConfig(), [])
    with pytest.raises(ConfigError, match=r"prices\.X"):
        SimulatedMarket(SimulatedMarketConfig(prices={"X": -1.0}), ["X"])
    assert SimulatedMarket(SimulatedMarketConfig(), ["A", "B", "A"]).symbols == ("A", "B")


def test_build_feed_makes_the_simulated_market_for_the_traded_symbols():
    feed = build_feed(FeedConfig(simulated=SimulatedMarketConfig(speed=0.0, seed=9)), ["A", "B"])
    assert isinstance(feed, SimulatedMarket)
    assert feed.symbols == ("A", "B")
    assert feed.speed == 0.0
    assert {event.symbol for event in feed.take(100)} == {"A", "B"}


async def test_stream_yields_the_same_events_paced_or_not():
    feed = market(speed=0.0)
    unpaced = [event async for event in _first(feed.stream(), 2_000)]
    assert unpaced == feed.take(2_000)
    fast = market(speed=5_000.0)  # 250 ms ticks at 5000x: 50 µs of wall time each
    paced = [event async for event in _first(fast.stream(), 500)]
    assert paced == unpaced[:500]


async def _first(stream, count):
    async for event in stream:
        yield event
        count -= 1
        if count == 0:
            return
