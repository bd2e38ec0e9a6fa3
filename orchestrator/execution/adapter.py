"""The interface every exchange adapter implements (paper, ccxt, ...).

``submit`` and ``cancel`` are synchronous and must return at once: they are
called from the event path. An adapter that talks to a network queues the
request for its own task (started in ``start``) and reports the outcome to
its listener, like the paper exchange does inline. Queries used by recovery
and status are asynchronous.
"""

from __future__ import annotations

import abc
from typing import Protocol

from orchestrator.events import MarketEvent
from orchestrator.orders import Fill, OrderIntent, OrderUpdate


class ExecutionListener(Protocol):
    """Where an adapter reports what happened to orders."""

    def on_order_update(self, update: OrderUpdate) -> None: ...

    def on_fill(self, fill: Fill) -> None: ...


class ExchangeAdapter(abc.ABC):
    """One account at one venue."""

    name: str
    # Does the venue keep our orders across a restart of the daemon? Live
    # venues do, and recovery reconciles them; a paper venue starts empty.
    persistent: bool = False

    def __init__(self, name: str) -> None:
        self.name = name
        self._listener: ExecutionListener | None = None

    def bind(self, listener: ExecutionListener) -> None:
        self._listener = listener

    @property
    def listener(self) -> ExecutionListener:
        if self._listener is None:
            raise RuntimeError(f"adapter {self.name!r} has no listener bound")
        return self._listener

    async def start(self) -> None:
        """Connect, load markets, start background tasks."""
        return None

    async def stop(self) -> None:
        """Drain or abandon queued requests and disconnect."""
        return None

    def on_market(self, event: MarketEvent) -> None:
        """Market data, for adapters that simulate fills; live venues ignore it."""
        return None

    @abc.abstractmethod
    def submit(self, intent: OrderIntent) -> None:
        """Send an order. Idempotent per ``client_order_id``."""

    @abc.abstractmethod
    def cancel(self, client_order_id: str) -> None:
        """Cancel an open order; unknown or finished orders are ignored."""

    @abc.abstractmethod
    async def open_orders(self, symbol: str | None = None) -> list[OrderUpdate]:
        """Orders the venue holds open for this account."""

    @abc.abstractmethod
    async def fetch_order(self, client_order_id: str, symbol: str) -> OrderUpdate | None:
        """Look an order up by its client order id; ``None`` if the venue never saw it."""

    @abc.abstractmethod
    async def balances(self) -> dict[str, float]:
        """Total balance per currency."""

    @abc.abstractmethod
    async def positions(self) -> dict[str, float]:
        """Signed position per symbol (base units)."""

    async def order_fills(self, intent: OrderIntent, update: OrderUpdate) -> list[Fill]:
        """Every execution of one order, as the venue reports them (recovery)."""
        return []

    def resume(self, intent: OrderIntent, update: OrderUpdate, known_fills: set[str]) -> None:
        """Go on tracking an order found working at the venue (recovery)."""
        return None

    async def last_price(self, symbol: str) -> float | None:
        """The venue's last traded price, to value positions found at start."""
        return None
