"""The live ccxt feed against the loopback Binance doubles: REST polling and ccxt.pro websockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from orchestrator.errors import DataError
from orchestrator.events import Bar, BookUpdate, Trade
from orchestrator.execution.ccxt.double import Fault, start_double
from orchestrator.execution.ccxt.ws_double import BinanceStreams
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


# ---------------------------------------------------------------- websocket (ccxt.pro watch_*)


@pytest.fixture
def streams(double):
    server = BinanceStreams(double).start()
    yield server
    server.close()


async def collect(feed: CcxtFeed, enough: Callable[[dict[type, list[object]]], bool]) -> dict[type, list[object]]:
    seen: dict[type, list[object]] = {BookUpdate: [], Trade: [], Bar: []}
    stream = feed.stream()
    try:
        async with asyncio.timeout(60):  # give up, never a timing assertion
            async for event in stream:
                seen[type(event)].append(event)
                if enough(seen):
                    break
    finally:
        await stream.aclose()
    return seen


async def test_websocket_feed_streams_through_ccxt_pro_watch(double, streams) -> None:
    config = feed_config(double, transport="websocket", api_urls={**double.api_urls(), "ws.spot": streams.url})
    feed = CcxtFeed(config, ["BTC/USDT"])
    try:
        seen = await collect(feed, lambda s: len(s[BookUpdate]) >= 3 and len(s[Trade]) >= 3 and len(s[Bar]) >= 1)
    finally:
        await feed.aclose()
    assert feed.websocket
    assert sorted(streams.subscriptions) == ["btcusdt@depth@100ms", "btcusdt@kline_1m", "btcusdt@trade"]
    book = seen[BookUpdate][-1]
    assert isinstance(book, BookUpdate)
    assert book.bid_prices[0] == 49_999.0
    assert book.ask_prices[0] == 50_001.0
    trades = seen[Trade]
    assert all(isinstance(t, Trade) and t.price == 50_000.0 for t in trades)
    bar = seen[Bar][0]
    assert isinstance(bar, Bar)
    assert bar.ts % 60_000 == 0  # a closed bar, stamped with its close time
    assert bar.ts <= time.time() * 1000
    # Pushed, not polled: REST served the book snapshot only, never trades or klines.
    assert double.count("GET", "/api/v3/depth") == 1
    assert double.count("GET", "/api/v3/aggTrades") == 0
    assert double.count("GET", "/api/v3/klines") == 0


async def test_websocket_feed_survives_a_dropped_connection(double, streams) -> None:
    config = feed_config(
        double, transport="websocket", streams=["trades"], api_urls={**double.api_urls(), "ws.spot": streams.url}
    )
    feed = CcxtFeed(config, ["BTC/USDT"])
    try:
        await collect(feed, lambda s: len(s[Trade]) >= 3)
        before = streams.connections
        stream = feed.stream()
        count = 0
        async with asyncio.timeout(60):
            async for _ in stream:
                count += 1
                if count == 2:
                    streams.drop()
                if streams.connections > before and count > 5:
                    break
        await stream.aclose()
    finally:
        await feed.aclose()
    assert streams.connections > before  # reconnected and subscribed again
    assert streams.subscriptions.count("btcusdt@trade") >= 2
