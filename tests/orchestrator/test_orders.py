"""Order messages: intents validate themselves; statuses know when they are final."""

from __future__ import annotations

import math

import pytest

from orchestrator.orders import Fill, OrderIntent, OrderStatus, OrderType, OrderUpdate, Side


def intent(**changes: object) -> OrderIntent:
    fields: dict[str, object] = {
        "client_order_id": "ot1n0",
        "trace_id": "t-1",
        "ts": 1,
        "venue": "paper",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "quantity": 1.0,
    }
    fields.update(changes)
    return OrderIntent(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("quantity", [0.0, -1.0, math.nan])
def test_intent_rejects_non_positive_quantity(quantity: float) -> None:
    with pytest.raises(ValueError, match="quantity"):
        intent(quantity=quantity)


@pytest.mark.parametrize("limit_price", [None, 0.0, -5.0, math.nan])
def test_limit_intent_needs_a_positive_price(limit_price: float | None) -> None:
    with pytest.raises(ValueError, match="limit_price"):
        intent(order_type=OrderType.LIMIT, limit_price=limit_price)


def test_signed_quantities() -> None:
    assert intent(side=Side.SELL, quantity=2.0).signed_quantity == -2.0
    assert intent(order_type=OrderType.LIMIT, limit_price=10.0).signed_quantity == 1.0
    assert Side.of(0.5) is Side.BUY
    assert Side.of(-0.5) is Side.SELL
    fill = Fill("f1", "ot1n0", "t-1", 1, "paper", "BTC/USDT", Side.SELL, 2.0, 50.0, 0.1, "USDT")
    assert (fill.signed_quantity, fill.notional) == (-2.0, 100.0)


def test_terminal_statuses_leave_nothing_remaining() -> None:
    terminal = {s for s in OrderStatus if s.is_terminal}
    assert terminal == {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.LOST,
    }
    base = {"client_order_id": "c", "trace_id": "t", "ts": 0, "venue": "v", "symbol": "s", "side": Side.BUY}
    working = OrderUpdate(**base, quantity=3.0, status=OrderStatus.PARTIALLY_FILLED, filled_quantity=1.0)
    canceled = OrderUpdate(**base, quantity=3.0, status=OrderStatus.CANCELED, filled_quantity=1.0)
    assert working.remaining == 2.0
    assert canceled.remaining == 0.0
