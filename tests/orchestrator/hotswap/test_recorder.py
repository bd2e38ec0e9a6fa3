"""The recording of recent events that new versions are checked against."""

from __future__ import annotations

from orchestrator.events import Bar, BookUpdate, EventKind, Trade
from orchestrator.hotswap.recorder import MIN_RECORDED_PER_KIND, RecentEvents, simulated_sample


def bar(ts: int, symbol: str = "BTC/USDT", close: float = 100.0) -> Bar:
    return Bar(symbol, ts, close, close, close, close, 1.0, 1000)


def trade(ts: int, symbol: str = "BTC/USDT", price: float = 101.0) -> Trade:
    return Trade(symbol, ts, price, 1.0, 1)


def book(ts: int, symbol: str = "BTC/USDT", mid: float = 102.0) -> BookUpdate:
    return BookUpdate(symbol, ts, (mid - 0.5,), (1.0,), (mid + 0.5,), (1.0,))


def test_each_kind_keeps_its_own_bounded_ring():
    recent = RecentEvents(per_kind=4)
    for ts in range(100):
        recent.record(book(ts))
    recent.record(bar(100))
    sample = recent.snapshot()
    assert [e.ts for e in sample.by_kind[EventKind.BOOK]] == [96, 97, 98, 99]
    assert [e.ts for e in sample.by_kind[EventKind.BAR]] == [100]  # not crowded out by books
    recent.resize(2)
    assert [e.ts for e in recent.snapshot().by_kind[EventKind.BOOK]] == [98, 99]


def test_a_snapshot_does_not_change_when_recording_goes_on():
    recent = RecentEvents(per_kind=8)
    recent.record(trade(1))
    sample = recent.snapshot()
    recent.record(trade(2))
    assert [e.ts for e in sample.by_kind[EventKind.TRADE]] == [1]


def test_enough_real_events_make_the_sample_in_time_order():
    recent = RecentEvents(per_kind=64)
    for ts in range(MIN_RECORDED_PER_KIND):
        recent.record(bar(ts * 10))
        recent.record(book(ts * 10 + 5))
        recent.record(book(ts * 10 + 6, symbol="ETH/USDT"))
    events = recent.snapshot().events_for(["BTC/USDT"], {EventKind.BAR, EventKind.BOOK})
    assert len(events) == 2 * MIN_RECORDED_PER_KIND
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert {e.symbol for e in events} == {"BTC/USDT"}


def test_too_few_real_events_fall_back_to_a_simulated_sample_near_the_real_prices():
    recent = RecentEvents()
    recent.record(bar(1, close=250.0))
    recent.record(trade(2, price=251.0))
    events = recent.snapshot().events_for(["BTC/USDT"], {EventKind.BAR})
    assert {e.kind for e in events} == set(EventKind)
    bars = [e for e in events if isinstance(e, Bar)]
    assert len(bars) >= 50  # enough for slow moving averages to warm up
    assert 200.0 < bars[0].close < 300.0


def test_the_simulated_sample_is_deterministic():
    assert simulated_sample(["A/B"]) == simulated_sample(["A/B"])
    assert simulated_sample([]) == []
