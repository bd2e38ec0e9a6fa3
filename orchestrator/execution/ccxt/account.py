"""``CcxtAccount``: what a ccxt venue account answers (orders, fills,
balances, positions, prices). Every read goes through the error policy:
network and rate-limit errors are retried with bounded jittered backoff,
refusals raise ``VenueError`` at once. ``CcxtExchange`` adds sending.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from orchestrator.execution.adapter import ExchangeAdapter
from orchestrator.execution.ccxt.client import read_credentials
from orchestrator.execution.ccxt.config import CcxtVenueConfig
from orchestrator.execution.ccxt.convert import order_update, trade_fill
from orchestrator.execution.ccxt.errors import ErrorKind, VenueAnswerError, VenueError, classify, describe
from orchestrator.execution.ccxt.quirks import VenueQuirks, quirks_for
from orchestrator.execution.ccxt.retry import Backoff, read_with_retry
from orchestrator.orders import Fill, OrderIntent, OrderUpdate

log = structlog.get_logger("orchestrator.ccxt")


def wall_ms() -> int:
    return int(time.time() * 1000)


class CcxtAccount(ExchangeAdapter):
    persistent = True

    def __init__(self, name: str, config: CcxtVenueConfig, *, credentials: dict[str, str] | None = None) -> None:
        super().__init__(name)
        self.config = config
        self.quirks: VenueQuirks = quirks_for(config.exchange, config.market_type)
        self.credentials = credentials if credentials is not None else read_credentials(name, config)
        self.backoff = Backoff(config.backoff_initial_s, config.backoff_max_s)
        self.client: Any = None
        self._intents: dict[str, OrderIntent] = {}  # our orders the adapter knows, by client id

    async def _find(self, client_order_id: str, symbol: str) -> OrderUpdate | None:
        intent = self._intents.get(client_order_id)
        if self.quirks.lookup == "param":
            try:
                order = await self.client.fetch_order(None, symbol, {self.quirks.lookup_param: client_order_id})
            except Exception as exc:
                if classify(exc) is ErrorKind.NOT_FOUND:
                    return None
                raise
            return order_update(order, venue=self.name, intent=intent, now_ms=wall_ms())
        candidates = list(await self.client.fetch_open_orders(symbol))
        if self.client.has.get("fetchClosedOrders"):
            candidates += await self.client.fetch_closed_orders(symbol)
        for order in candidates:
            if _client_id(order) == client_order_id:
                return order_update(order, venue=self.name, intent=intent, now_ms=wall_ms())
        return None

    async def _order_trades(self, intent: OrderIntent, venue_order_id: str | None) -> list[dict[str, Any]]:
        if venue_order_id is None:
            return []
        param = self.quirks.trades_by_order_param
        params: dict[str, Any] = {param: venue_order_id} if param else {}
        # Without an order filter, ask from a minute before the order; an order's ts is event
        # time, so one from an old replay falls back to the venue's default window.
        recent = wall_ms() - intent.ts < 7 * 86_400_000
        since = intent.ts - 60_000 if not param and recent else None
        trades = await self._read(
            "fetch trades", lambda: self.client.fetch_my_trades(intent.symbol, since, None, params)
        )
        return [t for t in trades if str(t.get("order")) == venue_order_id]

    # ------------------------------------------------------------ queries

    async def _read(self, action: str, call: Any) -> Any:
        return await read_with_retry(self.name, action, call, retries=self.config.read_retries, backoff=self.backoff)

    async def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        async def fetch() -> list[OrderUpdate]:
            # Converted inside the retried read: an unreadable answer is asked again, then fails whole.
            orders = await self.client.fetch_open_orders(symbol)
            now = wall_ms()
            return [
                order_update(o, venue=self.name, intent=self._intents.get(_client_id(o)), now_ms=now) for o in orders
            ]

        found: list[OrderUpdate] = await self._read("fetch open orders", fetch)
        return found

    async def fetch_order(
        self, client_order_id: str, symbol: str, *, venue_order_id: str | None = None
    ) -> OrderUpdate | None:
        if venue_order_id is not None:
            intent = self._intents.get(client_order_id)

            async def by_id() -> OrderUpdate:
                order = await self.client.fetch_order(venue_order_id, symbol)
                return order_update(order, venue=self.name, intent=intent, now_ms=wall_ms())

            try:
                update: OrderUpdate = await self._read("fetch order", by_id)
            except VenueError as exc:
                if exc.kind is ErrorKind.NOT_FOUND:
                    return None
                raise
            return update
        found: OrderUpdate | None = await self._read("fetch order", lambda: self._find(client_order_id, symbol))
        return found

    async def order_fills(self, intent: OrderIntent, update: OrderUpdate) -> list[Fill]:
        trades = await self._order_trades(intent, update.venue_order_id)
        fills = []
        for trade in trades:
            try:
                fills.append(trade_fill(trade, venue=self.name, intent=intent))
            except VenueAnswerError as exc:
                # Its quantity is still in the order's filled quantity and in the balances adopted at start.
                log.error(
                    "venue_bad_trade", venue=self.name, client_order_id=intent.client_order_id, error=describe(exc)
                )
        return fills

    async def balances(self) -> dict[str, float]:
        balance = await self._read("fetch balance", self.client.fetch_balance)
        totals = balance.get("total") or {}
        return {currency: float(amount) for currency, amount in totals.items() if amount}

    async def positions(self) -> dict[str, float]:
        if self.config.market_type == "spot":
            # A spot account's position in a symbol is its balance of the base currency.
            balances = await self.balances()
            held: dict[str, float] = {}
            for symbol, market in (self.client.markets or {}).items():
                if market.get("quote") == self.config.quote_currency and balances.get(market.get("base", "")):
                    held[symbol] = balances[market["base"]]
            return held
        positions = await self._read("fetch positions", self.client.fetch_positions)
        result: dict[str, float] = {}
        for position in positions:
            contracts = float(position.get("contracts") or 0.0)
            if contracts:
                sign = -1.0 if position.get("side") == "short" else 1.0
                size = float(position.get("contractSize") or 1.0)
                result[str(position["symbol"])] = sign * contracts * size
        return result

    async def last_price(self, symbol: str) -> float | None:
        ticker = await self._read("fetch ticker", lambda: self.client.fetch_ticker(symbol))
        last = ticker.get("last") or ticker.get("close")
        return None if last is None else float(last)


def _client_id(order: Any) -> str:
    return str(order.get("clientOrderId") or "") if isinstance(order, dict) else ""
