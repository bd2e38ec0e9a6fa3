"""Binance's market and user-data streams over a loopback websocket, for ccxt.pro (tests, offline demos).

The REST double (``double.py``) serves snapshots; this one serves the
``/ws`` streams ccxt.pro's ``binance`` subscribes to with ``SUBSCRIBE``:
``<symbol>@trade``, ``<symbol>@kline_1m`` and ``<symbol>@depth``. Every
``interval_s`` each subscription gets one message: a trade with a new id,
the last closed and the current kline, a depth update numbered after the
REST double's book sequence (so ccxt's snapshot-plus-diffs check holds).
``drop()`` closes every connection, as a venue does to its clients.

``/ws-api/v3`` is the WebSocket API, where ccxt.pro's ``watch_orders``
subscribes to a spot account's user-data stream with the signed request
``userDataStream.subscribe.signature`` (the REST double's key and secret;
the HMAC is checked). It answers as Binance does, ``{"id", "status": 200,
"result": {"subscriptionId"}}`` or an error (``refuse_auth``: -2015,
``busy_subscribes``: -1001), then pushes an ``executionReport`` event,
wrapped as ``{"subscriptionId", "event"}``, for every order change in the
REST double: new, trade (partial or full fill), canceled.

The server runs an asyncio loop in a thread of its own, so the client under
test keeps its loop to itself. Its URL path holds ``/stream`` because that
is how ccxt tells Binance's spot streams from its futures streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from orchestrator.execution.ccxt.double import API_KEY, SECRET, BinanceDouble, DoubleOrder


@dataclass
class BinanceStreams:
    rest: BinanceDouble
    interval_s: float = 0.02
    subscriptions: list[str] = field(default_factory=list)
    connections: int = 0  # websocket connections accepted so far
    api_connections: int = 0  # of those, to the WebSocket API (user-data streams)
    user_subscriptions: int = 0  # userDataStream.subscribe.signature requests answered with a subscription
    api_requests: list[str] = field(default_factory=list)  # WebSocket API methods asked for
    refuse_auth: bool = False  # answer subscriptions with Binance's -2015 (bad key or permissions)
    busy_subscribes: int = 0  # answer this many subscriptions with -1001 (internal error, try again)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _sockets: set[web.WebSocketResponse] = field(default_factory=set)
    _trade_id: int = 0
    _ready: threading.Event = field(default_factory=threading.Event)
    _user_streams: dict[web.WebSocketResponse, tuple[int, asyncio.Queue[dict[str, Any]]]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stream/ws"

    @property
    def api_url(self) -> str:
        """The WebSocket API (``api_urls`` key ``ws.ws-api.spot``)."""
        return f"ws://127.0.0.1:{self.port}/ws-api/v3"

    @property
    def open_user_streams(self) -> int:
        """Connections subscribed to a user-data stream right now."""
        return len(self._user_streams)

    def start(self) -> BinanceStreams:
        threading.Thread(target=self._serve, name="binance-streams", daemon=True).start()
        if not self._ready.wait(10.0):
            raise RuntimeError("the websocket double did not start")
        with self.rest.lock:
            self.rest.listeners.append(self._order_changed)
        return self

    def close(self) -> None:
        loop = self._loop
        if loop is None:
            return
        with self.rest.lock:
            if self._order_changed in self.rest.listeners:
                self.rest.listeners.remove(self._order_changed)
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
        app.router.add_get("/ws-api/v3", self._api_connection)
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

    # ---------------------------------------------------------------- the WebSocket API: user-data streams

    async def _api_connection(self, request: web.Request) -> web.WebSocketResponse:
        connection = web.WebSocketResponse()
        await connection.prepare(request)
        self.connections += 1
        self.api_connections += 1
        self._sockets.add(connection)
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        pusher = asyncio.create_task(self._push_events(connection, events))
        try:
            async for message in connection:
                if message.type is not WSMsgType.TEXT:
                    continue
                answer = self._api_answer(json.loads(message.data))
                await connection.send_json(answer)
                if "result" in answer:  # events only after the answer, as the venue does
                    self._user_streams[connection] = (answer["result"]["subscriptionId"], events)
        finally:
            self._user_streams.pop(connection, None)
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await pusher
            self._sockets.discard(connection)
        return connection

    def _api_answer(self, request: dict[str, Any]) -> dict[str, Any]:
        method, request_id = request.get("method"), request.get("id")
        self.api_requests.append(str(method))
        if method != "userDataStream.subscribe.signature":
            return {"id": request_id, "status": 400, "error": {"code": -1100, "msg": f"unknown method {method}"}}
        params = dict(request.get("params") or {})
        signature = str(params.pop("signature", ""))
        payload = "&".join(f"{key}={params[key]}" for key in sorted(params))
        expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if self.refuse_auth or params.get("apiKey") != API_KEY:
            error = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
            return {"id": request_id, "status": 401, "error": error}
        if not hmac.compare_digest(signature, expected):
            error = {"code": -1022, "msg": "Signature for this request is not valid."}
            return {"id": request_id, "status": 400, "error": error}
        if self.busy_subscribes > 0:
            self.busy_subscribes -= 1
            error = {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
            return {"id": request_id, "status": 500, "error": error}
        subscription = self.user_subscriptions
        self.user_subscriptions += 1
        return {"id": request_id, "status": 200, "result": {"subscriptionId": subscription}, "rateLimits": []}

    async def _push_events(self, connection: web.WebSocketResponse, events: asyncio.Queue[dict[str, Any]]) -> None:
        # One writer per connection keeps the events in the order the venue made them.
        while not connection.closed:
            await connection.send_json(await events.get())

    def _order_changed(self, order: DoubleOrder, execution: str, trade: dict[str, Any] | None) -> None:
        # Runs in the REST double's thread, under its lock: the event is a snapshot taken now.
        event = execution_report(order, execution, trade)
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._publish, event)

    def _publish(self, event: dict[str, Any]) -> None:
        for subscription, events in self._user_streams.values():
            events.put_nowait({"subscriptionId": subscription, "event": event})


def execution_report(order: DoubleOrder, execution: str, trade: dict[str, Any] | None) -> dict[str, Any]:
    """Binance's spot ``executionReport`` for one order change."""
    last_qty, last_price = (trade["qty"], trade["price"]) if trade else ("0.00000000", "0.00000000")
    canceled = execution == "CANCELED"
    return {
        "e": "executionReport",
        "E": int(time.time() * 1000),
        "s": order.symbol,
        # A cancel report carries the cancel request's own id in c and the order's in C.
        "c": f"cancel{order.order_id}" if canceled else order.client_order_id,
        "S": order.side,
        "o": order.type,
        "f": "GTC",
        "q": f"{order.quantity:.8f}",
        "p": f"{order.price if order.type == 'LIMIT' else 0.0:.8f}",
        "P": "0.00000000",
        "F": "0.00000000",
        "g": -1,
        "C": order.client_order_id if canceled else "",
        "x": execution,
        "X": order.status,
        "r": "NONE",
        "i": order.order_id,
        "l": last_qty,
        "z": f"{order.executed:.8f}",
        "L": last_price,
        "n": trade["commission"] if trade else "0",
        "N": trade["commissionAsset"] if trade else None,
        "T": order.update_time,
        "t": trade["id"] if trade else -1,
        "w": order.status in ("NEW", "PARTIALLY_FILLED"),
        "m": bool(trade and trade["isMaker"]),
        "M": False,
        "O": order.time,
        "Z": f"{order.quote:.8f}",
        "Y": f"{float(last_qty) * float(last_price):.8f}",
        "Q": "0.00000000",
    }
