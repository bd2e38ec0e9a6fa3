"""The paper exchange: fills against the latest book, trade or bar, in event time."""

from __future__ import annotations

import pytest

from orchestrator import Bar, BookUpdate, Trade
from orchestrator.execution.config import PaperExchangeConfig
from orchestrator.execution.paper import PaperExchange
from orchestrator.orders import Fill, OrderIntent, OrderStatus, OrderType, OrderUpdate, Side

SYMBOL = "BTC/USDT"


class Reports:
    """Where the exchange reports (the ExecutionListener protocol)."""

    def __init__(self) -> None:
        self.updates: list[OrderUpdate] = []
        self.fills: list[Fill] = []

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    def statuses(self, client_order_id: str) -> list[OrderStatus]:
        return [u.status for u in self.updates if u.client_order_id == client_order_id]


def exchange(**config: object) -> tuple[PaperExchange, Reports]:
    settings: dict[str, object] = {"taker_fee_bps": 0.0, "maker_fee_bps": 0.0, "slippage_bps": 0.0}
    settings.update(config)
    venue = PaperExchange(PaperExchangeConfig(**settings), name="paper")  # type: ignore[arg-type]
    reports = Reports()
    venue.bind(reports)
    return venue, reports


def order(
    side: Side, quantity: float, *, limit: float | None = None, ts: int = 0, coid: str = "o1", symbol: str = SYMBOL
) -> OrderIntent:
    return OrderIntent(
        client_order_id=coid,
        trace_id="t-1",
        ts=ts,
        venue="paper",
        symbol=symbol,
        side=side,
        quantity=quantity,
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        limit_price=limit,
    )


def book(
    ts: int = 1000,
    bids: tuple[float, ...] = (99.0, 98.0, 96.0),
    asks: tuple[float, ...] = (101.0, 102.0, 104.0),
    bid_sizes: tuple[float, ...] = (1.0, 2.0, 5.0),
    ask_sizes: tuple[float, ...] = (1.0, 2.0, 5.0),
) -> BookUpdate:
    return BookUpdate(SYMBOL, ts, bids, bid_sizes, asks, ask_sizes)


def bar(ts: int, close: float, low: float | None = None, high: float | None = None) -> Bar:
    return Bar(
        SYMBOL, ts, close, high if high is not None else close, low if low is not None else close, close, 1.0, 1000
    )


# ------------------------------------------------------------ market orders


def test_a_market_buy_walks_the_book_and_pays_fees_and_slippage() -> None:
    venue, reports = exchange(taker_fee_bps=5.0, slippage_bps=10.0)
    venue.on_market(book())
    venue.submit(order(Side.BUY, 4.0))
    (fill,) = reports.fills
    vwap = (1 * 101.0 + 2 * 102.0 + 1 * 104.0) / 4  # 102.25
    assert fill.price == pytest.approx(vwap * 1.001)
    assert fill.fee == pytest.approx(4 * vwap * 1.001 * 0.0005)
    assert (fill.quantity, fill.side, fill.liquidity, fill.ts) == (4.0, Side.BUY, "taker", 1000)
    assert fill.fee_currency == "USDT"
    assert reports.statuses("o1") == [OrderStatus.OPEN, OrderStatus.FILLED]
    assert reports.updates[-1].average_price == fill.price
    assert venue.cash == pytest.approx(100_000.0 - 4 * fill.price - fill.fee)


def test_a_market_sell_walks_the_bids_and_beyond_the_depth_fills_at_the_last_level() -> None:
    venue, reports = exchange(slippage_bps=10.0)
    venue.on_market(book())
    venue.submit(order(Side.SELL, 10.0))
    (fill,) = reports.fills
    vwap = (1 * 99.0 + 2 * 98.0 + 5 * 96.0 + 2 * 96.0) / 10  # 96.7
    assert fill.price == pytest.approx(vwap * 0.999)
    assert venue.holdings[SYMBOL] == -10.0


@pytest.mark.parametrize(
    ("event", "price"),
    [(Trade(SYMBOL, 1000, 250.0, 1.0, 1), 250.0), (bar(1000, 300.0, low=290.0, high=310.0), 300.0)],
    ids=["trade", "bar"],
)
def test_without_a_book_market_orders_fill_at_the_last_trade_or_bar_close(event: Trade | Bar, price: float) -> None:
    venue, reports = exchange(slippage_bps=20.0)
    venue.on_market(event)
    venue.submit(order(Side.BUY, 2.0))
    venue.submit(order(Side.SELL, 1.0, coid="o2"))
    buy, sell = reports.fills
    assert buy.price == pytest.approx(price * 1.002)
    assert sell.price == pytest.approx(price * 0.998)


# ------------------------------------------------------------ limit orders


def test_a_crossing_limit_order_fills_at_once_as_taker_never_worse_than_its_limit() -> None:
    venue, reports = exchange(taker_fee_bps=7.5, maker_fee_bps=2.0, slippage_bps=50.0)
    venue.on_market(book())
    venue.submit(order(Side.BUY, 1.0, limit=101.2))
    (fill,) = reports.fills
    assert fill.liquidity == "taker"
    assert fill.price == 101.2  # 101 plus 50 bps slippage would be 101.505: capped at the limit
    assert fill.fee == pytest.approx(101.2 * 0.00075)
    venue.submit(order(Side.SELL, 3.0, limit=90.0, coid="o2"))
    assert reports.fills[-1].price == pytest.approx((99.0 + 2 * 98.0) / 3 * 0.995)


@pytest.mark.parametrize(
    ("side", "limit", "no_fill", "fill"),
    [
        (Side.BUY, 100.0, book(2000, asks=(100.5,), ask_sizes=(1.0,)), book(3000, asks=(100.0,), ask_sizes=(1.0,))),
        (Side.BUY, 100.0, Trade(SYMBOL, 2000, 100.0, 1.0, -1), Trade(SYMBOL, 3000, 99.9, 1.0, -1)),
        (Side.BUY, 100.0, bar(2000, 100.5, low=100.0), bar(3000, 100.5, low=99.5)),
        (Side.SELL, 100.0, book(2000, bids=(99.5,), bid_sizes=(1.0,)), book(3000, bids=(100.0,), bid_sizes=(1.0,))),
        (Side.SELL, 100.0, Trade(SYMBOL, 2000, 100.0, 1.0, 1), Trade(SYMBOL, 3000, 100.1, 1.0, 1)),
        (Side.SELL, 100.0, bar(2000, 99.5, high=100.0), bar(3000, 99.5, high=100.5)),
    ],
    ids=["buy-book", "buy-trade", "buy-bar", "sell-book", "sell-trade", "sell-bar"],
)
def test_a_resting_limit_order_fills_as_maker_at_its_limit_when_the_market_trades_through(
    side: Side, limit: float, no_fill: BookUpdate | Trade | Bar, fill: BookUpdate | Trade | Bar
) -> None:
    venue, reports = exchange(taker_fee_bps=7.5, maker_fee_bps=2.0)
    venue.on_market(book(1000, bids=(98.0,), bid_sizes=(1.0,), asks=(102.0,), ask_sizes=(1.0,)))
    venue.submit(order(side, 2.0, limit=limit))
    assert reports.statuses("o1") == [OrderStatus.OPEN]
    venue.on_market(no_fill)
    assert reports.fills == [], "touching is not trading through"
    venue.on_market(fill)
    (done,) = reports.fills
    assert (done.price, done.quantity, done.liquidity, done.ts) == (limit, 2.0, "maker", 3000)
    assert done.fee == pytest.approx(2.0 * limit * 0.0002)
    assert reports.statuses("o1")[-1] is OrderStatus.FILLED


def test_a_negative_maker_fee_is_a_rebate() -> None:
    venue, reports = exchange(maker_fee_bps=-1.0)
    venue.on_market(bar(1000, 100.0))
    venue.submit(order(Side.BUY, 1.0, limit=99.0))
    venue.on_market(bar(2000, 99.0, low=98.0))
    assert reports.fills[0].fee == pytest.approx(-99.0 * 0.0001)


# ------------------------------------------------------------ latency


def test_latency_delays_fills_in_event_time() -> None:
    venue, reports = exchange(latency_ms=500)
    venue.on_market(bar(1000, 100.0))
    venue.submit(order(Side.BUY, 1.0, ts=1000))
    assert reports.statuses("o1") == [OrderStatus.OPEN]
    venue.on_market(bar(1499, 105.0))
    assert reports.fills == []
    venue.on_market(bar(1500, 110.0))
    (fill,) = reports.fills
    assert (fill.price, fill.ts) == (110.0, 1500)


def test_latency_counts_from_the_later_of_intent_and_market_time() -> None:
    venue, reports = exchange(latency_ms=100)
    venue.on_market(bar(5000, 100.0))
    venue.submit(order(Side.BUY, 1.0, ts=1000))  # an old intent still needs 100 ms from now
    venue.on_market(bar(5099, 101.0))
    assert reports.fills == []
    venue.on_market(bar(5100, 102.0))
    assert reports.fills[0].price == 102.0


def test_a_limit_order_arriving_after_latency_crosses_against_the_market_it_meets() -> None:
    venue, reports = exchange(latency_ms=100)
    venue.on_market(book(1000))
    venue.submit(order(Side.BUY, 1.0, limit=100.0, ts=1000))
    venue.on_market(book(1100, asks=(99.5,), ask_sizes=(3.0,)))
    (fill,) = reports.fills
    assert (fill.price, fill.liquidity) == (99.5, "taker")


# ------------------------------------------------------------ idempotency and refusals


def test_resubmitting_an_intent_creates_no_second_order() -> None:
    venue, reports = exchange()
    venue.on_market(bar(1000, 100.0))
    intent = order(Side.BUY, 1.0)
    venue.submit(intent)
    venue.submit(intent)
    venue.submit(order(Side.BUY, 5.0))  # same client order id, different content: still the first order
    assert len(reports.fills) == 1
    assert venue.holdings[SYMBOL] == 1.0
    assert reports.statuses("o1") == [OrderStatus.OPEN, OrderStatus.FILLED, OrderStatus.FILLED, OrderStatus.FILLED]


async def test_resubmitting_a_resting_order_keeps_one_order() -> None:
    venue, reports = exchange()
    venue.on_market(bar(1000, 100.0))
    intent = order(Side.BUY, 1.0, limit=90.0)
    venue.submit(intent)
    venue.submit(intent)
    assert len(await venue.open_orders()) == 1
    venue.on_market(bar(2000, 95.0, low=89.0))
    assert len(reports.fills) == 1
    assert await venue.open_orders() == []


def test_insufficient_funds_are_rejected_without_a_fill() -> None:
    venue, reports = exchange(initial_cash=1_000.0, taker_fee_bps=10.0)
    venue.on_market(bar(1000, 100.0))
    venue.submit(order(Side.BUY, 10.0))  # 1000 plus a 1.0 fee: more than the cash
    assert reports.fills == []
    assert reports.updates[-1].status is OrderStatus.REJECTED
    assert reports.updates[-1].reason == "insufficient funds"
    assert venue.cash == 1_000.0
    venue.submit(order(Side.BUY, 9.0, coid="o2"))
    assert reports.statuses("o2")[-1] is OrderStatus.FILLED


def test_leverage_lets_buys_spend_more_than_the_cash() -> None:
    venue, reports = exchange(initial_cash=1_000.0, allow_leverage=True)
    venue.on_market(bar(1000, 100.0))
    venue.submit(order(Side.BUY, 30.0))
    assert reports.fills[0].quantity == 30.0
    assert venue.cash == pytest.approx(-2_000.0)


def test_short_selling_can_be_refused() -> None:
    venue, reports = exchange(allow_short=False)
    venue.on_market(bar(1000, 100.0))
    venue.submit(order(Side.BUY, 1.0))
    venue.submit(order(Side.SELL, 1.5, coid="o2"))
    assert reports.updates[-1].reason == "short selling not allowed"
    venue.submit(order(Side.SELL, 1.0, coid="o3"))
    assert reports.statuses("o3")[-1] is OrderStatus.FILLED
    assert venue.holdings[SYMBOL] == 0.0


def test_an_order_without_market_data_is_rejected() -> None:
    venue, reports = exchange()
    venue.on_market(bar(1000, 100.0))
    venue.submit(order(Side.BUY, 1.0, symbol="ETH/USDT"))
    (update,) = reports.updates
    assert (update.status, update.reason) == (OrderStatus.REJECTED, "no market data for ETH/USDT")
    assert update.remaining == 0.0


# ------------------------------------------------------------ cancel and queries


async def test_cancel_a_resting_order_and_ignore_unknown_or_finished_ones() -> None:
    venue, reports = exchange()
    venue.on_market(bar(1000, 100.0))
    venue.submit(order(Side.BUY, 1.0, limit=90.0))
    venue.cancel("o1")
    assert reports.statuses("o1") == [OrderStatus.OPEN, OrderStatus.CANCELED]
    assert reports.updates[-1].reason == "canceled"
    assert await venue.open_orders() == []
    venue.on_market(bar(2000, 80.0, low=70.0))
    assert reports.fills == []
    count = len(reports.updates)
    venue.cancel("o1")
    venue.cancel("never-sent")
    assert len(reports.updates) == count


async def test_balances_positions_and_order_queries() -> None:
    venue, _ = exchange(initial_cash=10_000.0)
    venue.on_market(bar(1000, 100.0))
    venue.on_market(Bar("ETH/USDT", 1000, 10.0, 10.0, 10.0, 10.0, 1.0, 1000))
    venue.submit(order(Side.BUY, 2.0))
    venue.submit(order(Side.SELL, 5.0, coid="o2", symbol="ETH/USDT"))
    venue.submit(order(Side.BUY, 1.0, limit=50.0, coid="o3"))
    assert await venue.balances() == {"USDT": pytest.approx(10_000.0 - 200.0 + 50.0), "BTC": 2.0, "ETH": -5.0}
    assert await venue.positions() == {SYMBOL: 2.0, "ETH/USDT": -5.0}
    (resting,) = await venue.open_orders(SYMBOL)
    assert (resting.client_order_id, resting.status, resting.remaining) == ("o3", OrderStatus.OPEN, 1.0)
    assert await venue.open_orders("ETH/USDT") == []
    filled = await venue.fetch_order("o1", SYMBOL)
    assert filled is not None
    assert (filled.status, filled.filled_quantity, filled.average_price) == (OrderStatus.FILLED, 2.0, 100.0)
    assert await venue.fetch_order("nope", SYMBOL) is None
    venue.submit(order(Side.SELL, 2.0, coid="o4"))
    assert await venue.positions() == {"ETH/USDT": -5.0}
