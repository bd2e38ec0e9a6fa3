"""``CcxtFeed``: live order books, trades and bars from a venue through ccxt.

One task per symbol and stream puts events on a queue that ``stream()``
drains. Where the venue has them (``ccxt.pro``), ``watch_order_book``,
``watch_trades`` and ``watch_ohlcv`` push updates over a websocket;
otherwise, or with ``transport: rest``, ``fetch_*`` is polled every
``poll_interval_s``. Bars are emitted only once closed and are stamped with
their close time, like every bar in the system (no look-ahead); a REST poll
sees each trade once (deduplicated by id and time). Network and rate-limit
errors back off (bounded, jittered) and the stream goes on; a refusal
(unknown symbol, bad credentials) ends the feed with the venue's reason.
A dropped websocket is such a network error: the next ``watch_*`` call
reconnects and subscribes again. ``api_urls`` points the client elsewhere
(a proxy, the tests' loopback doubles); ``ws.spot`` style keys reach the
nested websocket entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from functools import partial
from typing import Any

import structlog

from orchestrator.errors import DataError
from orchestrator.events import Bar, BookUpdate, MarketEvent, Trade
from orchestrator.execution.ccxt.client import with_url_overrides
from orchestrator.feeds.base import MarketFeed
from orchestrator.feeds.ccxt_config import CcxtFeedConfig

log = structlog.get_logger("orchestrator.feeds")

_QUEUE_SIZE = 10_000


def uses_websocket(config: CcxtFeedConfig) -> bool:
    """Whether ``transport`` resolves to ccxt.pro's websocket streams for this venue."""
    if config.transport == "rest":
        return False
    import ccxt.pro

    available = config.exchange in getattr(ccxt.pro, "exchanges", [])
    if config.transport == "websocket" and not available:
        raise DataError(f"feed.ccxt: {config.exchange} has no websocket (ccxt.pro) support; use transport: rest")
    return available


def _book(symbol: str, book: dict[str, Any], depth: int) -> BookUpdate:
    bids = book.get("bids") or []
    asks = book.get("asks") or []
    return BookUpdate(
        symbol=symbol,
        ts=int(book.get("timestamp") or time.time() * 1000),
        bid_prices=tuple(float(level[0]) for level in bids[:depth]),
        bid_sizes=tuple(float(level[1]) for level in bids[:depth]),
        ask_prices=tuple(float(level[0]) for level in asks[:depth]),
        ask_sizes=tuple(float(level[1]) for level in asks[:depth]),
    )


def _trade(symbol: str, trade: dict[str, Any]) -> Trade:
    side = trade.get("side")
    return Trade(
        symbol=symbol,
        ts=int(trade.get("timestamp") or time.time() * 1000),
        price=float(trade["price"]),
        size=float(trade["amount"]),
        side=1 if side == "buy" else -1 if side == "sell" else 0,
    )


class CcxtFeed(MarketFeed):
    name = "ccxt"

    def __init__(self, config: CcxtFeedConfig, symbols: Sequence[str]) -> None:
        self.config = config
        self._symbols = tuple(symbols)
        self.client: Any = None
        self.websocket = False
        self._bar_ms = 0

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    def events(self) -> Iterator[MarketEvent]:
        raise DataError("a live ccxt feed has no finite event list: backtest on recorded data (feed.kind: replay)")

    async def _connect(self) -> None:
        config = self.config
        self.websocket = uses_websocket(config)
        if self.websocket:
            import ccxt.pro as module
        else:
            import ccxt.async_support as module
        factory = getattr(module, config.exchange, None)
        if factory is None:
            raise DataError(f"feed.ccxt.exchange: ccxt has no exchange {config.exchange!r}")
        options = {"defaultType": config.market_type, **config.options}
        self.client = factory({"enableRateLimit": True, "timeout": config.timeout_ms, "options": options})
        if config.sandbox:
            self.client.set_sandbox_mode(True)
        if config.api_urls:
            self.client.urls["api"] = with_url_overrides(self.client.urls.get("api"), config.api_urls)
        self._bar_ms = int(self.client.parse_timeframe(config.timeframe) * 1000)
        await self._retrying("load markets", self.client.load_markets)
        missing = [s for s in self._symbols if s not in (self.client.markets or {})]
        if missing:
            raise DataError(f"feed.ccxt: {config.exchange} has no market(s) {', '.join(missing)}")

    async def _retrying(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        from orchestrator.execution.ccxt.errors import classify, describe
        from orchestrator.execution.ccxt.retry import Backoff

        backoff = Backoff(self.config.backoff_initial_s, self.config.backoff_max_s)
        attempt = 0
        while True:
            try:
                return await call()
            except Exception as exc:
                kind = classify(exc)
                if not kind.retryable:
                    raise DataError(f"feed.ccxt: {self.config.exchange}: {what}: {describe(exc)}") from exc
                delay = backoff.delay(min(attempt, 10), kind)
                log.warning("feed_retry", what=what, attempt=attempt + 1, delay_s=round(delay, 2), error=describe(exc))
                attempt += 1
                await asyncio.sleep(delay)

    async def stream(self) -> AsyncIterator[MarketEvent]:
        await self._connect()
        queue: asyncio.Queue[MarketEvent | BaseException] = asyncio.Queue(_QUEUE_SIZE)
        runners = {"book": self._books, "trades": self._trades, "bars": self._bars}
        tasks = [
            asyncio.create_task(self._guard(runners[stream](symbol, queue), queue), name=f"feed-{stream}-{symbol}")
            for symbol in self._symbols
            for stream in self.config.streams
        ]
        log.info("feed_ready", exchange=self.config.exchange, websocket=self.websocket, symbols=list(self._symbols))
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    @staticmethod
    async def _guard(runner: Awaitable[None], queue: asyncio.Queue[MarketEvent | BaseException]) -> None:
        try:
            await runner
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which ends the feed with it
            await queue.put(exc)

    async def _pace(self) -> None:
        if not self.websocket:
            await asyncio.sleep(self.config.poll_interval_s)

    async def _books(self, symbol: str, queue: asyncio.Queue[MarketEvent | BaseException]) -> None:
        depth = self.config.book_depth
        client = self.client
        while True:
            if self.websocket:
                book = await self._retrying("watch order book", lambda: client.watch_order_book(symbol, depth))
            else:
                book = await self._retrying("fetch order book", lambda: client.fetch_order_book(symbol, depth))
            await queue.put(_book(symbol, book, depth))
            await self._pace()

    async def _trades(self, symbol: str, queue: asyncio.Queue[MarketEvent | BaseException]) -> None:
        client = self.client
        seen: set[str] = set()
        last_ts = 0
        while True:
            if self.websocket:
                trades = await self._retrying("watch trades", lambda: client.watch_trades(symbol))
            else:
                trades = await self._retrying("fetch trades", partial(client.fetch_trades, symbol, last_ts or None))
            for trade in trades:
                key = f"{trade.get('id')}:{trade.get('timestamp')}"
                ts = int(trade.get("timestamp") or 0)
                if key in seen or ts < last_ts:
                    continue
                seen.add(key)
                last_ts = max(last_ts, ts)
                await queue.put(_trade(symbol, trade))
            if len(seen) > 10_000:
                seen.clear()  # only the ids at last_ts matter from here on
            await self._pace()

    async def _bars(self, symbol: str, queue: asyncio.Queue[MarketEvent | BaseException]) -> None:
        client = self.client
        timeframe = self.config.timeframe
        interval = self._bar_ms
        last_open = -1
        while True:
            if self.websocket:
                candles = await self._retrying("watch ohlcv", lambda: client.watch_ohlcv(symbol, timeframe))
            else:
                candles = await self._retrying("fetch ohlcv", lambda: client.fetch_ohlcv(symbol, timeframe, None, 5))
            now = int(time.time() * 1000)
            newest_open = max((int(c[0]) for c in candles), default=-1)
            for candle in sorted(candles, key=lambda c: int(c[0])):
                open_ts = int(candle[0])
                closed = open_ts + interval <= now or open_ts < newest_open
                if open_ts <= last_open or not closed:
                    continue
                last_open = open_ts
                o, h, low, c, v = (float(x or 0.0) for x in candle[1:6])
                await queue.put(Bar(symbol, open_ts + interval, o, h, low, c, v, interval))
            await self._pace()

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
