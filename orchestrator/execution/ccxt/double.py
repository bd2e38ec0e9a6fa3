"""A loopback Binance spot REST double for the real ccxt client (tests, offline demos).

The tests point ccxt's ``binance`` class at ``http://127.0.0.1:<port>`` (its
``urls['api']`` entries) and it speaks HTTP to this server: exchangeInfo,
depth, aggTrades, klines, ticker, order POST/GET/DELETE, openOrders,
allOrders, myTrades and account. ``faults`` inject what venues do to
clients: an order accepted but answered too late (timeout after accept), a
stall until the test releases it (to kill -9 the daemon mid-request), 429 /
418 rate limits, 5xx, Binance error codes, a dropped connection, and a raw
reply that is not the JSON asked for (before or after the venue acted).
``listeners`` hear every order change (new, trade, canceled): the websocket
double pushes them as Binance's ``executionReport`` events.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "test-key"
SECRET = "test-secret"


@dataclass
class Fault:
    """One injected behaviour for requests matching ``method`` and ``path``."""

    method: str
    path: str
    action: str  # timeout_after_accept | stall_after_accept | cut_after_accept | http | raw | raw_after_accept | drop
    status: int = 500
    body: dict[str, Any] | None = None
    raw: str = ""  # the bytes a raw reply sends instead of JSON (truncated JSON, an HTML error page)
    count: int = 1
    delay_s: float = 2.0


@dataclass
class DoubleOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    quantity: float
    price: float
    status: str = "NEW"
    executed: float = 0.0
    quote: float = 0.0
    time: int = 0
    update_time: int = 0


# (order, execution type NEW / TRADE / CANCELED, the trade of a TRADE); called under the double's lock.
OrderListener = Callable[[DoubleOrder, str, dict[str, Any] | None], None]


@dataclass
class BinanceDouble:
    prices: dict[str, float] = field(default_factory=lambda: {"BTCUSDT": 50_000.0, "ETHUSDT": 3_000.0})
    balances: dict[str, float] = field(default_factory=lambda: {"USDT": 100_000.0, "BTC": 0.0, "ETH": 0.0})
    orders: list[DoubleOrder] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    accepted: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    book_seq: int = 0  # update id of the book; the websocket double's depth diffs follow it
    listeners: list[OrderListener] = field(default_factory=list)
    port: int = 0
    server: ThreadingHTTPServer | None = None

    # ---------------------------------------------------------------- helpers for tests

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api_urls(self) -> dict[str, str]:
        return {
            "public": f"{self.base}/api/v3",
            "private": f"{self.base}/api/v3",
            "v1": f"{self.base}/api/v1",
            "sapi": f"{self.base}/sapi/v1",
        }

    def close(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def orders_with(self, client_order_id: str) -> list[DoubleOrder]:
        with self.lock:
            return [o for o in self.orders if o.client_order_id == client_order_id]

    def count(self, method: str, path: str) -> int:
        with self.lock:
            return sum(1 for m, p, _ in self.requests if m == method and p == path)

    def execute(self, client_order_id: str, quantity: float | None = None, price: float | None = None) -> None:
        """A resting order trades at the venue (all that is left, or ``quantity`` of it)."""
        with self.lock:
            (order,) = [o for o in self.orders if o.client_order_id == client_order_id]
            self.fill(order, order.price if price is None else price, quantity)

    def cancel(self, client_order_id: str) -> None:
        """A resting order is canceled at the venue, not by the client (an operator, the web page)."""
        with self.lock:
            (order,) = [o for o in self.orders if o.client_order_id == client_order_id]
            order.status, order.update_time = "CANCELED", int(time.time() * 1000)
            self._changed(order, "CANCELED")

    # ---------------------------------------------------------------- the venue

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and path.endswith(fault.path) and fault.count > 0:
                    fault.count -= 1
                    return fault
        return None

    def market(self, symbol: str) -> dict[str, Any]:
        base = symbol[:-4]
        return {
            "symbol": symbol,
            "status": "TRADING",
            "baseAsset": base,
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "0.00010", "maxQty": "9000.00", "stepSize": "0.00010"},
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "5.00",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": ["SPOT"],
            "permissionSets": [["SPOT"]],
        }

    def order_json(self, order: DoubleOrder, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "price": f"{order.price if order.type == 'LIMIT' else 0.0:.8f}",
            "origQty": f"{order.quantity:.8f}",
            "executedQty": f"{order.executed:.8f}",
            "cummulativeQuoteQty": f"{order.quote:.8f}",
            "status": order.status,
            "timeInForce": "GTC",
            "type": order.type,
            "side": order.side,
            "stopPrice": "0.00000000",
            "time": order.time,
            "updateTime": order.update_time,
            "isWorking": True,
            "transactTime": order.update_time,
        }
        if full:
            data["fills"] = [
                {
                    "price": t["price"],
                    "qty": t["qty"],
                    "commission": t["commission"],
                    "commissionAsset": t["commissionAsset"],
                    "tradeId": t["id"],
                }
                for t in self.trades
                if t["orderId"] == order.order_id
            ]
        return data

    def _changed(self, order: DoubleOrder, execution: str, trade: dict[str, Any] | None = None) -> None:
        for listener in list(self.listeners):
            listener(order, execution, trade)

    def fill(self, order: DoubleOrder, price: float, quantity: float | None = None) -> None:
        left = order.quantity - order.executed
        qty = left if quantity is None else min(quantity, left)
        now = int(time.time() * 1000)
        base = order.symbol[:-4]
        sign = 1.0 if order.side == "BUY" else -1.0
        self.balances[base] = self.balances.get(base, 0.0) + sign * qty
        self.balances["USDT"] = self.balances.get("USDT", 0.0) - sign * qty * price
        order.executed += qty
        order.quote += qty * price
        order.status = "FILLED" if order.executed >= order.quantity - 1e-12 else "PARTIALLY_FILLED"
        order.update_time = now
        self.trades.append(
            {
                "symbol": order.symbol,
                "id": len(self.trades) + 1,
                "orderId": order.order_id,
                "orderListId": -1,
                "price": f"{price:.8f}",
                "qty": f"{qty:.8f}",
                "quoteQty": f"{qty * price:.8f}",
                "commission": "0.00000000",
                "commissionAsset": "USDT",
                "time": now,
                "isBuyer": order.side == "BUY",
                "isMaker": order.type == "LIMIT",
                "isBestMatch": True,
            }
        )
        self._changed(order, "TRADE", self.trades[-1])

    def create(self, params: dict[str, str]) -> tuple[int, Any]:
        symbol = params.get("symbol", "")
        if symbol not in self.prices:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        client_id = params.get("newClientOrderId") or f"auto{len(self.orders) + 1}"
        if any(o.client_order_id == client_id and o.status in ("NEW", "PARTIALLY_FILLED") for o in self.orders):
            return 400, {"code": -2010, "msg": "Duplicate order sent."}
        quantity = float(params["quantity"])
        side, kind = params["side"], params["type"]
        price = float(params.get("price", "0") or 0.0)
        market = self.prices[symbol]
        if side == "BUY" and quantity * (price or market) > self.balances.get("USDT", 0.0):
            return 400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}
        now = int(time.time() * 1000)
        order = DoubleOrder(
            len(self.orders) + 1, client_id, symbol, side, kind, quantity, price, time=now, update_time=now
        )
        self.orders.append(order)
        self._changed(order, "NEW")
        crosses = kind == "MARKET" or (side == "BUY" and price >= market) or (side == "SELL" and price <= market)
        if crosses:
            self.fill(order, market if kind == "MARKET" else price)
        return 200, self.order_json(order, full=True)

    def find(self, params: dict[str, str]) -> DoubleOrder | None:
        for order in self.orders:
            if params.get("origClientOrderId") and order.client_order_id == params["origClientOrderId"]:
                return order
            if params.get("orderId") and str(order.order_id) == params["orderId"]:
                return order
        return None

    def handle(self, method: str, path: str, params: dict[str, str], headers: Any) -> tuple[int, Any]:
        route = path.split("/api/v3/", 1)[-1] if "/api/v3/" in path else path
        private = route in ("order", "openOrders", "allOrders", "myTrades", "account")
        if private and (headers.get("X-MBX-APIKEY") != API_KEY or "signature" not in params):
            return 401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        now = int(time.time() * 1000)
        if route == "exchangeInfo":
            return 200, {
                "timezone": "UTC",
                "serverTime": now,
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [self.market(s) for s in self.prices],
            }
        if route in ("ping", "time"):
            return 200, {"serverTime": now} if route == "time" else {}
        if route == "depth":
            mid = self.prices[params["symbol"]]
            return 200, {
                "lastUpdateId": self.book_seq,
                "bids": [[f"{mid - 1:.2f}", "1.5"], [f"{mid - 2:.2f}", "3.0"]],
                "asks": [[f"{mid + 1:.2f}", "1.0"], [f"{mid + 2:.2f}", "2.0"]],
            }
        if route == "aggTrades":
            mid = self.prices[params["symbol"]]
            return 200, [{"a": now, "p": f"{mid:.2f}", "q": "0.5", "f": 1, "l": 1, "T": now, "m": False, "M": True}]
        if route == "klines":
            mid = self.prices[params["symbol"]]
            minute = now // 60_000 * 60_000
            return 200, [
                [
                    t,
                    f"{mid:.2f}",
                    f"{mid + 5:.2f}",
                    f"{mid - 5:.2f}",
                    f"{mid:.2f}",
                    "10.0",
                    t + 59_999,
                    "0",
                    10,
                    "5",
                    "0",
                    "0",
                ]
                for t in (minute - 120_000, minute - 60_000, minute)
            ]
        if route == "ticker/24hr":
            mid = self.prices[params["symbol"]]
            return 200, {
                "symbol": params["symbol"],
                "lastPrice": f"{mid:.2f}",
                "bidPrice": f"{mid - 1:.2f}",
                "askPrice": f"{mid + 1:.2f}",
                "openPrice": f"{mid:.2f}",
                "highPrice": f"{mid:.2f}",
                "lowPrice": f"{mid:.2f}",
                "volume": "1",
                "quoteVolume": "1",
                "openTime": now - 86_400_000,
                "closeTime": now,
                "prevClosePrice": f"{mid:.2f}",
                "priceChange": "0",
                "priceChangePercent": "0",
                "weightedAvgPrice": f"{mid:.2f}",
                "count": 1,
            }
        if route == "order" and method == "POST":
            return self.create(params)
        if route == "order" and method == "GET":
            order = self.find(params)
            return (200, self.order_json(order)) if order else (400, {"code": -2013, "msg": "Order does not exist."})
        if route == "order" and method == "DELETE":
            order = self.find(params)
            if order is None or order.status not in ("NEW", "PARTIALLY_FILLED"):
                return 400, {"code": -2011, "msg": "Unknown order sent."}
            order.status, order.update_time = "CANCELED", now
            self._changed(order, "CANCELED")
            return 200, self.order_json(order)
        if route == "openOrders":
            return 200, [
                self.order_json(o)
                for o in self.orders
                if o.status in ("NEW", "PARTIALLY_FILLED") and params.get("symbol", o.symbol) == o.symbol
            ]
        if route == "allOrders":
            return 200, [self.order_json(o) for o in self.orders if o.symbol == params.get("symbol")]
        if route == "myTrades":
            since = int(params.get("startTime", "0"))
            return 200, [t for t in self.trades if t["symbol"] == params.get("symbol") and t["time"] >= since]
        if route == "account":
            return 200, {
                "makerCommission": 0,
                "takerCommission": 0,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "updateTime": now,
                "accountType": "SPOT",
                "permissions": ["SPOT"],
                "balances": [
                    {"asset": a, "free": f"{v:.8f}", "locked": "0.00000000"} for a, v in self.balances.items()
                ],
            }
        return 404, {"code": -1100, "msg": f"no route {method} {path}"}


def _handler(double: BinanceDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                params.update({k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()})
            with double.lock:
                double.requests.append((method, url.path, params))
            fault = double.take_fault(method, url.path)
            if fault is not None and fault.action == "drop":
                self.close_connection = True
                self.connection.close()
                return
            if fault is not None and fault.action == "http":
                self._reply(fault.status, fault.body or {"code": -1000, "msg": "injected"})
                return
            if fault is not None and fault.action == "raw":
                self._send(fault.status, fault.raw.encode())
                return
            with double.lock:
                status, body = double.handle(method, url.path, params, self.headers)
            if fault is not None and fault.action == "raw_after_accept":
                self._send(fault.status, fault.raw.encode())  # the venue acted; its answer is garbage
                return
            if fault is not None and fault.action == "cut_after_accept":
                self._cut(status, json.dumps(body).encode())
                return
            if fault is not None and fault.action == "timeout_after_accept":
                time.sleep(fault.delay_s)  # longer than the client's timeout: it never reads this
            if fault is not None and fault.action == "stall_after_accept":
                double.accepted.set()
                double.release.wait(30.0)
                self.close_connection = True
                return
            self._reply(status, body)

        def _reply(self, status: int, body: Any) -> None:
            self._send(status, json.dumps(body).encode())

        def _send(self, status: int, payload: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (timeout) or died

        def _cut(self, status: int, payload: bytes) -> None:
            # Headers promise the whole answer; the connection dies half way through it.
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
            except OSError:
                pass
            self.close_connection = True

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

    return Handler


def start_double(double: BinanceDouble | None = None) -> BinanceDouble:
    double = double or BinanceDouble()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(double))
    server.daemon_threads = True
    double.server = server
    double.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, name="binance-double", daemon=True).start()
    return double
