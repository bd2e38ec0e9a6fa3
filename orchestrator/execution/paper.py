"""A simulated venue: fills orders against the latest book, trade or bar.

Its own adapter class, so the live adapters carry no ``if dry_run`` branch.
Market orders walk the opposite side of the book level by level (the part
beyond the visible depth fills at the last level) and then pay
``slippage_bps``; without a book they fill at the last trade or bar close
plus slippage. Limit orders that cross fill at once as takers; the rest
rest and fill completely, as makers at their limit, when the book touches
the limit or a trade or bar trades through it (no queue-position model).
With ``latency_ms`` an order reaches the book only once market time has
moved that far. Everything is driven by market events, never the wall
clock, so a replay gives the same fills every time.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.events import Bar, BookUpdate, MarketEvent, Trade
from orchestrator.execution.adapter import ExchangeAdapter
from orchestrator.execution.config import PaperExchangeConfig
from orchestrator.orders import Fill, OrderIntent, OrderStatus, OrderType, OrderUpdate, Side


@dataclass(slots=True)
class _PaperOrder:
    intent: OrderIntent
    active_from: int
    status: OrderStatus = OrderStatus.OPEN
    filled: float = 0.0
    average_price: float | None = None
    reason: str | None = None
    arrived: bool = False  # has it met the book yet (after latency)?


class PaperExchange(ExchangeAdapter):
    """A paper account at a simulated venue named ``name``."""

    def __init__(self, config: PaperExchangeConfig, name: str = "paper") -> None:
        super().__init__(name)
        self.config = config
        self.cash = config.initial_cash
        self.holdings: dict[str, float] = {}
        self._orders: dict[str, _PaperOrder] = {}
        self._working: dict[str, dict[str, _PaperOrder]] = {}  # symbol -> open orders
        self._books: dict[str, BookUpdate] = {}
        self._last_price: dict[str, float] = {}
        self._now = 0
        self._fill_count = 0

    # ------------------------------------------------------------ market data

    def on_market(self, event: MarketEvent) -> None:
        self._now = event.ts
        symbol = event.symbol
        if isinstance(event, BookUpdate):
            self._books[symbol] = event
            if event.bid_prices and event.ask_prices:
                self._last_price[symbol] = event.mid
        elif isinstance(event, Trade):
            self._last_price[symbol] = event.price
        else:
            self._last_price[symbol] = event.close
        working = self._working.get(symbol)
        if working:
            for order in list(working.values()):
                if order.active_from <= event.ts:
                    self._work(order, event)

    # ------------------------------------------------------------ orders

    def submit(self, intent: OrderIntent) -> None:
        existing = self._orders.get(intent.client_order_id)
        if existing is not None:
            # Idempotent: a resend learns the order's current state, nothing more.
            self._report(existing)
            return
        order = _PaperOrder(intent=intent, active_from=max(intent.ts, self._now) + self.config.latency_ms)
        self._orders[intent.client_order_id] = order
        if intent.symbol not in self._last_price:
            self._finish(order, OrderStatus.REJECTED, f"no market data for {intent.symbol}")
            return
        self._report(order)
        self._working.setdefault(intent.symbol, {})[intent.client_order_id] = order
        if order.active_from <= self._now:
            self._work(order, None)

    def cancel(self, client_order_id: str) -> None:
        order = self._orders.get(client_order_id)
        if order is None or order.status.is_terminal:
            return
        self._finish(order, OrderStatus.CANCELED, "canceled")

    def _work(self, order: _PaperOrder, event: MarketEvent | None) -> None:
        """Try to fill an active order against the current market state."""
        intent = order.intent
        remaining = intent.quantity - order.filled
        if intent.order_type is OrderType.MARKET:
            price = self._taker_price(intent.symbol, intent.side, remaining)
            if price is not None:
                self._execute(order, remaining, price, maker=False)
            return
        limit = intent.limit_price
        assert limit is not None  # guaranteed by OrderIntent validation
        book = self._books.get(intent.symbol)
        buy = intent.side is Side.BUY
        if not order.arrived:
            # On arrival a crossing limit order takes liquidity up to its limit.
            order.arrived = True
            touch = (book.best_ask if buy else book.best_bid) if book else self._last_price[intent.symbol]
            if (buy and touch <= limit) or (not buy and touch >= limit):
                price = self._taker_price(intent.symbol, intent.side, remaining)
                if price is not None:
                    price = min(price, limit) if buy else max(price, limit)
                    self._execute(order, remaining, price, maker=False)
            return
        if event is None or not self._trades_through(event, buy, limit):
            return
        self._execute(order, remaining, limit, maker=True)

    @staticmethod
    def _trades_through(event: MarketEvent, buy: bool, limit: float) -> bool:
        if isinstance(event, BookUpdate):
            if buy:
                return bool(event.ask_prices) and event.ask_prices[0] <= limit
            return bool(event.bid_prices) and event.bid_prices[0] >= limit
        if isinstance(event, Trade):
            return event.price < limit if buy else event.price > limit
        assert isinstance(event, Bar)
        return event.low < limit if buy else event.high > limit

    def _taker_price(self, symbol: str, side: Side, quantity: float) -> float | None:
        book = self._books.get(symbol)
        slip = self.config.slippage_bps / 10_000.0
        sign = side.sign
        if book is not None and book.bid_prices and book.ask_prices:
            prices = book.ask_prices if side is Side.BUY else book.bid_prices
            sizes = book.ask_sizes if side is Side.BUY else book.bid_sizes
            left = quantity
            cost = 0.0
            for price, size in zip(prices, sizes, strict=False):
                take = min(left, size)
                cost += take * price
                left -= take
                if left <= 0.0:
                    break
            if left > 0.0:
                cost += left * prices[-1]
            return cost / quantity * (1.0 + sign * slip)
        last = self._last_price.get(symbol)
        return None if last is None else last * (1.0 + sign * slip)

    def _execute(self, order: _PaperOrder, quantity: float, price: float, *, maker: bool) -> None:
        intent = order.intent
        fee_rate = (self.config.maker_fee_bps if maker else self.config.taker_fee_bps) / 10_000.0
        fee = quantity * price * fee_rate
        signed = quantity * intent.side.sign
        held = self.holdings.get(intent.symbol, 0.0)
        if intent.side is Side.BUY and not self.config.allow_leverage and quantity * price + fee > self.cash + 1e-9:
            self._finish(order, OrderStatus.REJECTED, "insufficient funds")
            return
        if intent.side is Side.SELL and not self.config.allow_short and held + signed < -1e-12:
            self._finish(order, OrderStatus.REJECTED, "short selling not allowed")
            return
        self.cash -= signed * price + fee
        self.holdings[intent.symbol] = held + signed
        previous = order.filled
        order.filled += quantity
        order.average_price = (
            price if order.average_price is None else (order.average_price * previous + price * quantity) / order.filled
        )
        self._fill_count += 1
        fill = Fill(
            fill_id=f"{intent.client_order_id}f{self._fill_count}",
            client_order_id=intent.client_order_id,
            trace_id=intent.trace_id,
            ts=self._now,
            venue=self.name,
            symbol=intent.symbol,
            side=intent.side,
            quantity=quantity,
            price=price,
            fee=fee,
            fee_currency=self.config.quote_currency,
            liquidity="maker" if maker else "taker",
        )
        self.listener.on_fill(fill)
        if order.filled >= intent.quantity - 1e-12:
            self._finish(order, OrderStatus.FILLED, None)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
            self._report(order)

    def _finish(self, order: _PaperOrder, status: OrderStatus, reason: str | None) -> None:
        order.status = status
        order.reason = reason
        working = self._working.get(order.intent.symbol)
        if working is not None:
            working.pop(order.intent.client_order_id, None)
        self._report(order)

    def _report(self, order: _PaperOrder) -> None:
        intent = order.intent
        self.listener.on_order_update(self._update_of(order, intent))

    def _update_of(self, order: _PaperOrder, intent: OrderIntent) -> OrderUpdate:
        return OrderUpdate(
            client_order_id=intent.client_order_id,
            trace_id=intent.trace_id,
            ts=self._now,
            venue=self.name,
            symbol=intent.symbol,
            side=intent.side,
            quantity=intent.quantity,
            status=order.status,
            filled_quantity=order.filled,
            average_price=order.average_price,
            venue_order_id=intent.client_order_id,
            reason=order.reason,
        )

    # ------------------------------------------------------------ queries

    async def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        return [
            self._update_of(order, order.intent)
            for orders in self._working.values()
            for order in orders.values()
            if symbol is None or order.intent.symbol == symbol
        ]

    async def fetch_order(self, client_order_id: str, symbol: str) -> OrderUpdate | None:
        order = self._orders.get(client_order_id)
        return None if order is None else self._update_of(order, order.intent)

    async def balances(self) -> dict[str, float]:
        balances = {self.config.quote_currency: self.cash}
        for symbol, quantity in self.holdings.items():
            base = symbol.split("/", 1)[0]
            balances[base] = balances.get(base, 0.0) + quantity
        return balances

    async def positions(self) -> dict[str, float]:
        return {symbol: quantity for symbol, quantity in self.holdings.items() if abs(quantity) > 1e-12}
