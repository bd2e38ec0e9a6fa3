"""ccxt's unified order and trade structures to our frozen messages."""

from __future__ import annotations

from typing import Any

from orchestrator.orders import Fill, OrderIntent, OrderStatus, OrderUpdate, Side

_STATUS = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return default if value is None else float(value)
    except (TypeError, ValueError):
        return default


def order_status(order: dict[str, Any]) -> OrderStatus:
    status = order.get("status")
    if status in _STATUS:
        return _STATUS[status]
    return OrderStatus.PARTIALLY_FILLED if _float(order.get("filled")) > 0.0 else OrderStatus.OPEN


def order_update(order: dict[str, Any], *, venue: str, intent: OrderIntent | None, now_ms: int) -> OrderUpdate:
    """An ``OrderUpdate`` from a ccxt order; ``intent`` fills in what the venue leaves out."""
    client_order_id = order.get("clientOrderId") or (intent.client_order_id if intent else None) or str(order.get("id"))
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
        status=order_status(order),
        filled_quantity=_float(order.get("filled")),
        average_price=None if average is None else _float(average),
        venue_order_id=None if order.get("id") is None else str(order["id"]),
    )


def trade_fill(trade: dict[str, Any], *, venue: str, intent: OrderIntent) -> Fill:
    fee = trade.get("fee") or {}
    return Fill(
        fill_id=str(trade.get("id")),
        client_order_id=intent.client_order_id,
        trace_id=intent.trace_id,
        ts=int(trade.get("timestamp") or intent.ts),
        venue=venue,
        symbol=intent.symbol,
        side=intent.side,
        quantity=_float(trade.get("amount")),
        price=_float(trade.get("price")),
        fee=_float(fee.get("cost")),
        fee_currency=str(fee.get("currency") or ""),
        liquidity="maker" if trade.get("takerOrMaker") == "maker" else "taker",
    )
