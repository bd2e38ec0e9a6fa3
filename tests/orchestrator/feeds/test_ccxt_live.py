"""The live ccxt feed, REST transport, against the loopback Binance double."""

from __future__ import annotations

import pytest

from orchestrator.errors import DataError
from orchestrator.events import Bar, BookUpdate, Trade
from orchestrator.execution.ccxt.double import Fault, start_double
from orchestrator.feeds.ccxt_config import CcxtFeedConfig
from orchestrator.feeds.ccxt_live import CcxtFeed, uses_websocket
from orchestrator.feeds.config import FeedConfig
from orchestrator.feeds.factory import build_feed


@pytest.fixture
def double():
    venue = start_double()
    yield venue
    venue.close()


def feed_config(double, **extra: object) -> CcxtFeedConfig:
    settings: dict[str, object] = {
        "exchange": "binance",
        "transport": "rest",
        "streams": ["book", "trades", "bars"],
        "poll_interval_s": 0.05,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "api_urls": double.api_urls(),
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
    }
    settings.update(extra)
    return CcxtFeedConfig.model_validate(settings)


async def test_rest_feed_streams_books_trades_and_closed_bars(double) -> None:
    double.inject(Fault("GET", "/api/v3/depth", "http", status=502, count=2))  # backs off, goes on
    feed = build_feed(FeedConfig(kind="ccxt", ccxt=feed_config(double)), ["BTC/USDT"])
    assert isinstance(feed, CcxtFeed)
    seen: dict[type, list[object]] = {BookUpdate: [], Trade: [], Bar: []}
    stream = feed.stream()
    async for event in stream:
        seen[type(event)].append(event)
        if all(len(v) >= 2 for k, v in seen.items() if k is not Trade) and seen[Trade]:
            break
    await stream.aclose()
    await feed.aclose()
    book = seen[BookUpdate][0]
    assert isinstance(book, BookUpdate)
    assert book.bid_prices == (49_999.0, 49_998.0)
    assert book.ask_sizes == (1.0, 2.0)
    trade = seen[Trade][0]
    assert isinstance(trade, Trade)
    assert trade.price == 50_000.0
    assert len(seen[Trade]) == len({(t.ts, t.price) for t in seen[Trade]})  # each print once  # type: ignore[attr-defined]
    bars = seen[Bar]
    # only closed bars, stamped with their close time, each once, in order
    assert all(isinstance(b, Bar) and b.interval_ms == 60_000 and b.ts % 60_000 == 0 for b in bars)
    assert [b.ts for b in bars] == sorted({b.ts for b in bars})  # type: ignore[attr-defined]
    assert double.count("GET", "/api/v3/depth") >= 3


async def test_unknown_symbol_ends_the_feed_with_a_reason(double) -> None:
    feed = CcxtFeed(feed_config(double), ["DOGE/USDT"])
    with pytest.raises(DataError, match="has no market"):
        async for _ in feed.stream():
            pass
    await feed.aclose()


def test_transport_resolution() -> None:
    assert uses_websocket(CcxtFeedConfig(exchange="binance", transport="auto")) is True
    assert uses_websocket(CcxtFeedConfig(exchange="binance", transport="rest")) is False
    with pytest.raises(DataError, match="no websocket"):
        uses_websocket(CcxtFeedConfig(exchange="paymium", transport="websocket"))


def test_events_is_not_for_live_feeds() -> None:
    feed = CcxtFeed(CcxtFeedConfig(exchange="binance"), ["BTC/USDT"])
    with pytest.raises(DataError, match="live"):
        next(iter(feed.events()))
