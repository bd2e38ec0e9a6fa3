"""Turns a sized quantity into a concrete order intent for a venue."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.execution.config import ExecutionConfig
from orchestrator.execution.ids import IdSequence
from orchestrator.orders import OrderIntent, OrderType, Side
from orchestrator.signals import Decision


class OrderPlanner:
    """Picks venue, order type and limit price, and issues the client order id."""

    def __init__(self, config: ExecutionConfig, ids: IdSequence, venue_of: Callable[[str], str]) -> None:
        self.config = config
        self.ids = ids
        self.venue_of = venue_of

    def intent(
        self, decision: Decision, signed_quantity: float, price: float, *, reduce_only: bool, leg: int = 0
    ) -> OrderIntent:
        side = Side.of(signed_quantity)
        limit_price = None
        order_type = OrderType.MARKET
        if self.config.order_type == "limit":
            order_type = OrderType.LIMIT
            # Positive offset = more aggressive: buy above, sell below the reference.
            limit_price = price * (1.0 + side.sign * self.config.limit_offset_bps / 10_000.0)
        return OrderIntent(
            client_order_id=self.ids.client_order_id(decision.trace_id, leg),
            trace_id=decision.trace_id,
            ts=decision.ts,
            venue=self.venue_of(decision.symbol),
            symbol=decision.symbol,
            side=side,
            quantity=abs(signed_quantity),
            order_type=order_type,
            limit_price=limit_price,
            reduce_only=reduce_only,
        )
