"""Observers of the core: the journal, MQTT, logs. No-op defaults.

Listeners are called synchronously on the event path for decisions, orders
and fills only. They must be quick: anything slow (disk, network) belongs
in a queue the listener fills and a task of its own drains.
"""

from __future__ import annotations

from orchestrator.orders import Fill, OrderDenied, OrderIntent, OrderUpdate
from orchestrator.risk.state import TradingState
from orchestrator.signals import Decision


class EngineListener:
    def on_decision(self, decision: Decision) -> None:
        return None

    def on_order_intent(self, intent: OrderIntent) -> None:
        return None

    def on_order_denied(self, denied: OrderDenied) -> None:
        return None

    def on_order_update(self, update: OrderUpdate) -> None:
        return None

    def on_fill(self, fill: Fill) -> None:
        return None

    def on_trading_state(self, state: TradingState, reason: str) -> None:
        return None
