"""What the journal stores and returns: record types and query rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.orders import Fill, OrderDenied, OrderIntent, OrderStatus, OrderType, OrderUpdate, Side
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision


@dataclass(frozen=True, slots=True)
class TradingStateRecord:
    ts: int
    state: TradingState
    reason: str


@dataclass(frozen=True, slots=True)
class ExternalOrder:
    """A venue order the journal did not know (placed by hand or by another bot)."""

    update: OrderUpdate
    ts: int


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """Recovery looked for an order and did not find it (``lost`` when giving up)."""

    client_order_id: str
    ts: int
    lost: bool
    reason: str


JournalRecord = (
    Decision | OrderIntent | OrderDenied | OrderUpdate | Fill | TradingStateRecord | ExternalOrder | OrderCheck
)


@dataclass(frozen=True, slots=True)
class JournalOrder:
    client_order_id: str
    trace_id: str
    venue: str
    symbol: str
    side: Side
    quantity: float
    order_type: str
    limit_price: float | None
    reduce_only: bool
    status: OrderStatus
    filled_quantity: float
    average_price: float | None
    venue_order_id: str | None
    reason: str | None
    created_ts: int
    updated_ts: int
    external: bool
    checks: int

    def intent(self) -> OrderIntent:
        """The intent this order was sent as."""
        limit = self.order_type == OrderType.LIMIT.value and self.limit_price is not None
        return OrderIntent(
            client_order_id=self.client_order_id,
            trace_id=self.trace_id,
            ts=self.created_ts,
            venue=self.venue,
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            order_type=OrderType.LIMIT if limit else OrderType.MARKET,
            limit_price=self.limit_price if limit else None,
            reduce_only=self.reduce_only,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "client_order_id": self.client_order_id,
            "trace_id": self.trace_id,
            "venue": self.venue,
            "symbol": self.symbol,
            "side": self.side.value,
            "quantity": self.quantity,
            "order_type": self.order_type,
            "limit_price": self.limit_price,
            "reduce_only": self.reduce_only,
            "status": self.status.value,
            "filled_quantity": self.filled_quantity,
            "average_price": self.average_price,
            "venue_order_id": self.venue_order_id,
            "reason": self.reason,
            "created_ts": self.created_ts,
            "updated_ts": self.updated_ts,
            "external": self.external,
            "checks": self.checks,
        }


@dataclass(frozen=True, slots=True)
class JournalFill:
    venue: str
    fill_id: str
    client_order_id: str
    trace_id: str
    ts: int
    symbol: str
    side: Side
    quantity: float
    price: float
    fee: float
    fee_currency: str
    liquidity: str

    def to_json(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "fill_id": self.fill_id,
            "client_order_id": self.client_order_id,
            "trace_id": self.trace_id,
            "ts": self.ts,
            "symbol": self.symbol,
            "side": self.side.value,
            "quantity": self.quantity,
            "price": self.price,
            "fee": self.fee,
            "fee_currency": self.fee_currency,
            "liquidity": self.liquidity,
        }
