"""ccxt's unified order and trade structures to our frozen messages.

What a venue answers is checked, not trusted: an order needs an id and one
of ccxt's statuses, a trade an id, a positive amount and a positive price.
Anything else raises ``VenueAnswerError`` with one line saying what was
wrong; the adapter then treats the order's state as unknown (it looks it up
again) rather than invent a status or book a fill at price zero.
"""

from __future__ import annotations

from typing import Any

from orchestrator.execution.ccxt.errors import VenueAnswerError
from orchestrator.orders import Fill, OrderIntent, OrderStatus, OrderUpdate, Side

_FINAL = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
# Still working: ccxt's "open", and what some venues leak through it (a cancel in progress).
_WORKING = frozenset({"open", "canceling", "cancelling", "pending"})


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return default if value is None else float(value)
    except (TypeError, ValueError):
        return default


def _snippet(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def venue_order_id(order: Any) -> str:
    """The venue's id of an order answer; raises ``VenueAnswerError`` when it is not an order."""
    if not isinstance(order, dict):
        raise VenueAnswerError(f"expected an order, got {_snippet(order)}")
    if order.get("id") is None:
        raise VenueAnswerError(f"order answer without an order id: {_snippet(order.get('info', order))}")
    return str(order["id"])


def order_status(order: dict[str, Any]) -> OrderStatus:
    status = order.get("status")
    if status in _FINAL:
        return _FINAL[status]
    if status in _WORKING:
        return OrderStatus.PARTIALLY_FILLED if _float(order.get("filled")) > 0.0 else OrderStatus.OPEN
    raise VenueAnswerError(
        f"order {order.get('id')} has status {status!r}, none of open, closed, canceled, expired, rejected"
    )


def order_update(order: Any, *, venue: str, intent: OrderIntent | None, now_ms: int) -> OrderUpdate:
    """An ``OrderUpdate`` from a ccxt order; ``intent`` fills in what the venue leaves out."""
    order_id = venue_order_id(order)
    status = order_status(order)
    client_order_id = order.get("clientOrderId") or (intent.client_order_id if intent else None) or order_id
    side_text = order.get("side")
    side = Side(side_text) if side_text in ("buy", "sell") else (intent.side if intent else Side.BUY)
    quantity = _float(order.get("amount"), intent.quantity if intent else 0.0)
    average = order.get("average")
    if average is None and _float(order.get("filled")) > 0.0:
        average = order.get("price")
    return OrderUpdate(
        client_order_id=client_order_id,
        trace_id=intent.trace_id if intent else "external",
        ts=int(order.get("lastUpdateTimestamp") or order.get("timestamp") or now_ms),
        venue=venue,
        symbol=str(order.get("symbol") or (intent.symbol if intent else "")),
        side=side,
        quantity=quantity,
        status=status,
        filled_quantity=_float(order.get("filled")),
        average_price=None if average is None else _float(average),
        venue_order_id=order_id,
    )


def trade_fill(trade: Any, *, venue: str, intent: OrderIntent) -> Fill:
    if not isinstance(trade, dict) or trade.get("id") is None:
        raise VenueAnswerError(f"trade of {intent.client_order_id} without a trade id: {_snippet(trade)}")
    amount, price = _float(trade.get("amount")), _float(trade.get("price"))
    if not amount > 0.0 or not price > 0.0:
        raise VenueAnswerError(
            f"trade {trade['id']} of {intent.client_order_id} has amount {trade.get('amount')!r} and price "
            f"{trade.get('price')!r}; both must be positive numbers"
        )
    fee = trade.get("fee") or {}
    return Fill(
        fill_id=str(trade["id"]),
        client_order_id=intent.client_order_id,
        trace_id=intent.trace_id,
        ts=int(trade.get("timestamp") or intent.ts),
        venue=venue,
        symbol=intent.symbol,
        side=intent.side,
        quantity=amount,
        price=price,
        fee=_float(fee.get("cost")),
        fee_currency=str(fee.get("currency") or ""),
        liquidity="maker" if trade.get("takerOrMaker") == "maker" else "taker",
    )
