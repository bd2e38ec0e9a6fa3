"""Binance's market streams over a loopback websocket, for ccxt.pro (tests, offline demos).

The REST double (``double.py``) serves snapshots; this one serves the
``/ws`` streams ccxt.pro's ``binance`` subscribes to with ``SUBSCRIBE``:
``<symbol>@trade``, ``<symbol>@kline_1m`` and ``<symbol>@depth``. Every
``interval_s`` each subscription gets one message: a trade with a new id,
the last closed and the current kline, a depth update numbered after the
REST double's book sequence (so ccxt's snapshot-plus-diffs check holds).
``drop()`` closes every connection, as a venue does to its clients.

The server runs an asyncio loop in a thread of its own, so the client under
test keeps its loop to itself. Its URL path holds ``/stream`` because that
is how ccxt tells Binance's spot streams from its futures streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from orchestrator.execution.ccxt.double import BinanceDouble


@dataclass
class BinanceStreams:
    rest: BinanceDouble
    interval_s: float = 0.02
    subscriptions: list[str] = field(default_factory=list)
    connections: int = 0  # websocket connections accepted so far
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _sockets: set[web.WebSocketResponse] = field(default_factory=set)
    _trade_id: int = 0
    _ready: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream/ws"

    def start(self) -> BinanceStreams:
        threading.Thread(target=self._serve, name="binance-streams", daemon=True).start()
        if not self._ready.wait(10.0):
            raise RuntimeError("the websocket double did not start")
        return self

    def close(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10.0)
        loop.call_soon_threadsafe(loop.stop)
        self._loop = None

    def drop(self) -> None:
        """Close every open connection (the client must reconnect and resubscribe)."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._close_sockets(), self._loop).result(10.0)

    # ---------------------------------------------------------------- the server

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.run_until_complete(self._open())
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _open(self) -> None:
        app = web.Application()
        app.router.add_get("/stream/ws/{stream}", self._connection)  # ccxt appends a stream index
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))  # a free port, known before the site starts
        self.port = listener.getsockname()[1]
        await web.SockSite(self._runner, listener).start()

    async def _shutdown(self) -> None:
        await self._close_sockets()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _close_sockets(self) -> None:
        for connection in list(self._sockets):
            await connection.close()

    async def _connection(self, request: web.Request) -> web.WebSocketResponse:
        connection = web.WebSocketResponse()
        await connection.prepare(request)
        self.connections += 1
        self._sockets.add(connection)
        streams: list[str] = []
        pusher = asyncio.create_task(self._push(connection, streams))
        try:
            async for message in connection:
                if message.type is not WSMsgType.TEXT:
                    continue
                request_body = json.loads(message.data)
                if request_body.get("method") == "SUBSCRIBE":
                    streams.extend(request_body["params"])
                    self.subscriptions.extend(request_body["params"])
                    await connection.send_json({"result": None, "id": request_body.get("id")})
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await pusher  # a push to a connection closing under it fails; that is the drop
            self._sockets.discard(connection)
        return connection

    async def _push(self, connection: web.WebSocketResponse, streams: list[str]) -> None:
        while not connection.closed:
            await asyncio.sleep(self.interval_s)
            for stream in list(streams):
                for message in self._messages(stream):
                    await connection.send_json(message)

    def _messages(self, stream: str) -> list[dict[str, Any]]:
        market, _, kind = stream.partition("@")
        symbol = market.upper()
        now = int(time.time() * 1000)
        with self.rest.lock:
            mid = self.rest.prices[symbol]
            if kind.startswith("depth"):
                self.rest.book_seq += 1
                seq = self.rest.book_seq
        if kind == "trade":
            self._trade_id += 1
            trade = {"e": "trade", "E": now, "s": symbol, "t": self._trade_id, "p": f"{mid:.2f}", "q": "0.5"}
            return [{**trade, "T": now, "m": False, "M": True}]
        if kind.startswith("kline_"):
            minute = now // 60_000 * 60_000
            return [
                self._kline(symbol, kind[6:], start, mid, closed)
                for start, closed in ((minute - 60_000, True), (minute, False))
            ]
        if kind.startswith("depth"):
            bids, asks = [[f"{mid - 1:.2f}", "1.5"]], [[f"{mid + 1:.2f}", "1.0"]]
            return [{"e": "depthUpdate", "E": now, "s": symbol, "U": seq, "u": seq, "b": bids, "a": asks}]
        return []

    @staticmethod
    def _kline(symbol: str, interval: str, start: int, mid: float, closed: bool) -> dict[str, Any]:
        kline = {
            "t": start,
            "T": start + 59_999,
            "s": symbol,
            "i": interval,
            "f": 1,
            "L": 1,
            "o": f"{mid:.2f}",
            "c": f"{mid:.2f}",
            "h": f"{mid + 5:.2f}",
            "l": f"{mid - 5:.2f}",
            "v": "10.0",
            "n": 10,
            "x": closed,
            "q": "0",
            "V": "5",
            "Q": "0",
            "B": "0",
        }
        return {"e": "kline", "E": int(time.time() * 1000), "s": symbol, "k": kline}
