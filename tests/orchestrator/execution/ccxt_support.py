"""Helpers of the ccxt adapter tests: a listener that records what the
adapter reports, a polling wait, an order intent.

Imported by the tests as ``ccxt_support`` (``conftest.py`` puts this
directory on ``sys.path``; with ``--import-mode=importlib`` test files
cannot import their neighbours otherwise)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from orchestrator.orders import Fill, OrderIntent, OrderUpdate, Side


class Recorder:
    def __init__(self) -> None:
        self.updates: list[OrderUpdate] = []
        self.fills: list[Fill] = []
        self.sequence: list[str] = []

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)
        self.sequence.append(update.status.value)

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)
        self.sequence.append("fill")

    def final(self, client_order_id: str) -> OrderUpdate | None:
        done = [u for u in self.updates if u.client_order_id == client_order_id and u.status.is_terminal]
        return done[-1] if done else None


async def wait_for(condition: Callable[[], object], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def intent(client_order_id: str = "ot1n0", quantity: float = 0.01, **kwargs: object) -> OrderIntent:
    fields: dict[str, object] = {
        "client_order_id": client_order_id,
        "trace_id": "t-1",
        "ts": int(time.time() * 1000),
        "venue": "binance",
        "symbol": "BTC/USDT",
        "side": Side.BUY,
        "quantity": quantity,
    }
    fields.update(kwargs)
    return OrderIntent(**fields)  # type: ignore[arg-type]
