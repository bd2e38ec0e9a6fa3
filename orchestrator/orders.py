"""Orders as they travel from the risk engine to a venue and back.

An ``OrderIntent`` is created (and, with a journal, recorded) before anything
is sent; its ``client_order_id`` is the idempotency key every adapter passes
to the venue, so a resend after a timeout can never become a second order.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @staticmethod
    def of(quantity: float) -> Side:
        return Side.BUY if quantity > 0 else Side.SELL


class OrderType(enum.Enum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(enum.Enum):
    """Lifecycle of an order. Terminal states never change again."""

    PENDING = "pending"  # intent recorded, not yet acknowledged by the venue
    OPEN = "open"  # acknowledged, resting or being filled
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    LOST = "lost"  # never confirmed by the venue after repeated checks

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.LOST,
    }
)


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order the risk engine has approved, before it reaches a venue."""

    client_order_id: str
    trace_id: str
    ts: int
    venue: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if not self.quantity > 0.0:
            raise ValueError(f"order quantity {self.quantity!r} must be > 0")
        if self.order_type is OrderType.LIMIT and not (self.limit_price is not None and self.limit_price > 0.0):
            raise ValueError("a limit order needs a positive limit_price")

    @property
    def signed_quantity(self) -> float:
        return self.quantity * self.side.sign


@dataclass(frozen=True, slots=True)
class OrderDenied:
    """An order the risk engine refused; it never reaches an adapter."""

    trace_id: str
    ts: int
    symbol: str
    side: Side
    quantity: float
    reason: str


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A venue's view of one order at one moment."""

    client_order_id: str
    trace_id: str
    ts: int
    venue: str
    symbol: str
    side: Side
    quantity: float
    status: OrderStatus
    filled_quantity: float = 0.0
    average_price: float | None = None
    venue_order_id: str | None = None
    reason: str | None = None

    @property
    def remaining(self) -> float:
        return 0.0 if self.status.is_terminal else self.quantity - self.filled_quantity


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution against an order."""

    fill_id: str
    client_order_id: str
    trace_id: str
    ts: int
    venue: str
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    fee_currency: str
    liquidity: str = "taker"

    @property
    def signed_quantity(self) -> float:
        return self.quantity * self.side.sign

    @property
    def notional(self) -> float:
        return self.quantity * self.price
